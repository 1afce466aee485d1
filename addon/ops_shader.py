"""Shader exports of the stored fit, and the OSL material: Cycles' scalable path for very large fits.

The node group is the everyday path; past a few thousand wavelets Cycles spends long preparing
it (FACTS.md), while one OSL Script node loops over an inlined array (CPU and OptiX only).
"""
import bpy
from bpy.props import EnumProperty, StringProperty

from . import node_tree
from .engine import ImfitError, export
from .ops_stored import _ExportOperator, _StoredFitOperator

# kind: (label, file extension, writer, description)
SHADER_EXPORTS = {
    "GLSL": ("GLSL shader", ".glsl", export.export_glsl, "Self-contained fragment shader with the fit inlined"),
    "UNIFORMS": ("Uniform payload", ".txt", export.export_uniforms, "Values for shaders/gabor_uniform.frag"),
    "TEXTURE_EXR": ("Data texture (EXR)", ".exr", export.export_texture,
                    "Float data texture for shaders/gabor_texture.frag"),
    "TEXTURE_PNG": ("Data texture (PNG)", ".png", export.export_texture,
                    "Bit-exact packed data texture (RGBA8) for shaders/gabor_texture.frag"),
    "OSL": ("OSL shader", ".osl", export.export_osl, "OSL shader for a Cycles Script node"),
}


class IMFIT_OT_export_shader(_ExportOperator, bpy.types.Operator):
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


def osl_material(scene, image_name: str, wavelets) -> bpy.types.Material:
    """Material "ImFit <image> (OSL)": the fit inlined in a Script node, UV linked, Linear -> Emission."""
    name = f"ImFit {image_name} (OSL)"
    text = bpy.data.texts.get(f"{name}.osl") or bpy.data.texts.new(f"{name}.osl")
    text.clear()
    text.write(export.osl_source(wavelets))
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if hasattr(material, "use_nodes") and not material.use_nodes:
        material.use_nodes = True  # Blender 4.2; always on from 5.0
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    script = nodes.new("ShaderNodeScript")
    script.mode = "INTERNAL"
    scene.render.engine = "CYCLES"
    scene.cycles.shading_system = True  # OSL: the Script node compiles only for a Cycles OSL scene
    with bpy.context.temp_override(scene=scene):
        script.script = text
    if "Linear" not in script.outputs:
        raise ImfitError(f"the OSL shader {text.name} did not compile (this Blender may lack OSL): "
                         "see the console, or use the node group")
    coords = nodes.new("ShaderNodeTexCoord")
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(coords.outputs["UV"], script.inputs["UV"])
    links.new(script.outputs["Linear"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    for k, node in enumerate((coords, script, emission, output)):
        node.location = (300 * k - 450, 0)
    return material


class IMFIT_OT_build_osl(_StoredFitOperator, bpy.types.Operator):
    bl_idname = "imfit.build_osl"
    bl_label = "Build OSL Material"
    bl_description = ("Re-synthesise the stored fit with one OSL Script node: scales to very large fits in Cycles "
                      "(CPU or OptiX). Switches the scene to Cycles with Open Shading Language")
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, image_name, wavelets) -> str:
        material = osl_material(context.scene, image_name, wavelets)
        plane = context.scene.objects.get(node_tree.group_name(image_name))  # create_plane's name
        if plane is not None and plane.data.materials:
            plane.data.materials[0] = material
        return f"ImFit: {material.name} ({len(wavelets)} wavelets, Cycles OSL on the CPU or OptiX)"


classes = (IMFIT_OT_export_shader, IMFIT_OT_build_osl)
