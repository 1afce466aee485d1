"""A fit beyond its frame: the same wavelet field in a larger canvas (it renders past its old border)."""

from __future__ import annotations

import numpy as np

from ..core.model import LENGTHS, U, V, WaveletSet
from ..errors import ImfitError


def extend_canvas(
    ws: WaveletSet, left: int, right: int | None = None, top: int | None = None, bottom: int | None = None
) -> WaveletSet:
    """The same field in a frame grown by whole pixels of the fit's source raster on each side.

    Rendering the result at ``(width + left + right) x (height + top + bottom)`` gives the original
    render at the old pixels (same pixel centres) and the wavelets' continuation around them.  In the
    model's units (model.py: lengths in image heights, u stretched by the aspect) that is
    ``u' = (u + l) / (1 + l + r)``, ``v' = (v + b) / (1 + t + b)`` with the pads as fractions of the old
    width / height, and every length divided by the new height ``1 + t + b``; angles are unchanged.
    ``right``, ``top`` and ``bottom`` default to ``left``.
    """
    right = left if right is None else right
    top = left if top is None else top
    bottom = left if bottom is None else bottom
    pads = (left, right, top, bottom)
    if any(int(p) != p or p < 0 for p in pads):
        raise ImfitError(f"canvas padding must be whole non-negative pixels, got {pads}")
    w, h = ws.width, ws.height
    fl, fr, ft, fb = left / w, right / w, top / h, bottom / h
    p = np.asarray(ws.params, dtype=np.float64).copy()
    p[:, U] = (p[:, U] + fl) / (1 + fl + fr)
    p[:, V] = (p[:, V] + fb) / (1 + ft + fb)
    p[:, LENGTHS] /= 1 + ft + fb
    meta = dict(ws.meta)
    # kept in "source" (the fit file keeps that block): which pixels of the new frame the old one was
    meta["source"] = dict(
        meta.get("source") or {},
        canvas={
            "left": int(left),
            "right": int(right),
            "top": int(top),
            "bottom": int(bottom),
            "from": [int(w), int(h)],
        },
    )
    meta.pop("metrics", None)  # the old training raster does not describe the new frame
    return WaveletSet(p.astype(np.float32), int(w + left + right), int(h + top + bottom), meta)


def extend_canvas_scale(ws: WaveletSet, scale: float) -> WaveletSet:
    """The fit in a frame ``scale`` times as large, centred (pads rounded to whole pixels)."""
    if not scale >= 1:
        raise ImfitError(f"canvas scale must be at least 1, got {scale}")
    pw, ph = round(ws.width * (scale - 1)), round(ws.height * (scale - 1))
    return extend_canvas(ws, pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
