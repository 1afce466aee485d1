"""File-level jobs shared by the CLI and the Blender worker: load, fit, write outputs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from . import formats, images
from .errors import ImfitError
from .fit import FitConfig, FitResult, fit
from .seed_preset import fit_seed
from .model import WaveletSet

log = logging.getLogger("imfit")

OUTPUT_FORMATS = ("json", "txt", "both")
# "seed" reproduces torch-imfit's algorithm (the benchmark's baseline); "default" is ours
PRESETS = {"default": fit, "seed": fit_seed}


def load_inputs(image_path, weight_path=None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The image's RGB and its weight: the weight file, else the image's alpha, else None."""
    loaded = images.load_image(image_path)
    h, w = loaded.rgb.shape[:2]
    if weight_path is not None:
        return loaded.rgb, images.load_weight(weight_path, w, h)
    if loaded.alpha is not None:
        if float(loaded.alpha.max()) <= 0:
            raise ImfitError(
                f"image {image_path} is fully transparent: its alpha (the default weight) is zero everywhere. "
                "Use an opaque image or give a --weight image"
            )
        return loaded.rgb, loaded.alpha
    return loaded.rgb, None


def fit_image_file(
    image_path,
    weight_path=None,
    config: FitConfig = FitConfig(),
    *,
    init: Optional[WaveletSet] = None,
    on_progress=None,
    should_stop=None,
) -> FitResult:
    rgb, weight = load_inputs(image_path, weight_path)
    kwargs = {"init": init} if init is not None else {}
    result = PRESETS[config.preset](rgb, weight, config, on_progress=on_progress, should_stop=should_stop,
                             source_name=Path(image_path).name, **kwargs)
    if result.message:
        log.warning("%s: %s", image_path, result.message)
    return result


def write_result(result: FitResult, out_dir, stem: str, fmt: str = "json", preview: bool = True) -> list[Path]:
    """Write <stem>.json and/or <stem>.txt and a preview <stem>.png, each atomically; returns the
    paths in that order.  The JSON is written last: a sequence treats it as "frame finished"."""
    out_dir = Path(out_dir)
    json_path, txt_path, png_path = (out_dir / f"{stem}{suffix}" for suffix in (".json", ".txt", ".png"))
    with_json, with_txt = fmt in ("json", "both"), fmt in ("txt", "both")
    if with_txt:
        m = result.wavelets.meta.get("metrics", {})
        # torch-imfit's coordinates refer to its training raster
        formats.save_txt(result.wavelets, txt_path, m.get("train_width"), m.get("train_height"))
    if preview:
        images.save_png(png_path, render_preview(result.wavelets))
    if with_json:
        formats.save_json(result.wavelets, json_path)
    return [path for path, written in ((json_path, with_json), (txt_path, with_txt), (png_path, preview)) if written]


def render_preview(ws: WaveletSet, width: Optional[int] = None, height: Optional[int] = None) -> np.ndarray:
    """The field rendered at the given size (default: the training size), (H, W, 3) in [0, 1]."""
    import torch

    from .render import render, to_image

    m = ws.meta.get("metrics", {})
    width = width or m.get("train_width") or ws.width
    height = height or m.get("train_height") or round(width / ws.aspect)
    with torch.no_grad():
        out = to_image(render(torch.as_tensor(ws.params, dtype=torch.float32), ws.aspect, int(width), int(height)))
    return out.numpy()
