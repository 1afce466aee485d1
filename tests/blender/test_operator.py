"""The fit operator end to end in background mode: real bpy, a real worker process, real photos.

Fits are tiny (16 wavelets, 32 px) so the file stays fast; what is checked is the plumbing:
node group, stored text, metrics, save/reopen, warm start, cancel, dead workers, input files.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blender_util import read_pixels
from support import DATA

bpy = pytest.importorskip("bpy")

TINY = dict(num_wavelets=16, size=32, iterations=10)


def load(name: str):
    return bpy.data.images.load(str(DATA / name), check_existing=True)


def fit_tiny(image, **kwargs):
    settings = dict(TINY, create_plane=True)
    settings.update(kwargs)
    assert bpy.ops.imfit.fit(image=image.name, **settings) == {"FINISHED"}
    return bpy.context.scene.imfit


def stored(ext, image_name):
    return ext.addon.nodes.stored.load(image_name)


def start_long_job(ext, image, previews: int = 0):
    """A job that would run far longer than the test: it must be ended from outside.
    Returns once the worker reported progress (and ``previews`` live previews)."""
    addon = ext.addon
    config = bpy.context.scene.imfit.fit_config(bpy.context, num_wavelets=16, size=32, iterations=100_000, rescales=0)
    job = addon.jobs.fit.FitJob(
        bpy.context.scene,
        image,
        None,
        config,
        python=sys.executable,
        env=addon.jobs.interpreter.worker_environment([]),
        preview_seconds=0.0,
    ).start()
    deadline = time.monotonic() + 60
    while job.iteration == 0 or job.previews < previews:
        assert job.tick(timeout=0.5), f"the worker ended before its first progress report: {job.error}"
        assert time.monotonic() < deadline, "no progress from the worker within 60 s"
    return job


def test_fit_square_photo_builds_group_text_plane_and_metrics(ext):
    image = load("astronaut.png")
    settings = fit_tiny(image)

    assert settings.result_image == image.name and settings.result_wavelets == 16
    assert 14.0 < settings.result_psnr < 60.0  # a real fit of a photo, not noise or a constant
    assert 0.0 < settings.result_seconds < 60.0
    wavelets = stored(ext, image.name)
    assert wavelets.params.shape == (16, 12) and np.isfinite(wavelets.params).all()
    assert (wavelets.width, wavelets.height) == tuple(image.size) == (256, 256)
    assert wavelets.meta["settings"]["num_wavelets"] == 16 and wavelets.meta["settings"]["size"] == 32
    assert math.isclose(wavelets.meta["metrics"]["psnr"], settings.result_psnr, rel_tol=1e-6)

    group = bpy.data.node_groups["ImFit astronaut.png"]
    assert group["imfit_count"] == 16 and group.use_fake_user
    plane = bpy.data.objects["ImFit astronaut.png"]
    assert plane.name in bpy.context.scene.objects
    material = plane.data.materials[0]
    assert any(n.bl_idname == "ShaderNodeGroup" and n.node_tree == group for n in material.node_tree.nodes)
    preview = bpy.data.images[ext.addon.jobs.fit.PREVIEW_IMAGE]
    assert preview.packed_file is not None and tuple(preview.size) == (32, 32)


def test_fit_non_square_photo_keeps_its_aspect(ext):
    image = load("coffee.png")
    fit_tiny(image)
    wavelets = stored(ext, image.name)
    assert (wavelets.width, wavelets.height) == tuple(image.size) == (192, 128)
    assert math.isclose(bpy.data.node_groups["ImFit coffee.png"]["imfit_aspect"], 1.5, rel_tol=1e-6)
    dims = bpy.data.objects["ImFit coffee.png"].dimensions
    assert math.isclose(dims.x / dims.y, 1.5, rel_tol=1e-4)
    preview = bpy.data.images[ext.addon.jobs.fit.PREVIEW_IMAGE]
    assert tuple(preview.size) == (32, 21)  # the training raster: 32 px on the long side, 128 * 32 / 192 = 21.3


def test_saved_file_keeps_the_fit_and_refine_warm_starts(ext, tmp_path):
    image = load("coffee.png")
    before_psnr = fit_tiny(image).result_psnr
    before_text = ext.addon.nodes.stored.find_text(image.name).as_string()
    blend = tmp_path / "fit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert ext.addon.nodes.stored.find_text("coffee.png") is None
    bpy.ops.wm.open_mainfile(filepath=str(blend))

    text = ext.addon.nodes.stored.find_text("coffee.png")
    assert text is not None and text.as_string() == before_text
    assert bpy.data.node_groups["ImFit coffee.png"]["imfit_count"] == 16
    assert bpy.data.images[ext.addon.jobs.fit.PREVIEW_IMAGE].packed_file is not None

    assert bpy.ops.imfit.refine(image="coffee.png", **TINY) == {"FINISHED"}
    settings = bpy.context.scene.imfit
    after = stored(ext, "coffee.png")
    assert len(after) == 16 and after.meta["settings"]["rescales"] == 0
    # warm start: continuing from the stored fit never ends worse than it started
    assert settings.result_psnr >= before_psnr - 1e-3, (before_psnr, settings.result_psnr)
    assert not np.array_equal(after.params, json_params(before_text, ext))
    assert len([o for o in bpy.data.objects if o.name.startswith("ImFit coffee.png")]) == 1  # no second plane


def json_params(text, ext):
    return ext.addon.engine.formats.parse_json_text(text, "before").params


def test_cancel_mid_fit_keeps_the_best_result(ext):
    image = load("astronaut.png")
    job = start_long_job(ext, image, previews=2)
    assert job.running and 0.0 < job.fraction < 0.01 and "dB" in job.status
    live = bpy.data.images[ext.addon.jobs.fit.PREVIEW_IMAGE]
    assert live.packed_file is None and tuple(live.size) == (32, 32)  # the worker's PNG, reloaded
    job.request_stop()
    job.run_to_end()

    assert job.error is None, job.error
    assert job.result["stopped"] and job.result["iterations"] < 100_000
    assert math.isfinite(job.result["psnr"]) and job.result["psnr"] > 10.0
    wavelets = stored(ext, image.name)
    assert len(wavelets) == 16 and wavelets.meta["metrics"]["stopped"] is True
    assert bpy.data.node_groups["ImFit astronaut.png"]["imfit_count"] == 16
    assert not os.path.exists(job.folder)  # temp files go with the job


def test_killed_worker_is_reported_not_waited_for(ext):
    image = load("astronaut.png")
    job = start_long_job(ext, image)
    os.kill(job.process.pid, signal.SIGKILL)
    t0 = time.monotonic()
    job.run_to_end()
    assert time.monotonic() - t0 < 10.0
    assert job.result is None and "was killed (SIGKILL)" in job.error, job.error
    assert ext.addon.nodes.stored.find_text(image.name) is None


def test_loading_another_file_ends_a_running_fit(ext):
    job = start_long_job(ext, load("coffee.png"))
    bpy.ops.wm.read_homefile(use_empty=True)  # modal operators do not survive a file load
    assert not job.running and ext.addon.jobs.fit.active_job() is None
    deadline = time.monotonic() + 10
    while not job.process.exited and time.monotonic() < deadline:
        job.process.messages(timeout=0.5)
    assert job.process.exited  # the worker is gone too
    assert not os.path.exists(job.folder)


def test_engine_python_that_exits_is_a_report(ext, tmp_path):
    script = tmp_path / "broken-python"
    script.write_text("#!/bin/sh\necho 'this python is broken' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    prefs = ext.addon.ui.pref.get_preferences()
    prefs.python_source, prefs.python_path = "EXTERNAL", str(script)
    image = load("coffee.png")
    with pytest.raises(RuntimeError, match="exited with code 1 before sending a result: this python is broken"):
        bpy.ops.imfit.fit(image=image.name, **TINY)

    prefs.python_path = str(tmp_path / "no-such-python")
    with pytest.raises(RuntimeError, match="does not exist or is not executable"):
        bpy.ops.imfit.fit(image=image.name, **TINY)
    assert ext.addon.jobs.fit.active_job() is None or not ext.addon.jobs.fit.active_job().running


def test_worker_errors_reach_the_user(ext, tmp_path):
    image = load("coffee.png")
    with pytest.raises(RuntimeError, match="no image named 'nope.png'"):
        bpy.ops.imfit.fit(image="nope.png")
    with pytest.raises(RuntimeError, match="has no stored fit"):
        bpy.ops.imfit.refine(image=image.name)
    missing = bpy.data.images.new("missing", 4, 4)
    missing.source, missing.filepath = "FILE", str(tmp_path / "gone.png")
    with pytest.raises(RuntimeError, match="image missing has no pixels .*Reload or relink it"):
        bpy.ops.imfit.fit(image="missing", **TINY)
    bpy.context.scene.imfit.device = "CUDA"  # this machine's torch has no CUDA (on a GPU box it fits)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
            bpy.ops.imfit.fit(image=image.name, **TINY)
    bpy.context.scene.imfit.device = "CPU"

    # a file that changed on disk after Blender read it: the worker's own check speaks
    broken = tmp_path / "broken.png"
    broken.write_bytes((DATA / "coffee.png").read_bytes())
    shown = bpy.data.images.load(str(broken))
    assert shown.size[0] == 192  # Blender has its pixels
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(RuntimeError, match="cannot read image .*broken.png"):
        bpy.ops.imfit.fit(image=shown.name, **TINY)

    # the interpreter this venv was made from has no torch: the worker says so in words
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    if base_python.exists() and subprocess.run([base_python, "-c", "import torch"], capture_output=True).returncode:
        prefs = ext.addon.ui.pref.get_preferences()
        prefs.python_source, prefs.python_path = "EXTERNAL", str(base_python)
        with pytest.raises(RuntimeError, match="has no torch .*Install PyTorch from the add-on preferences"):
            bpy.ops.imfit.fit(image=image.name, **TINY)


def test_generated_and_float_images_are_written_encoded(ext, tmp_path):
    image_input = ext.addon.jobs.inputs
    # a float image holds scene-linear values: the worker must get sRGB-encoded ones
    linear = np.array([[0.0, 0.0031308, 0.2140, 1.0], [0.5, 0.18, 0.05, 0.9]], np.float32)  # row 0 = bottom
    img = bpy.data.images.new("linear", 4, 2, alpha=True, float_buffer=True)
    rgba = np.repeat(linear[..., None], 4, axis=2)
    rgba[..., 3] = 1.0
    rgba[0, 0, 3] = 0.25  # one translucent pixel: the alpha becomes the weight
    img.pixels.foreach_set(rgba.ravel())
    path = image_input.source_input(img, str(tmp_path))
    assert path == str(tmp_path / "source.png")
    got = read_png(path)
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(got[..., 0], srgb[::-1], atol=1 / 65535)  # row 0 of the file is the top
    assert math.isclose(got[1, 2, 0], 0.5, abs_tol=2e-3)  # linear 0.214 is mid-grey once encoded
    weight = read_png(image_input.weight_input(None, str(tmp_path)))
    assert weight[1, 0] == pytest.approx(0.25, abs=1 / 65535) and weight[0, 0] == 1.0

    # a byte image already holds encoded values: written unchanged
    byte = bpy.data.images.new("byte", 3, 1)
    values = np.array([[0.0, 0.2, 1.0]], np.float32)
    byte.pixels.foreach_set(np.repeat(values[..., None], 4, axis=2).ravel())
    byte_path = image_input.source_input(byte, str(tmp_path / "b"))
    np.testing.assert_allclose(read_png(byte_path)[0, :, 1], [0.0, 51 / 255, 1.0], atol=1 / 65535)

    # an image with a readable file of its own is passed as is
    photo = load("coffee.png")
    assert image_input.source_input(photo, str(tmp_path)) == str(DATA / "coffee.png")


def read_png(path):
    """A PNG's stored values in [0, 1], (H, W[, C]), row 0 on top, through Blender with no colour management."""
    rgba = read_pixels(path)
    return rgba[..., 0] if is_grey(path) else rgba[..., :3]


def is_grey(path) -> bool:
    return Path(path).read_bytes()[25] == 0  # the PNG header's colour type


def test_export_json_and_txt(ext, tmp_path):
    image = load("coffee.png")
    fit_tiny(image, create_plane=False)
    assert "ImFit coffee.png" not in bpy.data.objects
    json_path, txt_path = tmp_path / "fit.json", tmp_path / "fit.txt"
    assert bpy.ops.imfit.export_json(filepath=str(json_path), image=image.name) == {"FINISHED"}
    assert json_path.read_text() == ext.addon.nodes.stored.find_text(image.name).as_string()
    assert json.loads(json_path.read_text())["format"] == "gabor-imfit"
    assert bpy.ops.imfit.export_txt(filepath=str(txt_path), image=image.name) == {"FINISHED"}
    rows = [line.split(",") for line in txt_path.read_text().splitlines()]
    assert len(rows) == 16 and all(len(r) == 12 for r in rows)
    assert np.isfinite(np.array(rows, float)).all()


def test_rebuild_recreates_the_group_from_the_text(ext):
    image = load("astronaut.png")
    fit_tiny(image, create_plane=False)
    bpy.data.node_groups.remove(bpy.data.node_groups["ImFit astronaut.png"])
    assert bpy.ops.imfit.rebuild(image=image.name) == {"FINISHED"}
    group = bpy.data.node_groups["ImFit astronaut.png"]
    node_tree = ext.addon.nodes.group
    np.testing.assert_allclose(node_tree.read_wavelet_values(group), stored(ext, image.name).params, atol=1e-6)


def test_node_groups_follow_the_render_engine(ext):
    image = load("coffee.png")
    fit_tiny(image, create_plane=False)
    scene = bpy.context.scene
    group = bpy.data.node_groups["ImFit coffee.png"]
    scene.render.engine = ext.addon.nodes.scene.eevee_engine()
    bpy.context.view_layer.update()  # runs the depsgraph handler
    assert group["imfit_backend"] == "EEVEE"
    scene.render.engine = "CYCLES"
    ext.addon.handlers.imfit_sync_on_render_pre(scene)  # what a scripted render runs first
    assert group["imfit_backend"] == "CYCLES"


def test_check_engine_probes_and_caches(ext, tmp_path):
    import torch

    prefs = ext.addon.ui.pref.get_preferences()
    assert prefs.cached_probe() is None
    assert bpy.ops.imfit.check_engine() == {"FINISHED"}
    info = prefs.cached_probe()
    assert info["torch"] == torch.__version__ and info["python"] == sys.executable
    line = ext.addon.jobs.interpreter.status_line(info)
    assert line.startswith(f"PyTorch {torch.__version__}, ") and ext.addon.jobs.interpreter.engine_ready(info)

    # another Python makes the cache stale; a broken one is described, not raised
    script = tmp_path / "broken-python"
    script.write_text("#!/bin/sh\necho 'no torch here' >&2\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    prefs.python_source, prefs.python_path = "EXTERNAL", str(script)
    assert prefs.cached_probe() is None
    assert bpy.ops.imfit.check_engine() == {"FINISHED"}
    info = prefs.cached_probe()
    assert "exit code 3" in info["error"] and "no torch here" in info["error"]
    assert not ext.addon.jobs.interpreter.engine_ready(info)


def test_worker_process_separates_protocol_from_noise(ext):
    """Stray output never becomes a message; the exit message comes last with the stderr tail."""
    worker_client, worker = ext.addon.jobs.process, ext.addon.engine.protocol
    script = (
        "import sys\n"
        "print('loading weights...')\n"
        f"sys.stdout.write({worker.encode_message('progress', iteration=1, total=2)!r})\n"
        "print('@imfit {not json')\n"
        "print('warning: something', file=sys.stderr)\n"
        "sys.exit(sys.stdin.readline().strip() == 'stop' and 7)\n"
    )
    process = worker_client.WorkerProcess([sys.executable, "-c", script])
    process.start()
    process.request_stop()
    messages = []
    deadline = time.monotonic() + 30
    while not process.exited and time.monotonic() < deadline:
        messages += process.messages(timeout=0.5)
    assert [m["type"] for m in messages] == ["progress", "exit"]
    assert messages[0]["iteration"] == 1 and messages[1]["returncode"] == 7
    assert "warning: something" in messages[1]["stderr"] and "loading weights..." in messages[1]["stderr"]
    assert worker_client.exit_description(-9) == "was killed (SIGKILL)"


def test_out_of_memory_becomes_advice(ext):
    import torch

    from imfit_engine.worker.main import error_for

    kind, message = error_for(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"))
    assert kind == "out_of_memory" and "fewer wavelets or a smaller size" in message
    kind, message = error_for(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert kind == "no_torch" and "Install PyTorch from the add-on preferences" in message


def test_data_texture_follows_keyframes_on_frame_change(ext):
    """Past EEVEE's uniform limit a group reads a data texture: the frame handler keeps it animated."""
    from blender_util import realistic_params

    node_tree = ext.addon.nodes.group
    if not ext.addon.nodes.paths.loop_supported(bpy.app.version):
        pytest.skip("the EEVEE loop needs Blender 5.0")
    n = node_tree.EEVEE_UNROLLED_MAX + 1
    bpy.context.scene.render.engine = "BLENDER_EEVEE"
    group = node_tree.build_wavelet_group("animated", realistic_params(n, 1.0, 64, seed=1), 1.0, "EEVEE")
    assert node_tree.get_backend(group) == "EEVEE_LOOP"
    ext.addon.nodes.keyframes.keyframe_wavelets(group, realistic_params(n, 1.0, 64, seed=1), 1)
    ext.addon.nodes.keyframes.keyframe_wavelets(group, realistic_params(n, 1.0, 64, seed=2), 11)
    texture = node_tree.data_texture(group)

    def texels_at(frame):  # the lists may change length with the values: compare the bytes
        bpy.context.scene.frame_set(frame)
        return np.array(texture.pixels[:], np.float32).tobytes()

    first, middle, last = texels_at(1), texels_at(6), texels_at(11)
    assert first != last and middle != first and middle != last
    assert texels_at(1) == first


def test_the_add_on_starts_its_workers_with_it(ext):
    import os

    from imfit_engine import threads

    env = ext.addon.jobs.interpreter.worker_environment([])
    assert env["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    # background mode (this bpy): Blender draws nothing, so no core is kept back; the UI keeps one (tests/ui)
    assert env["OMP_NUM_THREADS"] == (os.environ.get("OMP_NUM_THREADS") or str(threads.usable_cores()))
