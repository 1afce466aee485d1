#version 330 core
// Gabor ImFit: full-screen triangle for the single-pass shaders (gabor_uniform.frag,
// gabor_texture.frag) and the resolve pass. No vertex buffer: draw 3 vertices.
// WebGL2 / OpenGL ES 3.0: replace the first line with "#version 300 es".

void main()
{
    vec2 corner = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));  // (0,0) (2,0) (0,2)
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}
