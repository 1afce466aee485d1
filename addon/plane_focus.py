"""A new preview plane ends up as an object added from Blender's Add menu does: the only one selected, the
active object, and in view in the 3D Viewports that show its scene."""
from __future__ import annotations

import bpy


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
