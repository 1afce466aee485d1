"""The preview plane: the image's aspect, UVs 0..1, an Emission material showing a wavelet group; made the selected,
active and framed object as one added from Blender's Add menu is."""

from __future__ import annotations

import bpy

from ..engine import ImfitError
from .group import group_name

PLANE_HEIGHT = 2.0  # scene units, like Blender's default plane


def _plane_mesh(name, aspect, height=PLANE_HEIGHT):
    half_w, half_h = 0.5 * height * aspect, 0.5 * height
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(
        [(-half_w, -half_h, 0), (half_w, -half_h, 0), (half_w, half_h, 0), (-half_w, half_h, 0)], [], [(0, 1, 2, 3)]
    )
    uv = mesh.uv_layers.new(name="UVMap")
    corner_uv = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    for loop in mesh.loops:
        uv.data[loop.index].uv = corner_uv[loop.vertex_index]
    mesh.update()
    return mesh


def _preview_material(name, group):
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # always on (and deprecated) from 5.0
    tree = material.node_tree
    tree.nodes.clear()
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    node.name = node.label = "ImFit"
    node.location = (-300, 0)
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.location = (200, 0)
    tree.links.new(node.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def create_preview_plane(scene, group, image_width: int, image_height: int, name: str):
    """A plane with the image's aspect (PLANE_HEIGHT high, UVs 0..1) showing ``group`` through an
    Emission material ``ImFit <name>``; linked into the scene's collection."""
    if image_width <= 0 or image_height <= 0:
        raise ImfitError(f"image size must be positive, got {image_width}x{image_height}")
    full = group_name(name)
    mesh = _plane_mesh(full, image_width / image_height)
    mesh.materials.append(_preview_material(full, group))
    obj = bpy.data.objects.new(full, mesh)
    scene.collection.objects.link(obj)
    return obj


def focus(scene, obj) -> None:
    """Select ``obj`` alone and make it active in ``scene``'s view layers, then frame it in each 3D Viewport
    showing the scene (windows exist only in the UI).  A view layer whose active object is being edited (Edit
    Mode, Sculpt...) is left as it is, and so are viewports that look through the camera."""
    for view_layer in scene.view_layers:
        active = view_layer.objects.active
        if obj.name not in view_layer.objects or (active is not None and active.mode != "OBJECT"):
            continue
        for other in view_layer.objects:
            if other != obj and other.select_get(view_layer=view_layer):
                other.select_set(False, view_layer=view_layer)
        obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = obj
    if bpy.app.background:
        return
    for window in bpy.context.window_manager.windows:
        if window.scene != scene or window.view_layer.objects.active != obj:
            continue
        for area in window.screen.areas:
            region = next((r for r in area.regions if r.type == "WINDOW"), None)
            if area.type != "VIEW_3D" or region is None or area.spaces.active.region_3d.view_perspective == "CAMERA":
                continue
            try:
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.view3d.view_selected()
            except RuntimeError as e:  # framing is a convenience: never fail a fit over it
                print(f"ImFit: the new plane was not framed in a 3D Viewport: {e}")
