"""GUI session "basics": install, preferences, Check, the ImFit tab in three editors, Fit from the panel (timers,
progress, status bar, live preview, GUI iteration rate), the plane, the Shader Editor, Refine, Fit Sequence,
Stylize and Expand Texture.  Results: results.json beside the screenshots (see test_ui_basics.py)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpy
import driver_lib as ui
from bpy_extras import view3d_utils

P = ui.PARAMS


def preferences_page(s):
    """Preferences > Add-ons, filtered to ImFit and expanded: its draw runs; then Check."""
    prefs = ui.use_external_python(P["python"])
    s.count_draws(type(prefs), "preferences")
    wm = bpy.context.window_manager
    wm.addon_search = "ImFit"
    before = {w.as_pointer() for w in wm.windows}
    with bpy.context.temp_override(window=ui.main_window()):
        bpy.ops.screen.userpref_show(section="ADDONS")
    yield from s.frames(3)
    window = next((w for w in wm.windows if w.as_pointer() not in before), None)
    bpy.ops.preferences.addon_expand(module=ui.MODULE)
    yield from s.frames(4)
    page = {"window": window is not None, "draws_before_check": s.draws("preferences")}
    check = yield from ui.check_engine(s, window=window or ui.main_window())
    yield from s.frames(4)
    s.shot("preferences")
    yield 1.0
    page["draws"] = s.draws("preferences")
    s["preferences"] = page
    s["check"] = check
    if window is not None:
        with bpy.context.temp_override(window=window):
            bpy.ops.wm.window_close()
    yield from s.frames(2)


def measure_wrapped_labels(s):
    """The panel's long messages are drawn as several labels: record each line's width in pixels (the UI font
    at the UI scale) beside the width of the region it is drawn in."""
    import blf

    panels = ui.addon_module("ui.panel")
    original = panels.label_lines
    seen = s.results.setdefault("labels", {})
    prefs = bpy.context.preferences

    class Recorder:  # stands in for the layout: records, then draws
        def __init__(self, layout):
            self.layout = layout

        def label(self, text="", icon="NONE"):
            region = bpy.context.region
            blf.size(0, prefs.ui_styles[0].widget.points * prefs.system.ui_scale)
            seen[f"{region.width}:{text}"] = [
                text,
                round(blf.dimensions(0, text)[0], 1),
                region.width,
                prefs.system.ui_scale,
            ]
            return self.layout.label(text=text, icon=icon)

    panels.label_lines = lambda layout, text, icon: original(Recorder(layout), text, icon)


def imfit_tabs(s):
    measure_wrapped_labels(s)
    for short in ("IMAGE", "VIEW3D", "NODE"):
        s.count_draws(getattr(bpy.types, f"IMFIT_PT_{short}_main"), f"panel_{short}")
    s["layout"] = yield from ui.setup_editors(s)
    s["tabs"] = yield from ui.show_imfit_tabs(s)
    yield from s.frames(3)
    s.shot("tabs")
    s["tab_draws"] = {k: s.draws(f"panel_{k}") for k in ("IMAGE", "VIEW3D", "NODE")}


def plane_state(image_name: str) -> dict:
    """Selected, active, and framed in the 3D Viewport: its corners project inside the view and fill it well."""
    plane = bpy.data.objects.get(f"ImFit {image_name}")
    if plane is None:
        return {"exists": False}
    view_layer = bpy.context.view_layer
    area = ui.area_of("VIEW_3D")
    region, rv3d = ui.region_of(area), area.spaces.active.region_3d
    corners = [
        view3d_utils.location_3d_to_region_2d(region, rv3d, plane.matrix_world @ v.co) for v in plane.data.vertices
    ]
    points = [[round(c.x, 1), round(c.y, 1)] for c in corners if c is not None]
    inside = len(points) == len(corners) and all(0 <= x <= region.width and 0 <= y <= region.height for x, y in points)
    xs, ys = [p[0] for p in points] or [0], [p[1] for p in points] or [0]
    fill = max((max(xs) - min(xs)) / region.width, (max(ys) - min(ys)) / region.height)
    return {
        "exists": True,
        "selected": plane.select_get(),
        "active": view_layer.objects.active == plane,
        "others_selected": sorted(o.name for o in view_layer.objects if o.select_get() and o != plane),
        "corners": points,
        "region": [region.width, region.height],
        "inside": inside,
        "fill": round(fill, 3),
    }


def fit_from_panel(s):
    image = ui.load_image(P["image"])
    s["image"] = image.name
    ui.set_fit_settings(**P["fit"])
    yield from s.frames(2)
    s.shot("before_fit")
    yield 0.5
    s.start_beats()
    t = time.monotonic()
    s["fit_invoke"] = ui.invoke_from_panel("imfit.fit")
    s["fit_running_after_invoke"] = ui.job_running()
    s["fit"] = yield from ui.follow_job(s, timeout=P["fit_timeout"], shots={"fit_early": 0.3, "fit_late": 0.8})
    s["fit"]["wall"] = round(time.monotonic() - t, 2)
    s["fit_beats"] = s.stop_beats()
    s["fit_window"] = [s["fit"]["samples"][0][0] if s["fit"]["samples"] else None, s.now()]
    yield 1.0  # the view's smooth framing
    yield from s.frames(2)
    s.shot("after_fit")
    s["fit_scene"] = ui.scene_result()
    s["fit_stored"] = ui.stored(image.name)
    s["plane"] = plane_state(image.name)


def shader_editor(s, image_name: str):
    space = ui.area_of("NODE_EDITOR").spaces.active
    yield from s.frames(3)
    tree = space.edit_tree
    groups = [n.node_tree.name for n in tree.nodes if n.type == "GROUP" and n.node_tree] if tree else []
    s["shader_editor"] = {
        "tree": tree.name if tree else None,
        "groups": groups,
        "material": bpy.data.objects[f"ImFit {image_name}"].active_material.name,
    }
    s.shot("shader_editor")


def refine(s, image_name: str):
    before = ui.stored(image_name)
    ui.set_fit_settings(iterations=P["refine_iterations"])
    s["refine_invoke"] = ui.invoke_from_panel("imfit.refine")
    s["refine"] = yield from ui.follow_job(s, timeout=P["fit_timeout"], sample_every=0.05)
    s["refine_before"], s["refine_after"] = before, ui.stored(image_name)


def fit_sequence(s):
    image = bpy.data.images.load(P["clip"], check_existing=True)
    image.source = "SEQUENCE"
    space = ui.area_of("IMAGE_EDITOR").spaces.active
    space.image = image
    space.image_user.frame_start = 1
    space.image_user.frame_duration = P["clip_frames"]
    bpy.context.scene.imfit.image = image
    ui.set_fit_settings(**P["sequence"])
    yield from s.frames(2)
    s.shot("sequence_panel")
    s["sequence_invoke"] = ui.invoke_from_panel("imfit.fit_sequence")
    s["sequence"] = yield from ui.follow_job(s, timeout=P["fit_timeout"])
    group = bpy.data.node_groups.get(f"ImFit {image.name}")
    frames, curves = set(), 0
    # the wavelets live in chunk groups (inside the group's wavelets group); their sockets carry the keys
    for chunk in ui.addon_module("nodes.group").chunk_groups(group) if group else []:
        if chunk.animation_data and chunk.animation_data.action:
            for curve in _fcurves(chunk):
                curves += 1
                frames.update(round(k.co.x) for k in curve.keyframe_points)
    s["sequence_keys"] = {
        "group": group.name if group else None,
        "frames": sorted(frames),
        "curves": curves,
        "result_frames": bpy.context.scene.imfit.result_frames,
    }
    yield from s.frames(2)
    s.shot("sequence_done")


def _fcurves(id_block):
    action = id_block.animation_data.action
    if hasattr(action, "fcurves") and len(action.fcurves):
        return list(action.fcurves)
    from bpy_extras import anim_utils  # Blender 4.4+: layered actions

    bag = anim_utils.action_get_channelbag_for_slot(action, id_block.animation_data.action_slot)
    return list(bag.fcurves) if bag else []


def main(s):
    yield 0.5
    ui.install_extension(s, P["zip"])
    yield from s.frames(2)
    yield from preferences_page(s)
    yield from imfit_tabs(s)
    s.count_status_bar_draws()
    yield from fit_from_panel(s)
    if P.get("stop_after") == "fit":
        return
    image_name = s["image"]
    yield from shader_editor(s, image_name)
    yield from refine(s, image_name)
    yield from fit_sequence(s)
    s["tab_draws_end"] = {k: s.draws(f"panel_{k}") for k in ("IMAGE", "VIEW3D", "NODE")}


ui.run(main)
