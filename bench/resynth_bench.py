"""Benchmark of re-synthesis at scale in Blender: every path, from real fits of a bundled photo.

    .venv/bin/python bench/resynth_bench.py                    # N = 1024 / 4096 / 16384 (make bench)
    .venv/bin/python bench/resynth_bench.py --counts 1024      # one size
    .venv/bin/python bench/resynth_bench.py --fit 4096=other.json

Fits: Kodak's parrots (``bench/data/kodak/kodim23.png``, 768x512) fitted once with N wavelets for a time
budget (``imfit fit --size 768 --time-budget``: 120 / 180 / 300 s), cached in ``out/bench_fits/n<N>/``.

Per N and path, in a fresh file: the build seconds (node group, lists, OSL compile, auto bake), Cycles CPU
seconds for one sample at 480x320 and 1920x1080 (the render's wall time: Cycles' sync and OSL's JIT
included), EEVEE seconds (software GL here: shader compile included) and the largest error against the
engine's image at 480x320, in 1/255.  Paths: the unrolled node group (no culling), OSL over per-tile lists
(culled) and over one list of all (unculled), the EEVEE loop (5.0+), and the baked image (the worker's
16-bit bake; its seconds per frame at 1920x1080 are the bake row's).  Renders past ``--max-seconds`` of
expected time are extrapolated from the 480x320 render by the pixel ratio and marked ``~``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from blender_util import (
    addon_module,
    bpy_python_path,
    engine_display,
    fresh_scene,
    max_error_255,
    package_module,
    quiet_stdout,
    render_display,
)

bpy_python_path()  # Cycles' OSL compiler (oslquery) for the PyPI bpy
import bpy

PHOTO = REPO / "bench" / "data" / "kodak" / "kodim23.png"
FITS = REPO / "out" / "bench_fits"
BUDGETS = {1024: 120, 4096: 180, 16384: 300}  # seconds of fitting for the cached fits
SIZES = ((480, 320), (1920, 1080))


def fit_file(n: int, given: dict) -> Path:
    """The cached real fit of N wavelets (fitted here when missing)."""
    if n in given:
        return Path(given[n])
    path = FITS / f"n{n}" / f"{PHOTO.stem}.json"
    if not path.is_file():
        print(f"fitting {PHOTO.name} with {n} wavelets ({BUDGETS.get(n, 300)} s budget)...", flush=True)
        cmd = [sys.executable, "-m", "imfit_engine", "fit", str(PHOTO), "--num-gabors", str(n), "--size", "768"]
        cmd += ["--time-budget", str(BUDGETS.get(n, 300)), "--device", "cpu", "--output-dir", str(path.parent)]
        subprocess.run(cmd, check=True)
    return path


def scene_for(nt, ws, engine, path, width, height, culled=True):
    """A fresh file showing the fit on its plane through ``path``; (scene, group, build seconds)."""
    plane, scene_setup = addon_module("nodes.plane"), addon_module("nodes.scene")
    scene = fresh_scene()
    scene.render.engine = engine
    t0 = time.perf_counter()
    group = nt.build_wavelet_group(
        "bench", ws.params, ws.aspect, size=(ws.width, ws.height), path=path, engine=engine, scene=scene
    )
    if not culled:
        nt.set_culling(group, False, scene)
    build = time.perf_counter() - t0
    plane.create_preview_plane(scene, group, ws.width, ws.height, "bench")
    scene_setup.add_camera_framing(scene, ws.width, ws.height, plane.PLANE_HEIGHT)
    scene_setup.setup_render(scene, engine, width, height)
    return scene, group, build


def timed_render(scene, width, height):
    scene.render.resolution_x, scene.render.resolution_y = width, height
    with quiet_stdout():
        image, seconds = render_display(scene)
    return image, seconds


def bake_into(nt, group, ws, width, height, folder) -> tuple[float, float]:
    """The worker's bake of the group's field at width x height, shown by the group (its baked path);
    returns (seconds per frame, the worker's start-up and file seconds)."""
    formats, resynth = package_module("imfit_engine.io.formats"), package_module("imfit_engine.core.resynth")
    baked = addon_module("nodes.baked")
    os.makedirs(folder, exist_ok=True)
    fit = os.path.join(folder, "fit.json")
    formats.save_json(ws, fit)
    # the key the add-on gives the field now (its values and its users' controls at this frame), as Bake does
    frame = bpy.context.scene.frame_current
    controls, _ = addon_module("nodes.instances").bake_controls(group, frame)
    key = resynth.field_key(nt.animated_values(group, frame), controls)
    stem = f"bench_{width}x{height}"
    job = {
        "kind": "bake",
        "output_dir": folder,
        "bake": {
            "fit": fit,
            "width": width,
            "height": height,
            "folder": folder,
            "stem": stem,
            "frames": [{"number": None, "params": None, "controls": {}, "key": key}],
        },
    }
    job_path = os.path.join(folder, f"{stem}.job.json")
    Path(job_path).write_text(json.dumps(job))
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "imfit_engine.worker", "run", job_path]
    # stdin stays open while the worker runs, as Blender keeps it: the worker takes its end as "stop"
    with tempfile.TemporaryFile("w+") as err:
        worker = subprocess.Popen(
            cmd, env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, text=True,
        )  # fmt: skip
        stdout = worker.stdout.read()
        returncode = worker.wait()
        worker.stdin.close()
        err.seek(0)
        stderr = err.read()
    total = time.perf_counter() - t0
    messages = [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("@imfit ")]
    result = next((m for m in messages if m["type"] == "result"), None)
    if returncode or result is None or result.get("stopped"):
        raise RuntimeError(f"bake failed: {stdout[-500:]} {stderr[-500:]}")
    frame = next(m["seconds"] for m in messages if m["type"] == "frame")
    if os.path.isfile(os.path.join(folder, os.path.basename(result["files"]["still"]))):
        baked.load_bake(group, result["manifest"], result["files"], None)
    nt.show_bake(group)
    return frame, total - frame


def bench_count(nt, ws, args, rows):
    tmp = tempfile.mkdtemp(prefix="imfit_bench_bake_")
    eevee = addon_module("nodes.scene").eevee_engine()
    reference = engine_display(ws.params, ws.aspect, *SIZES[0])
    cases = [
        ("node group (unrolled)", "CYCLES", "NODES", True),
        ("OSL culled", "CYCLES", "OSL", True),
        ("OSL unculled", "CYCLES", "OSL", False),
        ("baked image", "CYCLES", "BAKED", True),
    ]
    if addon_module("nodes.paths").loop_supported(bpy.app.version):
        cases.append(("EEVEE loop culled", eevee, "LOOP", True))
    n = len(ws)
    for label, engine, path, culled in cases:
        if label in args.skip:
            continue
        scene, group, build = scene_for(nt, ws, engine, path, *SIZES[0], culled=culled)
        row = {"N": n, "path": label, "build s": build, "note": nt.path_note(group)}
        if path == "BAKED":  # the worker's 16-bit bake at the render's size, shown through the group
            bake_into(nt, group, ws, *SIZES[0], tmp)
        image, small = timed_render(scene, *SIZES[0])
        row["error /255"] = max_error_255(image, reference)
        column = "EEVEE s 480x320" if engine != "CYCLES" else "Cycles s 480x320"
        row[column] = small
        ratio = (SIZES[1][0] * SIZES[1][1]) / (SIZES[0][0] * SIZES[0][1])
        big_column = column.replace("480x320", "1920x1080")
        if path == "BAKED":
            row["bake s/frame 1080p"], row["bake start-up s"] = bake_into(nt, group, ws, *SIZES[1], tmp)
        if small * ratio <= args.max_seconds:
            row[big_column] = timed_render(scene, *SIZES[1])[1]
        else:
            row[big_column] = f"~{small * ratio:.0f}"
        rows.append(row)
        print(json.dumps(row), flush=True)


def table(rows) -> str:
    columns = ["N", "path", "build s", "Cycles s 480x320", "Cycles s 1920x1080", "EEVEE s 480x320"]
    columns += ["EEVEE s 1920x1080", "bake s/frame 1080p", "error /255"]

    def cell(value):
        if value is None:
            return ""
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--fit", action="append", default=[], help="N=PATH: use this fit file for N")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="longest render run; longer: ~estimate")
    parser.add_argument("--skip", action="append", default=[], help="a path label to leave out")
    parser.add_argument("--json", default=str(REPO / "out" / "resynth_bench.json"))
    args = parser.parse_args(argv)
    given = {int(k): v for k, v in (item.split("=", 1) for item in args.fit)}
    nt = addon_module("nodes.group")
    formats = package_module("imfit_engine.io.formats")
    rows = []
    for n in args.counts:
        path = fit_file(n, given)
        ws = formats.load_json(path)
        print(f"N={n}: {path} ({ws.width}x{ws.height}, PSNR {ws.meta.get('metrics', {}).get('psnr', 0):.2f} dB)")
        bench_count(nt, ws, args, rows)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\nBlender {bpy.app.version_string}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
