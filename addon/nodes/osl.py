"""The OSL material: one Script node walking per-tile lists of the fit inlined as arrays (Cycles on the CPU or
OptiX), ``shaders/gabor_tiles.osl``.

A standalone material for the preview plane; the node group runs the same script itself on its OSL path
(``osl_path``), which the add-on picks for large fits in Cycles.
"""

from __future__ import annotations

import bpy

from ..engine import ImfitError, export
from .group import group_name


def osl_material(scene, image_name: str, wavelets) -> bpy.types.Material:
    """Material "ImFit <image> (OSL)": the fit inlined in a Script node, UV linked, Linear -> Emission."""
    name = f"ImFit {image_name} (OSL)"
    text = bpy.data.texts.get(f"{name}.osl") or bpy.data.texts.new(f"{name}.osl")
    text.clear()
    text.write(export.osl_tiles_source(wavelets))
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
        raise ImfitError(
            f"the OSL shader {text.name} did not compile (this Blender may lack OSL): "
            "see the console, or use the node group"
        )
    coords = nodes.new("ShaderNodeTexCoord")
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(coords.outputs["UV"], script.inputs["UV"])
    links.new(script.outputs["Linear"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    for k, node in enumerate((coords, script, emission, output)):
        node.location = (300 * k - 450, 0)
    return material


def build_osl_material(scene, image_name: str, wavelets) -> bpy.types.Material:
    """``osl_material``, put on the fit's preview plane when there is one."""
    material = osl_material(scene, image_name, wavelets)
    plane = scene.objects.get(group_name(image_name))  # create_plane's name
    if plane is not None and plane.data.materials:
        plane.data.materials[0] = material
    return material
