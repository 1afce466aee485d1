"""`imfit` / `python -m imfit_engine`: fit, render and convert wavelet fits from a shell.

`imfit fit` takes torch-imfit's arguments (same names and defaults where the seed has them).
User errors print one line `imfit: error: ...` and exit with status 2; Ctrl-C stops the fit,
writes the best result so far and exits with status 130.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from . import export, formats, images, pipeline, sequence, style_cli, style_fit
from . import expand_cli
from .errors import ImfitError
from .fit import FitConfig

log = logging.getLogger("imfit")


def _fit_args(p: argparse.ArgumentParser) -> None:
    d = FitConfig()
    p.add_argument("path", help="image file, or folder of images / frames / clip folders (see --mode)")
    p.add_argument("--mode", choices=("image", "folder", "video", "vm"), default="image",
                   help="image: one file; folder: each image on its own; video: frames in name order, each "
                        "warm-started from the previous one; vm: video mode on every subfolder holding images/")
    p.add_argument("--weight", help="weight image, or folder with <name>-wt.png / <name>.png (white = important)")
    p.add_argument("--iterations", type=int, default=d.iterations, help="iterations at full size (default %(default)s)")
    p.add_argument("--iter-multiple", type=float, default=d.iter_multiple,
                   help="iteration multiplier per coarser level (default %(default)s)")
    p.add_argument("--rescales", type=int, default=d.rescales, help="coarse levels, each half size (default %(default)s)")
    p.add_argument("--size", type=int, default=d.size, help="longest side of the training raster (default %(default)s)")
    p.add_argument("--num-gabors", type=int, default=d.num_wavelets, help="number of wavelets (default %(default)s)")
    p.add_argument("--gradient", type=float, default=d.gradient, help="weight of the gradient loss")
    p.add_argument("--sobel", type=float, default=d.sobel, help="weight of the Sobel edge loss")
    p.add_argument("--l1", type=float, default=d.l1, help="weight of the L1 loss")
    p.add_argument("--global-lr", type=float, default=d.lr, help="learning rate (default %(default)s)")
    p.add_argument("--gamma", type=float, default=d.gamma, help="learning-rate factor on plateaus (default %(default)s)")
    p.add_argument("--mutation-scale", type=float, default=d.mutation_scale, help="random parameter mutation")
    p.add_argument("--output-dir", default="results", help="where results go (default %(default)s)")
    p.add_argument("--keyframes", type=int, default=sequence.DEFAULT_KEYFRAME_INTERVAL,
                   help="video: cold start every N frames (default %(default)s)")
    p.add_argument("--frames", metavar="A-B", help="video, vm: fit only frames A to B (numbers in the file names), "
                                                   "e.g. one shard of a render-farm job")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default=d.compile,
                   help="fused render kernels (torch.compile): ~2x faster after a one-off compile; auto = on for CUDA")
    p.add_argument("--time-budget", type=float, default=d.time_budget, metavar="SECONDS",
                   help="run the full-size level as long as this budget allows, then anneal (0: --iterations sets it)")
    p.add_argument("--format", choices=pipeline.OUTPUT_FORMATS, default="json", help="parameter file format")
    p.add_argument("--preset", choices=sorted(pipeline.PRESETS), default="default",
                   help="seed: torch-imfit's own algorithm, for comparisons (no warm start)")
    style_cli.add_style_args(p, fit=True)


def _config(a) -> FitConfig:
    checks = [("--num-gabors", a.num_gabors, 1), ("--size", a.size, 4), ("--iterations", a.iterations, 0),
              ("--rescales", a.rescales, 0), ("--keyframes", a.keyframes, 1)]
    for name, value, low in checks:
        if value < low:
            raise ImfitError(f"{name} must be at least {low}, got {value}")
    if not a.global_lr > 0:
        raise ImfitError(f"--global-lr must be positive, got {a.global_lr}")
    return FitConfig(num_wavelets=a.num_gabors, size=a.size, iterations=a.iterations, iter_multiple=a.iter_multiple,
                     rescales=a.rescales, lr=a.global_lr, gamma=a.gamma, l1=a.l1, gradient=a.gradient, sobel=a.sobel,
                     mutation_scale=a.mutation_scale, device=a.device, seed=a.seed, preset=a.preset,
                     compile=a.compile, time_budget=a.time_budget)


class _StopFlag:
    """First Ctrl-C asks the fit to stop (keeping the best result); a second one aborts."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nimfit: stopping after this step; the best result so far will be written", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)

    def __call__(self) -> bool:
        return self.requested


def _progress_bar(label: str):
    """A tqdm bar on a terminal; nothing when stderr is a pipe or file."""
    if not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=1, desc=label, unit="it", leave=False, dynamic_ncols=True)

    def update(p):
        bar.total = p.total
        bar.n = p.iteration
        bar.set_postfix_str(f"level {p.level + 1}/{p.levels} PSNR {p.psnr:.2f} dB", refresh=True)

    return bar, update


def _fit_one(image, weight, config, out_dir, fmt, stop, style=None):
    bar, update = _progress_bar(Path(image).name)
    try:
        if style is None:
            result = pipeline.fit_image_file(image, weight, config, on_progress=update, should_stop=stop)
        else:  # (path, StyleConfig): a style-guided fit
            result = style_fit.fit_style_file(image, style[0], config, style[1], on_progress=update, should_stop=stop)
    finally:
        if bar is not None:
            bar.close()
    written = pipeline.write_result(result, out_dir, Path(image).stem, fmt)
    print(f"{Path(image).name}: PSNR {result.psnr:.2f} dB in {result.seconds:.1f} s "
          f"({len(result.wavelets)} wavelets) -> {written[0]}", flush=True)
    return result


class _FrameBars:
    """One progress bar per frame of a sequence (on a terminal)."""

    def __init__(self):
        self.frame, self.bar, self.update = None, None, None

    def __call__(self, frame, progress):
        if frame is not self.frame:
            self.close()
            self.frame = frame
            self.bar, self.update = _progress_bar(f"frame {frame.number}")
        if self.update is not None:
            self.update(progress)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        self.bar = self.update = None


def _print_frame(done) -> None:
    how = "found finished, kept" if done.resumed else f"{done.seconds:.1f} s"
    start = "keyframe" if done.keyframe else "warm"
    print(f"frame {done.number} ({done.index}/{done.count}, {start}): PSNR {done.psnr:.2f} dB, {how} -> {done.path}",
          flush=True)


def _fit_sequence(folder, weight_arg, config, out_dir, fmt, keyframes, stop, frames=None):
    bars = _FrameBars()
    try:
        run = sequence.fit_sequence(sequence.folder_frames(folder, weight_arg), config, out_dir, keyframes,
                                    select=sequence.parse_range(frames) if frames else None, fmt=fmt,
                                    on_frame=_print_frame, on_progress=bars, should_stop=stop)
    finally:
        bars.close()
    if run.stopped:
        print(f"{folder}: stopped; {len(run.frames)} frames are finished in {out_dir}. Run the same command again "
              "to resume", flush=True)
    else:
        print(f"{folder}: {len(run.frames)} frames ({run.fitted} fitted now), mean PSNR {run.psnr:.2f} dB"
              + (f", {run.flicker.describe()}" if run.flicker else ""), flush=True)


def cmd_fit(a) -> int:
    config = _config(a)
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
    with _StopFlag() as stop:
        if a.mode == "image":
            if path.is_dir():
                raise ImfitError(f"{path} is a folder: use --mode folder, video or vm for folders")
            weight = images.find_weight(path, a.weight) if a.weight else None
            if a.weight and weight is None:
                raise ImfitError(f"no weight for {path.name} in {a.weight}: expected {path.stem}-wt.png or {path.stem}.png")
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
                _fit_sequence(clip / "images", weights if weights.is_dir() else None, config, out / clip.name,
                              a.format, a.keyframes, stop, a.frames)
        return 130 if stop.requested else 0


def _size_args(p, what):
    p.add_argument("--width", type=int, help=f"{what} raster width (torch-imfit .txt files need it)")
    p.add_argument("--height", type=int, help=f"{what} raster height (default: square, or the fit's aspect)")


def cmd_render(a) -> int:
    if a.width < 1 or (a.height is not None and a.height < 1):
        raise ImfitError(f"render size must be positive, got --width {a.width} --height {a.height}")
    source_width, source_height = a.source_width, a.source_height
    if Path(a.params).suffix.lower() == ".txt" and source_width is None and source_height is None:
        # a torch-imfit .txt has no aspect: like torch-imfit, render it on the raster asked for
        source_width, source_height = a.width, a.height or a.width
    ws = formats.load_params(a.params, source_width, source_height)
    height = a.height or max(1, round(a.width / ws.aspect))
    images.save_png(a.output, pipeline.render_preview(ws, a.width, height))
    print(f"{a.output}: {a.width}x{height}, {len(ws)} wavelets")
    return 0


def cmd_convert(a) -> int:
    ws = formats.load_params(a.input, a.width, a.height)
    formats.save_params(ws, a.output, a.width, a.height)
    print(f"{a.output}: {len(ws)} wavelets")
    return 0


def cmd_export(a) -> int:
    outputs = [(a.glsl, lambda ws, p: export.export_glsl(ws, p, a.glsl_dialect)),
               (a.uniforms, export.export_uniforms), (a.texture, export.export_texture), (a.osl, export.export_osl)]
    chosen = [(path, write) for path, write in outputs if path]
    if not chosen:
        raise ImfitError("nothing to export: give --glsl, --uniforms, --texture and/or --osl")
    ws = formats.load_params(a.params, a.source_width, a.source_height)
    for path, write in chosen:
        try:
            write(ws, path)
        except ImfitError as e:
            raise ImfitError(f"{a.params}: {e}") from None
        print(f"{path}: {len(ws)} wavelets")
    return 0


def _source_size_args(p):
    p.add_argument("--source-width", type=int, help="for .txt input: the raster it was trained on (render: "
                                                     "default the output raster, as torch-imfit renders)")
    p.add_argument("--source-height", type=int, help="for .txt input: the raster it was trained on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imfit", description="Fit images with sums of Gabor wavelets.")
    sub = parser.add_subparsers(dest="command", required=True)
    _fit_args(sub.add_parser("fit", help="fit an image, a folder, or a frame sequence"))
    r = sub.add_parser("render", help="re-synthesise a fit at any size")
    r.add_argument("params", help="fit file (.json or torch-imfit .txt)")
    r.add_argument("--width", type=int, required=True, help="output width in pixels")
    r.add_argument("--height", type=int, help="output height (default: keeps the fit's aspect; a torch-imfit .txt "
                                               "without --source-width/--source-height: square)")
    r.add_argument("-o", "--output", required=True, help="output PNG")
    _source_size_args(r)
    c = sub.add_parser("convert", help="convert between canonical JSON and torch-imfit .txt")
    c.add_argument("input")
    c.add_argument("output")
    _size_args(c, "torch-imfit")
    e = sub.add_parser("export", help="export a fit for GLSL hosts (Shadertoy, WebGL, TouchDesigner) or Cycles OSL")
    e.add_argument("params", help="fit file (.json or torch-imfit .txt)")
    e.add_argument("--glsl", metavar="OUT.glsl", help="self-contained fragment shader, fit inlined (<= 1365 wavelets)")
    e.add_argument("--glsl-dialect", choices=export.GLSL_DIALECTS, default="gl330",
                   help="gl330: desktop GL 3.3; es300: WebGL2/GLES 3; shadertoy: paste into the Image tab")
    e.add_argument("--uniforms", metavar="OUT.txt", help="uniform payload for shaders/gabor_uniform.frag")
    e.add_argument("--texture", metavar="OUT.exr|OUT.png", help="data texture for shaders/gabor_texture.frag")
    e.add_argument("--osl", metavar="OUT.osl", help="OSL shader for a Cycles Script node")
    _source_size_args(e)
    expand_cli.add_parser(sub)
    style_cli.add_stylize_parser(sub)
    return parser


def cmd_stylize(a) -> int:
    with _StopFlag() as stop:
        return style_cli.cmd_stylize(a, stop)


COMMANDS = {"fit": cmd_fit, "render": cmd_render, "convert": cmd_convert, "export": cmd_export, "stylize": cmd_stylize}

COMMANDS["expand"] = expand_cli.cmd_expand


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"imfit: {record.levelname.lower()}: {record.getMessage()}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    saved = log.handlers[:], log.level, log.propagate
    log.handlers[:], log.level, log.propagate = [handler], logging.INFO, False
    try:
        return COMMANDS[args.command](args)
    except ImfitError as e:
        print(f"imfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imfit: interrupted", file=sys.stderr)
        return 130
    finally:
        log.handlers[:], log.level, log.propagate = saved


if __name__ == "__main__":
    sys.exit(main())
