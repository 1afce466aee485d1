"""``imfit fit``: one image, a folder of images, a frame sequence (video) or a folder of clips (vm).

It takes torch-imfit's arguments (same names and defaults where the seed has them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import api, cluster, sequence
from ..core.config import DEFAULTS, SEED_ITER_MULTIPLE, FitConfig, check_config
from ..errors import ImfitError
from ..io import images
from . import style as style_cli
from .common import DEVICES, ProgressBar, StopFlag, check_at_least, fit_postfix


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit an image, a folder, or a frame sequence")
    d = DEFAULTS
    p.add_argument("path", help="image file, or folder of images / frames / clip folders (see --mode)")
    p.add_argument(
        "--mode",
        choices=("image", "folder", "video", "vm"),
        default="image",
        help="image: one file; folder: each image on its own; video: frames in name order, each "
        "warm-started from the previous one; vm: video mode on every subfolder holding images/",
    )
    p.add_argument("--weight", help="weight image, or folder with <name>-wt.png / <name>.png (white = important)")
    p.add_argument("--iterations", type=int, default=d.iterations, help="iterations at full size (default %(default)s)")
    p.add_argument(
        "--iter-multiple",
        type=float,
        default=None,
        help=f"iteration multiplier per coarser level (default {d.iter_multiple}; with --preset seed "
        f"torch-imfit's {SEED_ITER_MULTIPLE})",
    )
    p.add_argument(
        "--rescales", type=int, default=d.rescales, help="coarse levels, each half size (default %(default)s)"
    )
    p.add_argument("--size", type=int, default=d.size, help="longest side of the training raster (default %(default)s)")
    p.add_argument("--num-gabors", type=int, default=d.num_wavelets, help="number of wavelets (default %(default)s)")
    p.add_argument("--gradient", type=float, default=d.gradient, help="weight of the gradient loss")
    p.add_argument("--sobel", type=float, default=d.sobel, help="weight of the Sobel edge loss")
    p.add_argument("--l1", type=float, default=d.l1, help="weight of the L1 loss")
    p.add_argument("--global-lr", type=float, default=d.lr, help="learning rate (default %(default)s)")
    p.add_argument(
        "--gamma", type=float, default=d.gamma, help="learning-rate factor on plateaus (default %(default)s)"
    )
    p.add_argument("--mutation-scale", type=float, default=d.mutation_scale, help="random parameter mutation")
    p.add_argument("--output-dir", default="results", help="where results go (default %(default)s)")
    p.add_argument(
        "--keyframes",
        type=int,
        default=sequence.DEFAULT_KEYFRAME_INTERVAL,
        help="video: cold start every N frames (default %(default)s)",
    )
    p.add_argument(
        "--frames",
        metavar="A-B",
        help="video, vm: fit only frames A to B (numbers in the file names), e.g. one shard of a render-farm job",
    )
    p.add_argument("--device", choices=DEVICES, default=d.device)
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default=d.compile,
        help="torch.compile'd render kernels: auto = on for CUDA (the CPU runs its numba kernels); on = use them "
        "on the CPU too (needs a C++ compiler); off = plain torch kernels on a GPU",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=d.time_budget,
        metavar="SECONDS",
        help="run the full-size level as long as this budget allows, then anneal (0: --iterations sets it)",
    )
    p.add_argument("--format", choices=api.OUTPUT_FORMATS, default="json", help="parameter file format")
    p.add_argument(
        "--preset",
        choices=sorted(api.PRESETS),
        default=d.preset,
        help="seed: torch-imfit's own algorithm, for comparisons (no warm start)",
    )
    style_cli.add_style_args(p, fit=True)
    cluster.add_args(p)


# FitConfig fields as the user types them, for error messages
FLAGS = {
    "num_wavelets": "--num-gabors",
    "size": "--size",
    "iterations": "--iterations",
    "iter_multiple": "--iter-multiple",
    "rescales": "--rescales",
    "lr": "--global-lr",
    "gamma": "--gamma",
    "l1": "--l1",
    "gradient": "--gradient",
    "sobel": "--sobel",
    "mutation_scale": "--mutation-scale",
    "seed": "--seed",
    "time_budget": "--time-budget",
}


def _default_iter_multiple(preset: str) -> float:
    """Ours gives the time to the full size; torch-imfit's algorithm keeps its own schedule."""
    return SEED_ITER_MULTIPLE if preset == "seed" else DEFAULTS.iter_multiple


def config_from(a) -> FitConfig:
    check_at_least(("--keyframes", a.keyframes, 1))
    config = FitConfig(
        num_wavelets=a.num_gabors,
        size=a.size,
        iterations=a.iterations,
        iter_multiple=a.iter_multiple if a.iter_multiple is not None else _default_iter_multiple(a.preset),
        rescales=a.rescales,
        lr=a.global_lr,
        gamma=a.gamma,
        l1=a.l1,
        gradient=a.gradient,
        sobel=a.sobel,
        mutation_scale=a.mutation_scale,
        device=a.device,
        seed=a.seed,
        preset=a.preset,
        compile=a.compile,
        time_budget=a.time_budget,
    )
    check_config(config, FLAGS)
    return config


def _fit_one(image, weight, config, out_dir, fmt, stop, style=None):
    from ..style.fit import fit_style_file

    with ProgressBar(Path(image).name, fit_postfix) as bar:
        if style is None:
            result = api.fit_file(image, weight, config, on_progress=bar, should_stop=stop)
        else:  # (path, StyleConfig): a style-guided fit
            result = fit_style_file(image, style[0], config, style[1], on_progress=bar, should_stop=stop)
    written = api.write_result(result, out_dir, Path(image).stem, fmt)
    print(
        f"{Path(image).name}: PSNR {result.psnr:.2f} dB in {result.seconds:.1f} s "
        f"({len(result.wavelets)} wavelets) -> {written[0]}",
        flush=True,
    )
    return result


class _FrameBars:
    """One progress bar per frame of a sequence (on a terminal)."""

    def __init__(self):
        self.frame, self.bar = None, None

    def __call__(self, frame, progress):
        if frame is not self.frame:
            self.close()
            self.frame = frame
            self.bar = ProgressBar(f"frame {frame.number}", fit_postfix)
        self.bar(progress)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def _print_frame(done) -> None:
    how = "found finished, kept" if done.resumed else f"{done.seconds:.1f} s"
    start = "keyframe" if done.keyframe else "warm"
    print(
        f"frame {done.number} ({done.index}/{done.count}, {start}): PSNR {done.psnr:.2f} dB, {how} -> {done.path}",
        flush=True,
    )


def _fit_sequence(folder, weight_arg, config, out_dir, fmt, keyframes, stop, frames=None):
    bars = _FrameBars()
    try:
        run = sequence.fit_sequence(
            sequence.folder_frames(folder, weight_arg),
            config,
            out_dir,
            keyframes,
            select=sequence.parse_range(frames) if frames else None,
            fmt=fmt,
            on_frame=_print_frame,
            on_progress=bars,
            should_stop=stop,
        )
    finally:
        bars.close()
    if run.stopped:
        print(
            f"{folder}: stopped; {len(run.frames)} frames are finished in {out_dir}. Run the same command again "
            "to resume",
            flush=True,
        )
    else:
        print(
            f"{folder}: {len(run.frames)} frames ({run.fitted} fitted now), mean PSNR {run.psnr:.2f} dB"
            + (f", {run.flicker.describe()}" if run.flicker else ""),
            flush=True,
        )


def cmd_fit(a: argparse.Namespace) -> int:
    config = config_from(a)
    cluster.check_args(a)
    path, out = Path(a.path), Path(a.output_dir)
    style = None
    if a.style is not None:
        if a.mode != "image" or a.weight:
            raise ImfitError("--style fits one image (--mode image) without a --weight")
        style = (a.style, style_cli.style_config(a, fit=True))
    if a.frames is not None:
        if a.mode not in ("video", "vm"):
            raise ImfitError(f"--frames selects frames of a sequence: use it with --mode video or vm, not {a.mode}")
        sequence.parse_range(a.frames)  # a bad range fails before any fitting
    with StopFlag() as stop:
        if a.ray is not None:  # on a Ray cluster: one task per keyframe interval or image
            return cluster.fit(a, config, stop)
        if a.mode == "image":
            if path.is_dir():
                raise ImfitError(f"{path} is a folder: use --mode folder, video or vm for folders")
            weight = images.find_weight(path, a.weight) if a.weight else None
            if a.weight and weight is None:
                raise ImfitError(
                    f"no weight for {path.name} in {a.weight}: expected {path.stem}-wt.png or {path.stem}.png"
                )
            _fit_one(path, weight, config, out, a.format, stop, style)
        elif a.mode == "folder":
            for image in images.list_images(path):
                if stop():
                    break
                _fit_one(image, images.find_weight(image, a.weight), config, out, a.format, stop)
        elif a.mode == "video":
            _fit_sequence(path, a.weight, config, out, a.format, a.keyframes, stop, a.frames)
        else:  # vm: a folder of clips, each with images/ and optional weights/
            if not path.is_dir():
                raise ImfitError(f"{path} is not a folder: --mode vm expects a folder of clip folders")
            clips = sorted(d for d in path.iterdir() if (d / "images").is_dir())
            if not clips:
                raise ImfitError(f"no clip folders in {path}: --mode vm expects subfolders that hold images/")
            for clip in clips:
                weights = clip / "weights"
                _fit_sequence(
                    clip / "images",
                    weights if weights.is_dir() else None,
                    config,
                    out / clip.name,
                    a.format,
                    a.keyframes,
                    stop,
                    a.frames,
                )
        return 130 if stop.requested else 0
