"""Shared helpers for the engine tests: realistic random fields and the test photos."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


def random_params(n, seed=0, dtype=torch.float32, min_sigma=0.01, max_sigma=0.15):
    """A field like a fit's: centres over (and slightly beyond) the image, mixed sizes and shapes."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)
    p = torch.empty(n, 12, dtype=torch.float64)
    p[:, 0:2] = r(n, 2) * 1.2 - 0.1
    p[:, 2] = r(n) * 2 * np.pi - np.pi
    sigma = min_sigma * (max_sigma / min_sigma) ** r(n)
    p[:, 3] = sigma
    p[:, 4] = sigma * (0.3 + 1.5 * r(n))
    p[:, 5] = sigma * (1.5 + 6 * r(n))
    p[:, 6:9] = r(n, 3) * 2 * np.pi - np.pi
    p[:, 9:12] = r(n, 3) * 0.5
    return p.to(dtype)


def load_rgb(name, size=None):
    im = Image.open(DATA / name).convert("RGB")
    if size is not None:
        im = im.resize(size, Image.LANCZOS)
    return np.asarray(im, dtype=np.float32) / 255.0


def psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return -10 * np.log10(mse)
