"""`make bench`: quality, speed and memory against torch-imfit's algorithm, in one run on one machine.

Every case runs in a fresh subprocess (so peak RSS is its own) and reports wall seconds, peak RSS,
PSNR and SSIM at the training size.  Our fits also record PSNR over time at the full training size
(time spent measuring is not counted), which gives the two ratios the targets are stated in:
PSNR at the seed's wall time, and the time we need to reach the seed's final PSNR.

    .venv/bin/python bench/fit_bench.py            # the full table (several minutes on 2 cores)
    .venv/bin/python bench/fit_bench.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_case(spec: dict) -> dict:
    """One fit, in this process: the child side of `measure`."""
    import numpy as np
    import torch

    from imfit_engine.api import PRESETS, render_image
    from imfit_engine.core.config import FitConfig
    from imfit_engine.core.fit import level_sizes
    from imfit_engine.core.metrics import psnr_of, ssim
    from imfit_engine.core.targets import resize
    from imfit_engine.io.images import load_image

    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    rgb = load_image(REPO / spec["image"]).rgb
    config = FitConfig(**spec["config"])
    w, h = level_sizes(rgb.shape[1], rgb.shape[0], config.size, config.rescales)[-1]
    target = resize(torch.as_tensor(rgb), w, h).numpy()
    trace, hook_time, last = [], [0.0], [-1e9]
    budget = spec.get("budget")

    def on_progress(p):
        t0 = time.perf_counter()
        if spec.get("trace") and p.elapsed - hook_time[0] - last[0] >= spec.get("trace_every", 1.0):
            last[0] = p.elapsed - hook_time[0]
            trace.append((round(last[0], 2), round(psnr_of(float(np.mean((p.preview() - target) ** 2))), 3)))
        hook_time[0] += time.perf_counter() - t0

    start = time.perf_counter()

    def should_stop():
        return budget is not None and time.perf_counter() - start - hook_time[0] >= budget

    result = PRESETS[config.preset](rgb, None, config, on_progress=on_progress, should_stop=should_stop)
    wall = time.perf_counter() - start - hook_time[0]
    out = render_image(result.wavelets, w, h)
    psnr = psnr_of(float(np.mean((out - target) ** 2)))
    if spec.get("trace"):
        trace.append((round(wall, 2), round(psnr, 3)))
    return {
        "wall": wall,
        "psnr": psnr,
        "ssim": ssim(out, target),
        "iterations": result.iterations,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trace": trace,
        "size": f"{w}x{h}",
        "wavelets": len(result.wavelets),
    }


def measure(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case failed: {spec}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_to_reach(trace, psnr) -> float:
    return next((t for t, p in trace if p >= psnr), math.inf)


def scaling_case(spec: dict) -> dict:
    """Time per fit iteration (render + backward) for N wavelets sized like a fit's, and peak RSS."""
    import torch

    from imfit_engine.core.init import seed_wavelets, structure
    from imfit_engine.core.params import render_internal
    from imfit_engine.core.targets import resize
    from imfit_engine.io.images import load_image

    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    rgb = torch.as_tensor(load_image(REPO / spec["image"]).rgb)
    w, h = spec["width"], spec["height"]
    target = resize(rgb, w, h) * 2 - 1
    energy, _ = structure(target)
    internal = seed_wavelets(spec["n"], target, energy.sqrt(), w / h, torch.Generator().manual_seed(0))
    internal[:, 6:12] = 0.05
    internal.requires_grad_(True)
    times = []
    for _ in range(spec.get("reps", 3) + 1):
        t0 = time.perf_counter()
        out = render_internal(internal, w / h, w, h).clamp(-1, 1)
        ((out - target) ** 2).mean().backward()
        times.append(time.perf_counter() - t0)
    return {
        "ms_per_iter": 1000 * min(times[1:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(wd) for c, wd in zip(r, widths))
    return "\n".join([line(header), line(["-" * wd for wd in widths]), *map(line, rows)])


def _seed_comparison(photo: str, base: dict, iters: int, size: int) -> None:
    """torch-imfit's algorithm against ours on one photo: our defaults, its settings, and its wall time."""
    seed = measure({"image": photo, "config": {**base, "preset": "seed", "device": "cpu"}})
    default = measure({"image": photo, "config": {"num_wavelets": 256, "size": size, "device": "cpu"}, "trace": True})
    ours = measure({"image": photo, "config": {**base, "device": "cpu"}, "trace": True})
    # A long budget goes to the full-size level (`time_budget`: it runs until the budget, then anneals).  The
    # coarse levels converge within a few thousand cheap iterations, and more of them gives the full-size level
    # a worse start (measured in this time: iter_multiple 1.5 / 0.2 / 0.1 gave 23.93 / 24.18 / 23.84 dB).
    long_run = {"iterations": 50 * iters, "iter_multiple": 0.2, "time_budget": seed["wall"]}
    equal = measure(
        {"image": photo, "config": {**base, "device": "cpu", **long_run}, "budget": seed["wall"], "trace": True}
    )
    reach = time_to_reach(ours["trace"] + equal["trace"], seed["psnr"])
    rows = []
    for name, r in (
        ("seed preset", seed),
        ("ours, default settings", default),
        ("ours, the seed's settings", ours),
        ("ours, the seed's wall time", equal),
    ):
        rows.append(
            [
                name,
                r["wavelets"],
                r["size"],
                r["iterations"],
                f"{r['wall']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.3f}",
            ]
        )
    print(f"## {Path(photo).name} at {size} px\n")
    print(_table(rows, ["run", "wavelets", "size", "iters", "wall s", "peak RSS MB", "PSNR dB", "SSIM"]))
    print(
        f"\ndefault fit: {default['psnr'] - seed['psnr']:+.2f} dB over the seed preset in "
        f"{default['wall'] / seed['wall']:.2f} of its time (target >= +4 dB in less time)"
    )
    print(
        f"PSNR gain at the seed's wall time ({seed['wall']:.1f} s): {equal['psnr'] - seed['psnr']:+.2f} dB "
        f"(target >= +4)"
    )
    print(
        f"time to reach the seed's final {seed['psnr']:.2f} dB: {reach:.1f} s = {reach / seed['wall']:.3f} of its "
        f"time (target <= 0.1)\n",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="imfit-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--scaling-case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the table")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 768x512 x 4096 case")
    a = parser.parse_args(argv)
    if a.case:
        print(json.dumps(run_case(json.loads(a.case))))
        return 0
    if a.scaling_case:
        print(json.dumps(scaling_case(json.loads(a.scaling_case))))
        return 0

    import torch

    size, iters = (128, 60) if a.quick else (256, 100)
    # torch-imfit's settings, its schedule included (iter_multiple 1.5: our default gives more to the full size)
    base = {"num_wavelets": 256, "size": size, "iterations": iters, "iter_multiple": 1.5, "rescales": 2, "seed": 0}
    print(
        f"# Gabor ImFit benchmark — {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}\n",
        flush=True,
    )
    # astronaut is the photo the schedule was tuned on; kodim11 (boats) was never looked at while tuning
    for photo in ("tests/data/astronaut.png", "bench/data/kodak/kodim11.png"):
        _seed_comparison(photo, base, iters, size)
        if a.quick:
            break
    photo = "tests/data/astronaut.png"

    if not a.skip_large:
        # the target here is bounded memory: a short schedule shows the peak (it is reached every iteration)
        big = {
            "num_wavelets": 4096,
            "size": 768,
            "iterations": 10 if a.quick else 40,
            "rescales": 2,
            "seed": 0,
            "device": "cpu",
        }
        r = measure({"image": "bench/data/rocket.png", "config": big})
        print(
            _table(
                [
                    [
                        "ours 768x512",
                        r["wavelets"],
                        r["size"],
                        r["iterations"],
                        f"{r['wall']:.1f}",
                        f"{r['peak_rss_mb']:.0f}",
                        f"{r['psnr']:.2f}",
                        f"{r['ssim']:.3f}",
                    ]
                ],
                ["run", "wavelets", "size", "iters", "wall s", "peak RSS MB", "PSNR dB", "SSIM"],
            )
        )
        print(f"peak RSS {r['peak_rss_mb'] / 1024:.2f} GB (target <= 3 GB)\n", flush=True)

    rows = []
    counts = [256, 1024, 4096] if a.quick else [256, 1024, 4096, 16384]
    for n in counts:
        r = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--scaling-case",
                    json.dumps({"image": photo, "n": n, "width": 256, "height": 256}),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append([n, "256x256", f"{r['ms_per_iter']:.0f}", f"{r['peak_rss_mb']:.0f}"])
    print("Scaling (one fit iteration: render + backward, wavelets sized for N):")
    print(_table(rows, ["wavelets", "size", "ms/iter", "peak RSS MB"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
