#version 330 core
// Gabor ImFit: resolve pass of the billboard strategy. Reads the accumulated signed sum
// (the RGBA32F buffer gabor_billboard.frag blended into, same size as this pass's target)
// and maps it as the engine does: colour = clamp(sum, -1, 1) * 0.5 + 0.5.
// Draw a full-screen triangle (fullscreen.vert). WebGL2 / OpenGL ES 3.0: replace the first
// line with "#version 300 es" and "precision highp float; precision highp int;".

uniform highp sampler2D u_sum;
out vec4 fragColor;

void main()
{
    vec3 sum = texelFetch(u_sum, ivec2(gl_FragCoord.xy), 0).rgb;
    fragColor = vec4(clamp(sum, -1.0, 1.0) * 0.5 + 0.5, 1.0);
}
