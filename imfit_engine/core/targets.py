"""What a fit is compared with: antialiased pyramid targets, and the loss against them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import FitConfig

SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def resize(img: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """(H, W, C) -> (h, w, C), antialiased."""
    if img.shape[0] == h and img.shape[1] == w:
        return img
    x = img.permute(2, 0, 1)[None]
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0)


def sobel(img: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel responses per channel: (H, W, C) -> (C, 2, H, W)."""
    x = img.permute(2, 0, 1)[:, None]  # (C, 1, H, W)
    k = SOBEL.to(img)
    gx = F.conv2d(x, k[None, None], padding=1)
    gy = F.conv2d(x, k.t()[None, None], padding=1)
    return torch.cat((gx, gy), 1)


def fit_loss(out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, config: FitConfig) -> torch.Tensor:
    """Weighted MSE of signed images, plus the optional L1, gradient and Sobel terms."""
    diff = out - target
    loss = (diff * diff * weight).mean()
    if config.l1:
        loss = loss + config.l1 * (diff.abs() * weight).mean()
    if config.gradient:
        gdx = diff[:, 1:] - diff[:, :-1]
        gdy = diff[1:] - diff[:-1]
        loss = loss + config.gradient * ((gdx * gdx).mean() + (gdy * gdy).mean())
    if config.sobel:
        s = sobel(diff)
        loss = loss + config.sobel * (s * s).mean()
    return loss
