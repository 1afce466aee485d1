"""``imfit render``, ``imfit convert`` and ``imfit export``: what can be done with a fit file."""

from __future__ import annotations

from pathlib import Path

from .. import api
from ..errors import ImfitError
from ..io import export, formats, images


def _source_size_args(p) -> None:
    p.add_argument(
        "--source-width",
        type=int,
        help="for .txt input: the raster it was trained on (render: default the output raster, as torch-imfit renders)",
    )
    p.add_argument("--source-height", type=int, help="for .txt input: the raster it was trained on")


def add_parsers(sub) -> None:
    r = sub.add_parser("render", help="re-synthesise a fit at any size")
    r.add_argument("params", help="fit file (.json or torch-imfit .txt)")
    r.add_argument("--width", type=int, required=True, help="output width in pixels")
    r.add_argument(
        "--height",
        type=int,
        help="output height (default: keeps the fit's aspect; a torch-imfit .txt without --source-width/height: "
        "square)",
    )
    r.add_argument("-o", "--output", required=True, help="output PNG")
    _source_size_args(r)
    c = sub.add_parser("convert", help="convert between canonical JSON and torch-imfit .txt")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--width", type=int, help="torch-imfit raster width (torch-imfit .txt files need it)")
    c.add_argument("--height", type=int, help="torch-imfit raster height (default: square, or the fit's aspect)")
    e = sub.add_parser("export", help="export a fit for GLSL hosts (Shadertoy, WebGL, TouchDesigner) or Cycles OSL")
    e.add_argument("params", help="fit file (.json or torch-imfit .txt)")
    e.add_argument("--glsl", metavar="OUT.glsl", help="self-contained fragment shader, fit inlined (<= 1365 wavelets)")
    e.add_argument(
        "--glsl-dialect",
        choices=export.GLSL_DIALECTS,
        default="gl330",
        help="gl330: desktop GL 3.3; es300: WebGL2/GLES 3; shadertoy: paste into the Image tab",
    )
    e.add_argument("--uniforms", metavar="OUT.txt", help="uniform payload for shaders/gabor_uniform.frag")
    e.add_argument("--texture", metavar="OUT.exr|OUT.png", help="data texture for shaders/gabor_texture.frag")
    e.add_argument("--osl", metavar="OUT.osl", help="OSL shader for a Cycles Script node")
    _source_size_args(e)


def cmd_render(a) -> int:
    if a.width < 1 or (a.height is not None and a.height < 1):
        raise ImfitError(f"render size must be positive, got --width {a.width} --height {a.height}")
    source_width, source_height = a.source_width, a.source_height
    if Path(a.params).suffix.lower() == ".txt" and source_width is None and source_height is None:
        # a torch-imfit .txt has no aspect: like torch-imfit, render it on the raster asked for
        source_width, source_height = a.width, a.height or a.width
    ws = formats.load_params(a.params, source_width, source_height)
    height = a.height or max(1, round(a.width / ws.aspect))
    images.save_png(a.output, api.render_image(ws, a.width, height))
    print(f"{a.output}: {a.width}x{height}, {len(ws)} wavelets")
    return 0


def cmd_convert(a) -> int:
    ws = formats.load_params(a.input, a.width, a.height)
    try:
        formats.save_params(ws, a.output, a.width, a.height)
    except ImfitError as e:
        raise ImfitError(f"{a.output}: {e}") from None
    print(f"{a.output}: {len(ws)} wavelets")
    return 0


def cmd_export(a) -> int:
    outputs = [
        (a.glsl, lambda ws, p: export.export_glsl(ws, p, a.glsl_dialect)),
        (a.uniforms, export.export_uniforms),
        (a.texture, export.export_texture),
        (a.osl, export.export_osl),
    ]
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
