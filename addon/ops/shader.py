"""Shader exports of the stored fit, and the OSL material (``nodes.osl``): Cycles' scalable path for large fits."""

import bpy
from bpy.props import EnumProperty, StringProperty

from ..engine import export
from ..nodes import osl
from .stored import ExportOperator, StoredFitOperator

# kind: (label, file extension, writer, description)
SHADER_EXPORTS = {
    "GLSL": ("GLSL shader", ".glsl", export.export_glsl, "Self-contained fragment shader with the fit inlined"),
    "UNIFORMS": ("Uniform payload", ".txt", export.export_uniforms, "Values for shaders/gabor_uniform.frag"),
    "TEXTURE_EXR": (
        "Data texture (EXR)",
        ".exr",
        export.export_texture,
        "Float data texture for shaders/gabor_texture.frag",
    ),
    "TEXTURE_PNG": (
        "Data texture (PNG)",
        ".png",
        export.export_texture,
        "Bit-exact packed data texture (RGBA8) for shaders/gabor_texture.frag",
    ),
    "OSL": ("OSL shader", ".osl", export.export_osl, "OSL shader for a Cycles Script node"),
}


class IMFIT_OT_export_shader(ExportOperator, bpy.types.Operator):
    bl_idname = "imfit.export_shader"
    bl_label = "Export Gabor Shader"
    bl_description = "Save the stored fit as a shader or shader data for GLSL hosts or Cycles' Script node"
    filename_ext = ".glsl"
    kind: EnumProperty(name="Kind", items=[(k, v[0], v[3]) for k, v in SHADER_EXPORTS.items()], default="GLSL")
    filter_glob: StringProperty(default="*.glsl;*.txt;*.exr;*.png;*.osl", options={"HIDDEN"})

    def check(self, context):
        self.filename_ext = SHADER_EXPORTS[self.kind][1]  # the extension follows the chosen kind
        return super().check(context)

    def invoke(self, context, event):
        self.filename_ext = SHADER_EXPORTS[self.kind][1]
        return super().invoke(context, event)

    def run(self, context, image_name, wavelets) -> str:
        label, ext, write, _ = SHADER_EXPORTS[self.kind]
        path = bpy.path.ensure_ext(self.filepath, ext)
        write(wavelets, path)
        return f"ImFit: saved {len(wavelets)} wavelets to {path} ({label})"


class IMFIT_OT_build_osl(StoredFitOperator, bpy.types.Operator):
    bl_idname = "imfit.build_osl"
    bl_label = "Build OSL Material"
    bl_description = (
        "Re-synthesise the stored fit with one OSL Script node: scales to very large fits in Cycles "
        "(CPU or OptiX). Switches the scene to Cycles with Open Shading Language"
    )
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, image_name, wavelets) -> str:
        material = osl.build_osl_material(context.scene, image_name, wavelets)
        return f"ImFit: {material.name} ({len(wavelets)} wavelets, Cycles OSL on the CPU or OptiX)"


classes = (IMFIT_OT_export_shader, IMFIT_OT_build_osl)
