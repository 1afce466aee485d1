#version 330 core
// Gabor ImFit: one additive billboard quad per wavelet, fragment stage.
//
// Formula and conventions are the engine's (imfit_engine/model.py):
//   p = (u * aspect, v) for the pixel at image UV (u, v): u left to right, v bottom to top, in [0, 1];
//   lengths in image heights, angles in radians, pixel centres at (i + 0.5) / size.
//   per wavelet k:  d = p - (u_k * aspect, v_k)
//                   xr = d.x cos(theta) + d.y sin(theta),  yr = -d.x sin(theta) + d.y cos(theta)
//                   sum_c += amp_kc * exp(-xr^2 / 2 sigma^2 - yr^2 / 2 gamma^2) * cos(2 pi xr / wavelength + phase_kc)
//   colour_c = clamp(sum_c, -1, 1) * 0.5 + 0.5   (the image's stored, sRGB-encoded values)
//
// This pass writes one wavelet's SIGNED contribution; the sum must be accumulated unclamped:
// render into a float colour buffer (RGBA32F; WebGL2 needs EXT_color_buffer_float and EXT_float_blend)
// cleared to 0, with blending on, glBlendEquation(GL_FUNC_ADD), glBlendFunc(GL_ONE, GL_ONE),
// no depth test. Alpha accumulates the number of quads covering the pixel (overdraw).
// Then gabor_resolve.frag maps the sum to colours. The vertex stage is gabor_billboard.vert.
//
// WebGL2 / OpenGL ES 3.0: replace the first line with "#version 300 es" and
// "precision highp float; precision highp int;".

uniform float u_aspect;  // source width / height

in vec2 v_position;      // (u * aspect, v), image heights
flat in vec4 v_w0;       // (u, v, theta, sigma)
flat in vec4 v_w1;       // (gamma, wavelength, phase_r, phase_g)
flat in vec4 v_w2;       // (phase_b, amp_r, amp_g, amp_b)
out vec4 fragColor;

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

void main()
{
    fragColor = vec4(gabor(v_position, v_w0, v_w1, v_w2, u_aspect), 1.0);
}
