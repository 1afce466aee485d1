"""GUI session "eevee": a small fit's plane in the 3D Viewport's Material Preview (EEVEE, software OpenGL),
seen from the top so the plane is an upright rectangle on the screen; then large fits (P["large"]: hundreds to
16384 wavelets) brought in with File > Import > Gabor ImFit, each shown the same way.  Results: results.json,
the small fit's JSON (fit.json) and the screenshots (see test_ui_eevee.py)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpy
import driver_lib as ui
from bpy_extras import view3d_utils
from mathutils import Quaternion

P = ui.PARAMS


def plane_rectangle(plane) -> list[int]:
    """The plane's corners on the screen: [x0, y0, x1, y1] in window coordinates (bottom-up)."""
    area = ui.area_of("VIEW_3D")
    region, rv3d = ui.region_of(area), area.spaces.active.region_3d
    points = [
        view3d_utils.location_3d_to_region_2d(region, rv3d, plane.matrix_world @ v.co) for v in plane.data.vertices
    ]
    xs, ys = [p.x + region.x for p in points], [p.y + region.y for p in points]
    return [round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))]


def look_down_at(plane) -> None:
    """Straight down at the plane, framed, nothing drawn over it."""
    view3d = ui.area_of("VIEW_3D")
    space = view3d.spaces.active
    rv3d = space.region_3d
    rv3d.view_perspective = "ORTHO"
    rv3d.view_rotation = Quaternion((1.0, 0.0, 0.0, 0.0))
    for other in bpy.context.view_layer.objects:
        other.select_set(other == plane)
    bpy.context.view_layer.objects.active = plane
    with bpy.context.temp_override(**ui.override(view3d)):
        bpy.ops.view3d.view_selected()
    space.overlay.show_overlays = False  # no grid or selection outline over the plane


def settle_material_preview(s, plane, name: str):
    """Material Preview until the plane's picture stops changing (EEVEE compiles in the background)."""
    ui.area_of("VIEW_3D").spaces.active.shading.type = "MATERIAL"
    t = time.monotonic()
    checks, last = [], None
    while time.monotonic() - t < P["compile_timeout"]:
        yield 3.0
        ui.redraw_everything()
        yield 1.0
        pixels = ui.screen_pixels(s, name)
        x0, y0, x1, y1 = plane_rectangle(plane)
        crop = pixels[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4]
        mean = [round(float(v), 4) for v in crop.reshape(-1, 3).mean(0)]
        std = round(float(crop.std()), 4)
        checks.append([round(time.monotonic() - t, 1), mean, std])
        if last is not None and max(abs(a - b) for a, b in zip(mean, last)) < 0.002 and std > 0.02:
            break
        last = mean
    return {"seconds": round(time.monotonic() - t, 1), "checks": checks}


def show_large_fits(s):
    """Each large fit imported (as File > Import does), alone on the screen, in Material Preview."""
    group_module = ui.addon_module("nodes.group")
    s["large"] = {}
    for count, path in P["large"]:
        for obj in [o for o in bpy.data.objects if o.name.startswith("ImFit ")]:
            bpy.data.objects.remove(obj)
        ui.area_of("VIEW_3D").spaces.active.shading.type = "SOLID"
        name = f"large{count}"
        t = time.monotonic()
        result = bpy.ops.imfit.import_fit(filepath=path, name=name, create_plane=True)
        imported = round(time.monotonic() - t, 2)
        plane = bpy.data.objects.get(f"ImFit {name}")
        group = bpy.data.node_groups.get(f"ImFit {name}")
        entry = {"result": sorted(result), "import_seconds": imported, "plane": plane is not None}
        s["large"][str(count)] = entry
        if plane is None or group is None:
            continue
        entry.update(path=group_module.get_path(group), note=group_module.path_note(group))
        look_down_at(plane)
        yield 1.0
        entry["compile"] = yield from settle_material_preview(s, plane, f"{name}_preview")
        entry["rectangle"] = plane_rectangle(plane)
        s.shot(f"{name}_final")
        s.save()  # a crash on the next one keeps this one's results


def main(s):
    yield 0.5
    ui.install_extension(s, P["zip"])
    ui.use_external_python(P["python"])
    # a user clears the default scene's cube first: the plane is made at the origin, inside it
    cube = bpy.data.objects.get("Cube")
    if cube is not None:
        bpy.data.objects.remove(cube)
    view3d = ui.area_of("VIEW_3D")
    space = view3d.spaces.active
    space.show_region_ui = False
    # an Image Editor for the image (the panel fits the image it shows); the viewport keeps most of the window
    with bpy.context.temp_override(**ui.override(view3d)):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=0.25)
    yield from s.frames(2)
    min((a for a in ui.main_window().screen.areas if a.type == "VIEW_3D"), key=lambda a: a.x).type = "IMAGE_EDITOR"
    yield from s.frames(2)
    image = ui.load_image(P["image"])
    ui.set_fit_settings(**P["fit"])
    s["fit_invoke"] = ui.invoke_from_panel("imfit.fit")
    s["fit"] = yield from ui.follow_job(s, timeout=P["fit_timeout"])
    plane = bpy.data.objects.get(f"ImFit {image.name}")
    s["plane"] = plane.name if plane else None
    if plane is None:
        return
    text = next(t for t in bpy.data.texts if t.get("imfit_image") == image.name)
    with open(os.path.join(ui.OUT, "fit.json"), "w", encoding="utf-8") as f:
        f.write(text.as_string())
    look_down_at(plane)
    yield 1.0
    s["view_transform"] = bpy.context.scene.view_settings.view_transform
    s["compile"] = yield from settle_material_preview(s, plane, "material_preview")
    s["rectangle"] = plane_rectangle(plane)
    s["window"] = [ui.main_window().width, ui.main_window().height]
    s.shot("material_preview_final")
    s.save()
    yield from show_large_fits(s)


ui.run(main)
