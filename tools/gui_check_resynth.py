"""GUI check of re-synthesis at scale: large fits in EEVEE Material Preview of a real Blender window.

Run inside the shared Blender 4.3.2 GUI root (../shared/blender-ui/README.md), with the repository bound:

    /work/shared/blender-ui/run.sh /var/tmp/blender-ui-root tools/gui_check_resynth.py out/gui_resynth/log.txt \\
        "$PWD"

Environment (``UI_*`` reaches the script): ``UI_FITS`` a comma-separated list of fit files (default: the bench
fits out/bench_fits/n256, n4096, n16384), ``UI_ENGINES`` (default ``BLENDER_EEVEE_NEXT,CYCLES``: the scene's
render engine; the viewport is Material Preview, EEVEE, either way), ``UI_WAIT`` seconds to wait for shaders.

For each fit and engine: a fresh file, the extension imports the fit (File > Import's operator: stored fit,
node group, plane), a 3D viewport is switched to Material Preview looking through a camera that frames the
plane, and screenshots (xwd) are taken until two in a row agree.  The viewport's pixels inside the plane must
show the image: no magenta (a failed shader), not black, and close to the engine's image of the fit (the
add-on's numpy renderer): mean error and correlation are written to ``result.json`` beside the log, with the
screenshots.  Blender not crashing is the script reaching its end (``GUI CHECK DONE``) and exiting 0.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import bpy
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import dev_extension

OUT = os.environ.get("UI_OUT") or os.path.join(REPO, "out", "gui_resynth")
DEFAULT_FITS = [os.path.join(REPO, "out", "bench_fits", f"n{n}", "rocket.json") for n in (256, 4096, 16384)]
FITS = [f for f in os.environ.get("UI_FITS", ",".join(DEFAULT_FITS)).split(",") if f]
ENGINES = os.environ.get("UI_ENGINES", "BLENDER_EEVEE_NEXT,CYCLES").split(",")
WAIT = float(os.environ.get("UI_WAIT", "600"))
BACKGROUND = (0.0, 1.0, 0.0)  # the world's colour around the plane: easy to tell from the image
results = []


def log(*args):
    print("GUI:", *args, flush=True)


def view3d():
    window = bpy.context.window_manager.windows[0]
    areas = [a for a in window.screen.areas if a.type == "VIEW_3D"]
    area = max(areas, key=lambda a: a.width * a.height)
    region = next(r for r in area.regions if r.type == "WINDOW")
    return window, area, region


def screenshot(path):
    subprocess.run(f"xwd -root -silent | convert xwd:- '{path}'", shell=True, check=True)
    image = bpy.data.images.load(path, check_existing=False)
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1, :, :3]  # row 0 on top


def viewport_crop(shot, window, region):
    top = window.height - (region.y + region.height)
    return shot[top : top + region.height, region.x : region.x + region.width]


def compare(crop, expected):
    """(magenta fraction, mean error /255, correlation, spread) of the plane's pixels against the expected image.
    The plane is found as the box of non-background pixels away from the region's edges (the toolbar and the
    navigation buttons overlap the region there)."""
    crop = crop[40:-10, 80:-60]
    magenta = float(((crop[..., 0] > 0.85) & (crop[..., 1] < 0.15) & (crop[..., 2] > 0.85)).mean())
    background = np.abs(crop - np.array(BACKGROUND)).max(axis=2) < 0.08
    rows, cols = np.nonzero(~background)
    if len(rows) < 100:
        return magenta, 255.0, 0.0, 0.0
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    plane = crop[r0:r1, c0:c1]
    # shrink by a few pixels: the plane's edge is antialiased against the background
    m = 3
    plane = plane[m:-m, m:-m]
    h, w = plane.shape[:2]
    ys = (np.arange(h) + 0.5) / h * expected.shape[0]
    xs = (np.arange(w) + 0.5) / w * expected.shape[1]
    sampled = expected[ys.astype(int).clip(0, expected.shape[0] - 1)][:, xs.astype(int).clip(0, expected.shape[1] - 1)]
    error = float(np.abs(plane - sampled).mean() * 255)
    correlation = float(np.corrcoef(plane.ravel(), sampled.ravel())[0, 1])
    return magenta, error, correlation, float(plane.std())


def prepare_scene(engine):
    for collection in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.cameras, bpy.data.images):
        for item in list(collection):
            if not item.name.startswith("ImFit Preview"):
                collection.remove(item)
    for group in list(bpy.data.node_groups):
        bpy.data.node_groups.remove(group)
    for text in list(bpy.data.texts):
        bpy.data.texts.remove(text)
    scene = bpy.context.scene
    scene.render.engine = engine
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    world = bpy.data.worlds.get("ImFit check") or bpy.data.worlds.new("ImFit check")
    world.color = BACKGROUND
    world.use_nodes = False
    scene.world = world
    return scene


def steps():
    folder = tempfile.mkdtemp(prefix="imfit-gui-ext-")
    module = dev_extension.enable(folder)
    addon = module.addon
    log("extension enabled", module.__name__, "Blender", bpy.app.version_string)
    window, area, region = view3d()
    space = area.spaces.active
    space.overlay.show_overlays = False
    space.show_gizmo = False
    os.makedirs(OUT, exist_ok=True)
    for fit in FITS:
        for engine in ENGINES:
            case = {"fit": fit, "engine": engine}
            try:
                scene = prepare_scene(engine)
                t0 = time.perf_counter()
                with bpy.context.temp_override(window=window, area=area, region=region):
                    assert bpy.ops.imfit.import_fit(filepath=fit) == {"FINISHED"}
                image_name = scene.imfit.result_image
                group = addon.nodes.stored.find_group(image_name)
                case.update(n=int(group["imfit_count"]), path=addon.nodes.group.get_path(group))
                case["note"] = addon.nodes.group.path_note(group)
                case["import_s"] = time.perf_counter() - t0
                wavelets = addon.nodes.stored.load(image_name)
                plane_height = addon.nodes.plane.PLANE_HEIGHT
                camera = addon.nodes.scene.add_camera_framing(scene, wavelets.width, wavelets.height, plane_height)
                camera.data.show_passepartout = False  # the world's green stays green around the frame
                scene.render.resolution_x, scene.render.resolution_y = wavelets.width, wavelets.height
                ew, eh = 384, round(384 / wavelets.aspect)
                expected = addon.engine.resynth.render_display(wavelets.params, wavelets.aspect, ew, eh)
                log("imported", case)
                space.shading.type = "MATERIAL"
                space.shading.use_scene_world = True
                space.region_3d.view_perspective = "CAMERA"
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.view3d.view_center_camera()
                space.region_3d.view_camera_zoom = -6  # the whole plane inside the region, green around it
                space.region_3d.view_camera_offset = (0.0, 0.0)
                start, previous, shots = time.perf_counter(), None, 0
                while True:
                    yield 10.0
                    shots += 1
                    path = os.path.join(OUT, f"n{case['n']}_{engine}.png")
                    shot = screenshot(path)
                    crop = viewport_crop(shot, window, region)
                    if shots == 1:
                        log("screen", shot.shape, "window", window.width, window.height, "region", region.x,
                            region.y, region.width, region.height)  # fmt: skip
                    magenta, error, correlation, spread = compare(crop, expected)
                    stable = previous is not None and abs(previous - error) < 0.5
                    previous = error
                    waited = time.perf_counter() - start
                    log(f"n={case['n']} {engine} t={waited:.0f}s magenta={magenta:.3f} error={error:.1f} "
                        f"corr={correlation:.3f} std={spread:.3f}")  # fmt: skip
                    if (stable and correlation > 0.5) or waited > WAIT:
                        break
                case.update(
                    magenta=magenta,
                    error_255=error,
                    correlation=correlation,
                    plane_std=spread,
                    seconds_to_image=waited,
                    shows_image=bool(magenta < 0.01 and correlation > 0.9 and spread > 0.03),
                    screenshot=path,
                )
            except Exception as e:
                case["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            results.append(case)
            log("case", json.dumps(case))
            with open(os.path.join(OUT, "result.json"), "w") as f:
                json.dump(results, f, indent=1)
    log("GUI CHECK DONE", json.dumps([(c.get("n"), c["engine"], c.get("path"), c.get("shows_image")) for c in results]))
    bpy.ops.wm.quit_blender()


_steps = None


def tick():
    global _steps
    try:
        if _steps is None:
            _steps = steps()
        return next(_steps)
    except StopIteration:
        return None
    except Exception:
        traceback.print_exc()
        bpy.ops.wm.quit_blender()
        return None


bpy.app.timers.register(tick, first_interval=3.0)
