#version 330 core
// Gabor ImFit: one additive billboard quad per wavelet (instanced), vertex stage.
//
// Formula and conventions are the engine's (imfit_engine/model.py); see gabor_billboard.frag.
// The quad is the bounding box of the wavelet's envelope ellipse cut at IMFIT_SUPPORT standard
// deviations (5: the engine's renderer cuts there too; the tail beyond is < exp(-12.5) * amp),
// so every pixel centre inside the ellipse is shaded.
//
// Draw a 4-vertex triangle strip (a_corner = (-1,-1), (1,-1), (-1,1), (1,1)) instanced N times.
// Per-instance attributes (divisor 1) are the 12 model columns of one wavelet, 48 bytes, in order:
//   a_w0 = (u, v, theta, sigma), a_w1 = (gamma, wavelength, phase_r, phase_g), a_w2 = (phase_b, amp_r, amp_g, amp_b)
// which is the (N, 12) float32 parameter array as is (the .exr data texture's texels, row by row).
// The viewport is the image: clip x = 2 u - 1, clip y = 2 v - 1 (v up).
//
// WebGL2 / OpenGL ES 3.0: replace the first line with "#version 300 es" and
// "precision highp float; precision highp int;".

layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec4 a_w0;
layout(location = 2) in vec4 a_w1;
layout(location = 3) in vec4 a_w2;

#ifndef IMFIT_SUPPORT
#define IMFIT_SUPPORT 5.0        // envelope cut, in standard deviations
#endif

uniform float u_aspect;          // source width / height

out vec2 v_position;             // (u * aspect, v), image heights
flat out vec4 v_w0;
flat out vec4 v_w1;
flat out vec4 v_w2;

void main()
{
    float c = abs(cos(a_w0.z)), s = abs(sin(a_w0.z));
    float sigma = a_w0.w, gamma = a_w1.x;
    // half extents of the rotated ellipse's axis-aligned bounding box
    vec2 half_size = IMFIT_SUPPORT * vec2(sqrt(sigma * sigma * c * c + gamma * gamma * s * s),
                                          sqrt(sigma * sigma * s * s + gamma * gamma * c * c));
    v_position = vec2(a_w0.x * u_aspect, a_w0.y) + a_corner * half_size;
    v_w0 = a_w0;
    v_w1 = a_w1;
    v_w2 = a_w2;
    gl_Position = vec4(2.0 * v_position.x / u_aspect - 1.0, 2.0 * v_position.y - 1.0, 0.0, 1.0);
}
