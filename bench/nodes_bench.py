"""Benchmark of the generated shader node group: build time, render time, accuracy.

    .venv/bin/python bench/nodes_bench.py                 # Cycles, 256 / 1024 / 4096 wavelets
    .venv/bin/python bench/nodes_bench.py --eevee         # EEVEE too (software GL here: slow)
    .venv/bin/python bench/nodes_bench.py --counts 64 512 --size 128x96

Each row builds the group in a fresh scene, renders the preview plane once (emission,
Standard view transform, pixel centres) and compares with the engine's reference image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from blender_util import (
    addon_module,
    max_error_255,
    preview_scene,
    quiet_stdout,
    realistic_params,
    reference_display,
    render_display,
)


def bench_row(nt, engine, count, width, height):
    params = realistic_params(count, width / height, height, seed=count)
    scene, group, _, build_s = preview_scene(nt, params, width, height, engine)
    with quiet_stdout():
        image, render_s = render_display(scene)
    error = max_error_255(image, reference_display(params, width / height, width, height))
    return nt.get_backend(group), build_s, render_s, error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--size", default="96x64", help="render size WxH (default 96x64)")
    parser.add_argument("--eevee", action="store_true", help="also render with EEVEE")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    nt = addon_module("nodes.group")
    engines = ["CYCLES"] + (["BLENDER_EEVEE"] if args.eevee else [])
    print(f"{'engine':<14}{'backend':<12}{'N':>6}{'build s':>10}{'render s':>10}{'max err /255':>14}")
    for engine in engines:
        for count in args.counts:
            backend, build_s, render_s, error = bench_row(nt, engine, count, width, height)
            print(f"{engine:<14}{backend:<12}{count:>6}{build_s:>10.2f}{render_s:>10.2f}{error:>14.3f}", flush=True)


if __name__ == "__main__":
    main()
