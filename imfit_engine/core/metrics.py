"""Image quality numbers shared by the fitters, the tests and the benchmarks."""

from __future__ import annotations

import math

import numpy as np


def psnr_of(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] values."""
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(a, b) -> float:
    """PSNR in dB between two images with values in [0, 1]."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return psnr_of(float(np.mean(diff * diff)))


def ssim(a, b) -> float:
    """Mean SSIM of two (H, W, 3) images in [0, 1] over RGB (Gaussian window 11, sigma 1.5; Wang et al. 2004
    constants)."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(a, dtype=torch.float64).permute(2, 0, 1)[:, None]
    y = torch.as_tensor(b, dtype=torch.float64).permute(2, 0, 1)[:, None]
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :])[None, None]
    mu_x, mu_y = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mu_x**2
    syy = F.conv2d(y * y, k) - mu_y**2
    sxy = F.conv2d(x * y, k) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())
