"""Applying a trained generator: the whole image expanded to exactly 2x, 4x or 8x its size."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ImfitError
from .config import MULTIPLE, SCALES
from .networks import ExpansionGenerator


def to_tensor(rgb: np.ndarray, device="cpu") -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> 1 x 3 x H x W in [-1, 1]."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {rgb.shape}")
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None] * 2 - 1


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> (H, W, 3) float32 in [0, 1]."""
    return ((x[0].detach().permute(1, 2, 0).clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float32)


MIN_SIDE = 2 * MULTIPLE  # the innermost feature map must be at least 2 x 2 (instance norm)


def _pad_amounts(n: int) -> tuple[int, int]:
    total = max(MIN_SIDE, n + (-n) % MULTIPLE) - n
    return total // 2, total - total // 2


def expand_tensor(g: ExpansionGenerator, x: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W in [-1, 1] -> 1 x 3 x 2H x 2W, for any H, W.

    The input is reflect-padded (replicated when too small to reflect) to sides that are multiples of 4
    and at least 8; the padding's share of the output is cropped off.
    """
    h, w = x.shape[-2:]
    (top, bottom), (left, right) = _pad_amounts(h), _pad_amounts(w)
    if top or bottom or left or right:
        mode = "reflect" if min(h, w) > max(top, bottom, left, right) else "replicate"
        x = F.pad(x, (left, right, top, bottom), mode=mode)
    y = g(x)
    return y[:, :, 2 * top : 2 * top + 2 * h, 2 * left : 2 * left + 2 * w]


def match_histogram(rgb: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``rgb`` with each channel's values replaced, rank for rank, by the reference channel's quantiles:
    the same picture with exactly the reference's colour distribution (per channel)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1, reference.shape[-1])
    out = np.empty_like(rgb)
    n = rgb.shape[0] * rgb.shape[1]
    levels = (np.arange(n) + 0.5) / n
    for c in range(rgb.shape[2]):
        flat = rgb[..., c].ravel()
        order = np.argsort(flat, kind="stable")
        values = np.empty(n, dtype=np.float32)
        values[order] = np.quantile(ref[:, c], levels).astype(np.float32)
        out[..., c] = values.reshape(rgb.shape[:2])
    return out


def expand(g: ExpansionGenerator, rgb: np.ndarray, scale: int = 2, match: bool = False) -> np.ndarray:
    """The whole image expanded ``scale`` times (2, 4 or 8: the generator applied 1, 2 or 3 times).

    (H, W, 3) in [0, 1] -> (scale H, scale W, 3) in [0, 1], exactly.  ``match``: after every 2x step
    the colours are matched to the input's histogram (``match_histogram``), so repeated expansions do
    not drift in brightness or contrast.
    """
    if scale not in SCALES:
        raise ImfitError(f"expansion scale must be 2, 4 or 8, got {scale}")
    device = next(g.parameters()).device
    x = to_tensor(rgb, device)
    with torch.no_grad():
        for _ in range(int(math.log2(scale))):
            x = expand_tensor(g, x)
            if match:
                x = to_tensor(match_histogram(to_rgb(x), rgb), device)
    return to_rgb(x)
