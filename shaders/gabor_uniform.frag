#version 330 core
// Gabor ImFit: re-synthesis of a fit in one fragment pass, the wavelets in a uniform array.
//
// Formula and conventions are the engine's (imfit_engine/model.py):
//   p = (u * aspect, v) for the pixel at image UV (u, v): u left to right, v bottom to top, in [0, 1];
//   lengths in image heights, angles in radians, pixel centres at (i + 0.5) / size.
//   per wavelet k:  d = p - (u_k * aspect, v_k)
//                   xr = d.x cos(theta) + d.y sin(theta),  yr = -d.x sin(theta) + d.y cos(theta)
//                   sum_c += amp_kc * exp(-xr^2 / 2 sigma^2 - yr^2 / 2 gamma^2) * cos(2 pi xr / wavelength + phase_kc)
//   colour_c = clamp(sum_c, -1, 1) * 0.5 + 0.5   (the image's stored, sRGB-encoded values)
//
// Inputs: u_wavelets holds 3 vec4 per wavelet, the 12 model columns in order:
//   [3k]   = (u, v, theta, sigma)   [3k+1] = (gamma, wavelength, phase_r, phase_g)
//   [3k+2] = (phase_b, amp_r, amp_g, amp_b)
// `imfit export PARAMS --uniforms OUT.txt` writes exactly these rows plus u_count and u_aspect.
// u_resolution is the size in pixels of the area the image fills; draw a full-screen quad or triangle.
// Uniform space is small (desktop GL: 1024 vec4 or more, about 340 wavelets; WebGL2 guarantees 224 vec4):
// compile with a larger IMFIT_MAX_WAVELETS if the driver allows, else use gabor_texture.frag.
//
// WebGL2 / OpenGL ES 3.0: replace the first line with "#version 300 es" and
// "precision highp float; precision highp int;". `imfit export --glsl` inlines a fit for
// desktop GL, GLSL ES or Shadertoy (see shaders/README.md).

// >>> imfit:inputs (`imfit export --glsl` replaces this block with a fit's constants)
#ifndef IMFIT_MAX_WAVELETS
#define IMFIT_MAX_WAVELETS 256
#endif
uniform vec4 u_wavelets[3 * IMFIT_MAX_WAVELETS];
uniform int u_count;     // wavelets used, <= IMFIT_MAX_WAVELETS
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

// Image colour at uv in [0, 1]^2 (v up).
vec4 imfit_color(vec2 uv)
{
    vec2 p = vec2(uv.x * u_aspect, uv.y);
    vec3 sum = vec3(0.0);
    for (int k = 0; k < u_count; ++k)
        sum += gabor(p, u_wavelets[3 * k], u_wavelets[3 * k + 1], u_wavelets[3 * k + 2], u_aspect);
    return vec4(clamp(sum, -1.0, 1.0) * 0.5 + 0.5, 1.0);
}

// >>> imfit:entry (the Shadertoy export replaces this block with mainImage)
uniform vec2 u_resolution;
out vec4 fragColor;

void main()
{
    fragColor = imfit_color(gl_FragCoord.xy / u_resolution);
}
// <<< imfit:entry
