"""GUI session "interrupts" (Blender started with --enable-event-simulate: keys and clicks are simulated):
the Style and Expand Texture sub-panels opened by clicks and run; a fit stopped by Esc, one by a click on the
panel's Cancel button, one whose worker is killed (SIGKILL), one ended by opening another file; then Ctrl-Z and
Ctrl-Shift-Z after a finished fit.  Results: results.json (see test_ui_interrupts.py)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpy
import driver_lib as ui

P = ui.PARAMS


def image_sidebar():
    area = ui.area_of("IMAGE_EDITOR")
    return area, ui.region_of(area, "UI")


def toggle_subpanel(s, name: str, index_from_bottom: int, at: list | None = None):
    """Click a sub-panel header of the ImFit panel in the Image Editor's sidebar, found on the screen as the
    ``index_from_bottom``-th text row from the panel's bottom (sub-panels below it closed), or clicked ``at``
    again, and count its draws.
    The editor shows no image and the panel no preview meanwhile: the sidebar overlaps the editor, and an image
    under it or a preview above the sub-panels would move or hide the rows."""
    short = f"panel_{name}"
    if short not in s.results["draws"]:
        s.count_draws(getattr(bpy.types, f"IMFIT_PT_IMAGE_{name}"), short)
    area, region = image_sidebar()
    area.spaces.active.image = None
    preview = bpy.data.images.get(ui.addon_module("jobs.fit").PREVIEW_IMAGE)
    if preview is not None:
        bpy.data.images.remove(preview)
    yield from s.frames(3)
    headers = ui.sidebar_headers(ui.screen_pixels(s, f"{name}_before_click"), region)
    record = {"headers": headers, "draws_before": s.draws(short)}
    if at is None and len(headers) > index_from_bottom:
        at = [region.x + 40, headers[index_from_bottom]]
    if at is not None:
        record["clicked"] = at
        ui.click(*at)
        yield from s.frames(4)
    record["draws_after"] = s.draws(short)
    s.shot(f"{name}_after_click")
    return record


def run_from_subpanel(s, idname: str, timeout: float):
    if ui.job_running():
        raise RuntimeError(f"a job is running before {idname} was invoked (a click went astray?)")
    s[f"{idname}_invoke"] = ui.invoke_from_panel(idname)
    return (yield from ui.follow_job(s, timeout=timeout))


def stylize(s):
    content = ui.load_image(P["style_content"])
    bpy.context.scene.imfit.image = content
    settings = bpy.context.scene.imfit_style
    settings.style = bpy.data.images.load(P["style_image"], check_existing=True)
    for key, value in P["style"].items():
        setattr(settings, key, value)
    s["style_panel"] = yield from toggle_subpanel(s, "style", 1)  # below it: Expand Texture
    s["stylize"] = yield from run_from_subpanel(s, "imfit.stylize", P["fit_timeout"])
    result = bpy.data.images.get(settings.result_image) if settings.result_image else None
    s["stylize_image"] = {
        "name": result.name if result else None,
        "size": list(result.size) if result else None,
        "packed": bool(result and result.packed_file),
        "content_size": list(content.size),
    }
    yield from s.frames(2)
    s.shot("stylize_done")
    # closed again (its header is where it was, the preview gone), so Expand Texture's header is the last row
    s["style_panel_closed"] = yield from toggle_subpanel(s, "style", 1, at=s["style_panel"].get("clicked"))


def expand(s):
    texture = ui.load_image(P["expand_image"])
    bpy.context.scene.imfit.image = texture
    settings = bpy.context.scene.imfit_expand
    for key, value in P["expand"].items():
        setattr(settings, key, value)
    s["expand_panel"] = yield from toggle_subpanel(s, "expand", 0)
    s["expand"] = yield from run_from_subpanel(s, "imfit.expand_texture", P["fit_timeout"])
    result = bpy.data.images.get(settings.result_image) if settings.result_image else None
    s["expand_image"] = {
        "name": result.name if result else None,
        "size": list(result.size) if result else None,
        "source_size": list(texture.size),
    }
    yield from s.frames(2)
    s.shot("expand_done")


def start_fit(s, image_name: str):
    bpy.context.scene.imfit.image = bpy.data.images[image_name]
    ui.set_fit_settings(**P["fit"])
    invoked = ui.invoke_from_panel("imfit.fit")
    yield from s.wait_until(
        lambda: (active := ui.active_job()) is not None and active.iteration > P["stop_at"], P["fit_timeout"]
    )
    job = ui.active_job()
    return {"invoke": invoked, "iteration": job.iteration, "total": job.total, "pids": ui.worker_pids()}


def wait_stopped(s, started: float):
    """Until the job has ended: (seconds, iteration, stop requested, result in) along the way."""
    job, trace = ui.active_job(), []
    while ui.job_running() and time.monotonic() - started < P["stop_timeout"]:
        trace.append([round(time.monotonic() - started, 2), job.iteration, job.stop_requested, job.result is not None])
        yield 0.05
    return {
        "ended": not ui.job_running(),
        "seconds": round(time.monotonic() - started, 2),
        "error": job.error,
        "trace": trace[::4] + trace[-2:],
        "result": {k: v for k, v in (job.result or {}).items() if isinstance(v, (int, float, str, bool))},
    }


def esc(s, image_name: str):
    start = yield from start_fit(s, image_name)
    s.shot("esc_before")
    t = time.monotonic()
    ui.key("ESC")
    stop = yield from wait_stopped(s, t)
    yield from s.frames(2)
    s.shot("esc_after")
    s["esc"] = dict(
        start,
        stop=stop,
        scene=ui.scene_result(),
        stored=ui.stored(image_name),
        workers_after=[p for p in start["pids"] if ui.alive(p)],
    )


def cancel_button(s, image_name: str):
    start = yield from start_fit(s, image_name)
    yield from s.frames(2)
    area, region = image_sidebar()
    button = ui.cancel_button(ui.screen_pixels(s, "cancel_before"), region)
    t = time.monotonic()
    if button is not None:
        start["clicked"] = list(button)
        ui.click(*button)
    stop = yield from wait_stopped(s, t)
    yield from s.frames(2)
    s.shot("cancel_after")
    s["cancel"] = dict(
        start,
        stop=stop,
        scene=ui.scene_result(),
        stored=ui.stored(image_name),
        workers_after=[p for p in start["pids"] if ui.alive(p)],
    )


def sigkill(s, image_name: str):
    start = yield from start_fit(s, image_name)
    t = time.monotonic()
    for pid in start["pids"]:
        os.kill(pid, signal.SIGKILL)
    stop = yield from wait_stopped(s, t)
    yield from s.frames(3)
    s.shot("sigkill_after")
    s["sigkill"] = dict(start, stop=stop, fit_poll=bpy.ops.imfit.fit.poll(), panel_draws=s.draws("panel_IMAGE"))


def open_other_file(s, image_name: str):
    start = yield from start_fit(s, image_name)
    t = time.monotonic()
    bpy.ops.wm.open_mainfile(filepath=P["other_blend"])
    loaded = round(time.monotonic() - t, 2)
    gone = yield from s.wait_until(lambda: not any(ui.alive(p) for p in start["pids"]), P["stop_timeout"])
    yield from s.frames(3)
    s.shot("open_file_after")
    s["open_file"] = dict(
        start,
        load_seconds=loaded,
        workers_gone=gone,
        seconds=round(time.monotonic() - t, 2),
        file=bpy.data.filepath,
        fit_poll=bpy.ops.imfit.fit.poll(),
        groups=[g.name for g in bpy.data.node_groups if "imfit_backend" in g],
        images=[i.name for i in bpy.data.images],
    )


def file_state() -> dict:
    """Everything a fit adds, and whether it hangs together."""
    scene = bpy.context.scene
    materials_broken = [
        m.name
        for m in bpy.data.materials
        if m.node_tree and any(n.type == "GROUP" and n.node_tree is None for n in m.node_tree.nodes)
    ]
    return {
        "groups": sorted(g.name for g in bpy.data.node_groups if "imfit_backend" in g),
        "texts": sorted(t.name for t in bpy.data.texts if t.get("imfit_image")),
        "planes": sorted(o.name for o in bpy.data.objects if o.name.startswith("ImFit ")),
        "images": sorted(i.name for i in bpy.data.images),
        "materials_broken": materials_broken,
        "result_image": scene.imfit.result_image,
        "result_wavelets": scene.imfit.result_wavelets,
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
        "editor_image": getattr(ui.area_of("IMAGE_EDITOR").spaces.active.image, "name", None),
    }


def undo_redo(s):
    area = ui.area_of("IMAGE_EDITOR")
    with bpy.context.temp_override(**ui.override(area)):
        bpy.ops.image.open("EXEC_DEFAULT", True, filepath=P["undo_image"])  # as from Image > Open: an undo step
    image_name = area.spaces.active.image.name
    ui.set_fit_settings(**P["undo_fit"])
    s["undo_before_fit"] = file_state()
    ui.invoke_from_panel("imfit.fit")
    s["undo_fit"] = yield from ui.follow_job(s, timeout=P["fit_timeout"])
    yield from s.frames(2)
    s["undo_after_fit"] = file_state()
    view3d = ui.area_of("VIEW_3D")
    x, y = view3d.x + view3d.width // 2, view3d.y + view3d.height // 2
    draws = s.draws("panel_IMAGE")
    ui.key("Z", x, y, ctrl=True)
    yield from s.frames(4)
    s["after_undo"] = file_state()
    s.shot("after_undo")
    ui.key("Z", x, y, ctrl=True, shift=True)
    yield from s.frames(4)
    s["after_redo"] = file_state()
    s["undo_panel_draws"] = s.draws("panel_IMAGE") - draws
    s.shot("after_redo")
    s["undo_image"] = image_name


def main(s):
    yield 0.5
    ui.install_extension(s, P["zip"])
    ui.use_external_python(P["python"])
    s.count_draws(bpy.types.IMFIT_PT_IMAGE_main, "panel_IMAGE")
    s["layout"] = yield from ui.setup_editors(s)
    s["tabs"] = yield from ui.show_imfit_tabs(s)
    bpy.ops.wm.save_as_mainfile(filepath=P["other_blend"], copy=True)  # opened during a fit, later
    yield from stylize(s)
    yield from expand(s)
    image = ui.load_image(P["image"])
    yield from esc(s, image.name)
    yield from cancel_button(s, image.name)
    yield from sigkill(s, image.name)
    yield from open_other_file(s, image.name)
    yield from ui.show_imfit_tabs(s)  # the loaded file's sidebars
    yield from undo_redo(s)


ui.run(main)
