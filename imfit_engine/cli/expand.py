"""`imfit expand`: adversarial texture expansion of an image, or a fit's canvas extended beyond its frame.

    imfit expand texture.png --scale 2 --preset cpu-quick -o big.png [--wavelets big.json]
    imfit expand fit.json --scale 2 -o wider.png [--wavelets wider.json]

An image trains a generator (``imfit_engine.expand``) and writes the expansion; the generator is kept
in a checkpoint (default: the output's name with ``.pt``) that a later run reuses when it was trained on
the same image with the same settings, or resumes when it was stopped (Ctrl-C stops training, writes
the checkpoint and the expansion so far, and exits with 130).  ``--wavelets`` fits Gabor wavelets to the
expansion.  A fit file (.json, or torch-imfit .txt with --source-width/--source-height) is rendered on a
canvas ``scale`` times as large, centred (``expand.canvas``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import api
from ..core.config import DEFAULTS, FitConfig, check_config
from ..errors import ImfitError
from ..expand import config as expand_config
from ..expand.canvas import extend_canvas_scale
from ..io import formats, images
from .common import DEVICES, ProgressBar, StopFlag

FIT_SUFFIXES = (".json", ".txt")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "expand",
        help="expand a texture 2x/4x/8x (adversarial expansion), or extend a fit's canvas",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("input", help="texture image, or a fit file (.json / .txt) to render beyond its frame")
    p.add_argument("--scale", type=int, choices=expand_config.SCALES, default=2, help="2, 4 or 8 (default %(default)s)")
    p.add_argument(
        "--preset",
        choices=sorted(expand_config.PRESETS),
        default="cpu-quick",
        help="cpu-quick: minutes on a CPU; gpu: the paper's scale (k=128, 6 blocks, 100k iterations)",
    )
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.add_argument("--iterations", type=int, help="training iterations (default: the preset's)")
    p.add_argument("--checkpoint", help="generator checkpoint to reuse / resume / write (default: OUTPUT.pt)")
    p.add_argument("--retrain", action="store_true", help="replace a checkpoint trained on another image or settings")
    p.add_argument(
        "--match-histogram",
        action="store_true",
        help="match the result's colour histogram to the input's after every 2x step",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument(
        "--wavelets",
        metavar="OUT.json",
        help="also fit Gabor wavelets to the result (image input), or write the extended fit (fit input)",
    )
    # the wavelet fit's defaults are imfit fit's (FitConfig's), so --wavelets fits as well as imfit fit does
    p.add_argument(
        "--num-gabors", type=int, default=DEFAULTS.num_wavelets, help="wavelets for --wavelets (default %(default)s)"
    )
    p.add_argument(
        "--fit-size", type=int, default=DEFAULTS.size, help="training raster of the wavelet fit (default %(default)s)"
    )
    p.add_argument(
        "--fit-iterations",
        type=int,
        default=DEFAULTS.iterations,
        help="full-size iterations of the wavelet fit (default %(default)s, as imfit fit's)",
    )
    p.add_argument("--source-width", type=int, help="for .txt input: the raster it was trained on")
    p.add_argument("--source-height", type=int, help="for .txt input: the raster it was trained on")
    return p


def _losses_postfix(p) -> str:
    return (
        f"L1 {p.losses['l1']:.2f} style {p.losses.get('style', 0):.2f} adv {p.losses['adv']:.2f} D {p.losses['d']:.2f}"
    )


def _extend_fit(a) -> int:
    ws = formats.load_params(a.input, a.source_width, a.source_height)
    big = extend_canvas_scale(ws, a.scale)
    images.save_png(a.output, api.render_image(big, big.width, big.height))
    if a.wavelets:
        formats.save_json(big, a.wavelets)
    print(
        f"{a.output}: {big.width}x{big.height}, the fit's canvas extended {a.scale}x ({len(big)} wavelets)"
        + (f"; extended fit -> {a.wavelets}" if a.wavelets else "")
    )
    return 0


def _fit_wavelets(rgb, a, name: str, stop):
    config = FitConfig(
        num_wavelets=a.num_gabors, size=a.fit_size, iterations=a.fit_iterations, device=a.device, seed=a.seed
    )
    flags = {"num_wavelets": "--num-gabors", "size": "--fit-size", "iterations": "--fit-iterations", "seed": "--seed"}
    check_config(config, flags)
    result = api.fit(rgb, None, config, should_stop=stop, source_name=name)
    formats.save_json(result.wavelets, a.wavelets)
    return result


def cmd_expand(a) -> int:
    from ..expand import apply, train

    path = Path(a.input)
    if path.suffix.lower() in FIT_SUFFIXES:
        return _extend_fit(a)
    overrides = {"device": a.device, "seed": a.seed}
    if a.iterations is not None:
        if a.iterations < 0:
            raise ImfitError(f"--iterations must be at least 0, got {a.iterations}")
        overrides["iterations"] = a.iterations
    config = expand_config.preset_config(a.preset, **overrides)
    rgb = images.load_image(path).rgb
    checkpoint = Path(a.checkpoint) if a.checkpoint else Path(a.output).with_suffix(".pt")
    with StopFlag() as stop:
        with ProgressBar("expansion", _losses_postfix) as bar:
            result = train.train(
                rgb,
                config,
                checkpoint=checkpoint,
                on_progress=bar,
                should_stop=stop,
                on_mismatch="retrain" if a.retrain else "error",
            )
        out = apply.expand(result.generator, rgb, a.scale, match=a.match_histogram)
        images.save_png(a.output, out)
        h, w = rgb.shape[:2]
        how = (
            f"reused the generator in {checkpoint}"
            if result.reused
            else f"trained {result.iterations} iterations in {result.seconds:.1f} s, checkpoint {checkpoint}"
        )
        print(f"{a.output}: {out.shape[1]}x{out.shape[0]} ({a.scale}x of {w}x{h}); {how}", flush=True)
        if result.stopped:
            print(f"imfit: {result.message}", file=sys.stderr)
            return 130
        if a.wavelets:
            fitted = _fit_wavelets(out, a, Path(a.output).name, stop)
            print(
                f"{a.wavelets}: {len(fitted.wavelets)} wavelets, PSNR {fitted.psnr:.2f} dB in {fitted.seconds:.1f} s",
                flush=True,
            )
        return 130 if stop.requested else 0
