"""The engine's public Python API (re-exported lazily by ``imfit_engine``), and the file-level jobs the
CLI, the Blender worker and the sequence code share.

    import imfit_engine as imfit
    result = imfit.fit_file("photo.png", config=imfit.FitConfig(num_wavelets=1024))
    imfit.save(result.wavelets, "photo.json")
    picture = imfit.render_image(imfit.load("photo.json"), 1920)  # (H, W, 3) in [0, 1]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np

from . import limits
from .core.config import FitConfig, check_config
from .core.fit import FitResult, Progress, level_sizes
from .core.fit import fit as _fit_default
from .core.model import WaveletSet
from .core.seed_preset import fit_seed
from .errors import ImfitError
from .io import formats, images

log = logging.getLogger("imfit")

OUTPUT_FORMATS = ("json", "txt", "both")
# "seed" reproduces torch-imfit's algorithm (the benchmark's baseline); "default" is ours
PRESETS = {"default": _fit_default, "seed": fit_seed}


def fit(
    image: np.ndarray,
    weight: Optional[np.ndarray] = None,
    config: FitConfig = FitConfig(),
    *,
    init: Optional[WaveletSet] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    source_name: str = "",
) -> FitResult:
    """Fit ``config.num_wavelets`` Gabor wavelets to an image.

    Args:
        image: (H, W, 3) RGB values in [0, 1] (the stored, display-encoded values).
        weight: optional (H, W) importance >= 0 (white = matters); None weighs every pixel alike.
        config: the fit's settings; ``config.preset == "seed"`` runs torch-imfit's algorithm instead.
        init: a fit to warm-start from (Refine, sequences); not with the seed preset.
        on_progress: called a few times a second with a ``Progress`` (its ``preview()`` renders the best so far).
        should_stop: polled every iteration; True ends the fit early, keeping the best result so far.
        source_name: recorded in the result's metadata.

    Returns:
        A ``FitResult``: ``wavelets`` (a ``WaveletSet``), ``psnr`` at the training size, ``seconds``,
        ``iterations``, ``stopped`` and ``message`` (why it stopped early).
    """
    check_config(config)
    check_fit_memory(config, image.shape[1], image.shape[0], source_name)
    kwargs = {"init": init} if init is not None else {}
    return PRESETS[config.preset](
        image, weight, config, on_progress=on_progress, should_stop=should_stop, source_name=source_name, **kwargs
    )


def check_fit_memory(config: FitConfig, width: int, height: int, name: str = "", source_pixels=None) -> None:
    """An ImfitError before a fit of a ``width`` x ``height`` image that would not fit in the memory budget."""
    train = sum(w * h for w, h in level_sizes(width, height, config.size, config.rescales))
    limits.check_memory(
        limits.fit_bytes(config.num_wavelets, train, width * height if source_pixels is None else source_pixels),
        f"a fit of {config.num_wavelets} wavelets at size {config.size}" + (f" to {name}" if name else ""),
        "Use fewer wavelets (--num-gabors) or a smaller --size",
    )


def load_inputs(image_path, weight_path=None, fit_side: Optional[int] = None):
    """The image's RGB and its weight: the weight file, else the image's alpha, else None.

    With ``fit_side`` (a fit's size) a large image is shrunk while decoding (``images.load_image``).
    """
    rgb, weight, _ = _load_inputs(image_path, weight_path, fit_side)
    return rgb, weight


def _load_inputs(image_path, weight_path, fit_side):
    """(rgb, weight, the image's size in its file)."""
    loaded = images.load_image(image_path, fit_side)
    h, w = loaded.rgb.shape[:2]
    if weight_path is not None:
        return loaded.rgb, images.load_weight(weight_path, w, h, loaded.file_size), loaded.file_size
    if loaded.alpha is not None:
        if float(loaded.alpha.max()) <= 0:
            raise ImfitError(
                f"image {image_path} is fully transparent: its alpha (the default weight) is zero everywhere. "
                "Use an opaque image or give a --weight image"
            )
        return loaded.rgb, loaded.alpha, loaded.file_size
    return loaded.rgb, None, loaded.file_size


def fit_file(
    image_path,
    weight_path=None,
    config: FitConfig = FitConfig(),
    *,
    init: Optional[WaveletSet] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> FitResult:
    """``fit`` on an image file.

    Args:
        image_path: PNG, JPEG, TIFF, 16-bit PNG...; an alpha channel is the weight unless ``weight_path`` is given.
        weight_path: optional greyscale weight image (white = matters), resized to the image when it differs.
        config, init, on_progress, should_stop: as for ``fit``.

    Returns:
        The ``FitResult``.

    Raises:
        ImfitError: naming the file when it cannot be read or holds nothing to fit.
    """
    check_config(config)
    rgb, weight, (file_w, file_h) = _load_inputs(image_path, weight_path, config.size)
    result = fit(
        rgb,
        weight,
        config,
        init=init,
        on_progress=on_progress,
        should_stop=should_stop,
        source_name=Path(image_path).name,
    )
    if (rgb.shape[1], rgb.shape[0]) != (file_w, file_h):  # shrunk on decode: the fit is of the file's image
        ws = result.wavelets
        ws.width, ws.height = file_w, file_h
        ws.meta.setdefault("source", {}).update(width=file_w, height=file_h)
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
        images.save_png(png_path, render_image(result.wavelets))
    if with_json:
        formats.save_json(result.wavelets, json_path)
    return [path for path, written in ((json_path, with_json), (txt_path, with_txt), (png_path, preview)) if written]


def render_image(ws: WaveletSet, width: Optional[int] = None, height: Optional[int] = None) -> np.ndarray:
    """Re-synthesise a fit on any raster.

    Args:
        ws: the wavelets.
        width: output width in pixels; default: the fit's training width (else its source width).
        height: output height; default: keeps the fit's aspect.

    Returns:
        (height, width, 3) float32 values in [0, 1].
    """
    import torch

    from .core.render import pair_count, render, to_image

    m = ws.meta.get("metrics", {})
    if width is None:
        width, height = m.get("train_width") or ws.width, height or m.get("train_height")
    height = height or max(1, round(width / ws.aspect))
    params = torch.as_tensor(ws.params, dtype=torch.float32)
    limits.check_memory(
        limits.render_bytes(width * height, pair_count(params, ws.aspect, int(width), int(height))),
        f"rendering {len(ws)} wavelets at {width}x{height}",
        "Give a smaller --width (and --height)",
    )
    with torch.no_grad():
        out = to_image(render(params, ws.aspect, int(width), int(height)))
    return out.numpy()


def load(path, width: Optional[int] = None, height: Optional[int] = None) -> WaveletSet:
    """Read a fit file.

    Args:
        path: canonical ``.json``, or torch-imfit ``.txt``.
        width, height: for ``.txt`` only, the raster it was trained on (a ``.txt`` stores no size).

    Returns:
        The ``WaveletSet``.

    Raises:
        ImfitError: naming the file and what is wrong with it (missing, malformed, a newer format version).
    """
    return formats.load_params(path, width, height)


def save(ws: WaveletSet, path, width: Optional[int] = None, height: Optional[int] = None) -> None:
    """Write a fit atomically (a reader never sees a half-written file).

    Args:
        ws: the wavelets.
        path: ``.json`` (canonical, lossless) or ``.txt`` (torch-imfit's format).
        width, height: for ``.txt``, the raster its coordinates refer to (default: the fit's source size).

    Raises:
        ImfitError: for an unknown suffix or values the format cannot hold.
    """
    formats.save_params(ws, path, width, height)
