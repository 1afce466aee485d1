#version 330 core
// Gabor ImFit: re-synthesis of a fit in one fragment pass, the wavelets in a data texture
// (thousands of wavelets: no uniform-space limit).
//
// Formula and conventions are the engine's (imfit_engine/model.py):
//   p = (u * aspect, v) for the pixel at image UV (u, v): u left to right, v bottom to top, in [0, 1];
//   lengths in image heights, angles in radians, pixel centres at (i + 0.5) / size.
//   per wavelet k:  d = p - (u_k * aspect, v_k)
//                   xr = d.x cos(theta) + d.y sin(theta),  yr = -d.x sin(theta) + d.y cos(theta)
//                   sum_c += amp_kc * exp(-xr^2 / 2 sigma^2 - yr^2 / 2 gamma^2) * cos(2 pi xr / wavelength + phase_kc)
//   colour_c = clamp(sum_c, -1, 1) * 0.5 + 0.5   (the image's stored, sRGB-encoded values)
//
// Data texture (`imfit export PARAMS --texture OUT.exr|OUT.png`, layout in shaders/README.md):
//   .exr: RGBA32F, 3 texels per wavelet, the 12 model columns in order:
//         texel 0 = (u, v, theta, sigma), 1 = (gamma, wavelength, phase_r, phase_g), 2 = (phase_b, amp_r, amp_g, amp_b).
//         Wavelet k sits in row k / P at texels 3 (k % P) + 0..2, P = width / 3 wavelets per row;
//         texel row 0 is the file's top row (flip images that your host loads bottom-up).
//   .png: the same floats, each stored bit-exactly as one RGBA8 texel (little-endian bytes
//         R = bits 0-7 ... A = bits 24-31), so 12 texels per wavelet: compile with
//         #define IMFIT_PACKED_RGBA8 and upload without colour conversion, premultiplication or mipmaps.
// Set u_count to the number of wavelets (the padding after them is harmless zero-amplitude wavelets).
// u_resolution is the size in pixels of the area the image fills; draw a full-screen quad or triangle.
//
// WebGL2 / OpenGL ES 3.0: replace the first line with "#version 300 es" and
// "precision highp float; precision highp int;". WebGL2 samples RGBA32F textures with texelFetch
// without extensions (keep the texture's filters at NEAREST).

// >>> imfit:inputs
uniform highp sampler2D u_wavelets;
uniform int u_count;     // number of wavelets
uniform float u_aspect;  // source width / height
// <<< imfit:inputs

const float TWO_PI = 6.283185307179586;

// Signed RGB contribution of one wavelet at p = (u * aspect, v).
vec3 gabor(vec2 p, vec4 w0, vec4 w1, vec4 w2, float aspect)
{
    vec2 d = p - vec2(w0.x * aspect, w0.y);
    float c = cos(w0.z), s = sin(w0.z);
    float xr = d.x * c + d.y * s;
    float yr = d.y * c - d.x * s;
    float envelope = exp(-xr * xr / (2.0 * w0.w * w0.w) - yr * yr / (2.0 * w1.x * w1.x));
    vec3 carrier = cos(TWO_PI * xr / w1.y + vec3(w1.z, w1.w, w2.x));
    return w2.yzw * envelope * carrier;
}

#ifdef IMFIT_PACKED_RGBA8
const int TEXELS_PER_WAVELET = 12;

float unpack_float(ivec2 t)
{
    uvec4 b = uvec4(texelFetch(u_wavelets, t, 0) * 255.0 + 0.5);
    return uintBitsToFloat(b.r | (b.g << 8) | (b.b << 16) | (b.a << 24));
}

// The j-th vec4 (0..2) of wavelet k.
vec4 wavelet_vec4(int k, int j)
{
    int per_row = textureSize(u_wavelets, 0).x / TEXELS_PER_WAVELET;
    ivec2 t = ivec2(TEXELS_PER_WAVELET * (k % per_row) + 4 * j, k / per_row);
    return vec4(unpack_float(t), unpack_float(t + ivec2(1, 0)),
                unpack_float(t + ivec2(2, 0)), unpack_float(t + ivec2(3, 0)));
}
#else
const int TEXELS_PER_WAVELET = 3;

// The j-th vec4 (0..2) of wavelet k.
vec4 wavelet_vec4(int k, int j)
{
    int per_row = textureSize(u_wavelets, 0).x / TEXELS_PER_WAVELET;
    return texelFetch(u_wavelets, ivec2(TEXELS_PER_WAVELET * (k % per_row) + j, k / per_row), 0);
}
#endif

// Image colour at uv in [0, 1]^2 (v up).
vec4 imfit_color(vec2 uv)
{
    vec2 p = vec2(uv.x * u_aspect, uv.y);
    vec3 sum = vec3(0.0);
    for (int k = 0; k < u_count; ++k)
        sum += gabor(p, wavelet_vec4(k, 0), wavelet_vec4(k, 1), wavelet_vec4(k, 2), u_aspect);
    return vec4(clamp(sum, -1.0, 1.0) * 0.5 + 0.5, 1.0);
}

// >>> imfit:entry
uniform vec2 u_resolution;
out vec4 fragColor;

void main()
{
    fragColor = imfit_color(gl_FragCoord.xy / u_resolution);
}
// <<< imfit:entry
