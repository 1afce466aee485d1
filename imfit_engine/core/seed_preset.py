"""torch-imfit's algorithm, reproduced faithfully, as the benchmark's baseline (`--preset seed`).

Everything here is torch-imfit's own, read from its source, including its weaknesses: a dense N x H x W
render on its own -1..1 grid with no aspect correction, its initial distributions, AdamW at
the given learning rate with weight decay 1e-5, ReduceLROnPlateau(factor=gamma, patience=20)
stepped every iteration, its multi-scale schedule, its clamps and its always-on constraint
loss.  The result is converted to the canonical model with the exact .txt mapping.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..io import formats
from .config import FitConfig
from .fit import FitResult, Progress, level_iterations, level_sizes
from .metrics import psnr_of
from .model import WaveletSet

# (mean, std) of each raw parameter at initialisation, then the clamp range, in .txt column order
_INIT = [(0, 1), (0, 1), (0, 2), (0.01, 0.4), (0.01, 0.4), (-0.25, 0.5)] + [(-1, 1)] * 3 + [(0.001, 0.3)] * 3
_LOW = torch.tensor([-1, -1, -2, 1e-3, 1e-4, -5, -1, -1, -1, 0, 0, 0], dtype=torch.float32)
_HIGH = torch.tensor([1, 1, 2, 1, 1, 5, 1, 1, 1, 1, 1, 1], dtype=torch.float32)


def seed_render(p: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The seed's dense render, clamped to [-1, 1]; (H, W, 3)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    q = p[:, :, None, None]
    dx, dy = xs - q[:, 0], ys - q[:, 1]
    t = 2 * math.pi * q[:, 2]
    xr = dx * torch.cos(t) + dy * torch.sin(t)
    yr = -dx * torch.sin(t) + dy * torch.cos(t)
    g = torch.exp(-(xr**2) / (2 * q[:, 3] ** 2) - yr**2 / (2 * q[:, 4] ** 2))
    f = 2 * math.pi / torch.exp(q[:, 5])
    wave = torch.cos(f[..., None] * xr[..., None] + 2 * math.pi * p[:, None, None, 6:9])
    out = (p[:, None, None, 9:12] * g[..., None] * wave).sum(0)
    return out.clamp(-1, 1)


def _constraint(p):
    sigma, gamma, f = p[:, 3], p[:, 4], p[:, 5]
    terms = torch.stack((sigma - f / 32, f / 2 - sigma, sigma - f, 8 * sigma - gamma))
    return F.relu(terms).pow(2).mean() / 100


def fit_seed(
    image: np.ndarray,
    weight=None,
    config: FitConfig = FitConfig(),
    *,
    on_progress=None,
    should_stop=None,
    source_name: str = "",
) -> FitResult:
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    src_h, src_w = image.shape[:2]
    full = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32).permute(2, 0, 1)[None] * 2 - 1
    wfull = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)[None, None]
    p = torch.stack([torch.randn(config.num_wavelets) * s + m for m, s in _INIT], 1)
    p = torch.max(torch.min(p, _HIGH), _LOW).requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=config.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=config.gamma, patience=20)
    sizes, iters = level_sizes(src_w, src_h, config.size, config.rescales), level_iterations(config)
    total, iteration, history, stopped = sum(iters), 0, [], False
    for level, ((w, h), n) in enumerate(zip(sizes, iters)):
        target = F.interpolate(full, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
        if wfull is None:
            wmap = torch.ones(h, w, 1)
        else:
            wl = F.interpolate(wfull, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
            wmap = (wl / wl.mean()).clamp(1e-4, 1)
        for _ in range(n):
            if should_stop is not None and should_stop():
                stopped = True
                break
            out = seed_render(p, w, h)
            loss = ((out - target) ** 2 * wmap).mean() + _constraint(p)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step(loss.item())
            with torch.no_grad():
                p.copy_(torch.max(torch.min(p, _HIGH), _LOW))
            iteration += 1
            mse01 = float(((out.detach() - target) ** 2).mean()) / 4
            if on_progress is not None:
                on_progress(
                    Progress(
                        iteration,
                        total,
                        level,
                        len(sizes),
                        loss.item(),
                        psnr_of(mse01),
                        time.perf_counter() - start,
                        lambda w=w, h=h: seed_render(p.detach(), w, h).numpy() * 0.5 + 0.5,
                    )
                )
            history.append((iteration, level, loss.item(), psnr_of(mse01)))
        if stopped:
            break
    w, h = sizes[-1]
    with torch.no_grad():
        target = F.interpolate(full, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
        final_psnr = psnr_of(float(((seed_render(p, w, h) - target) ** 2).mean()) / 4)
    seconds = time.perf_counter() - start
    text = "\n".join(",".join(f"{v:.9g}" for v in row) for row in p.detach().numpy())
    ws = formats.parse_txt_text(text, source_name or "seed fit", w, h)
    ws = WaveletSet(
        ws.params,
        src_w,
        src_h,
        meta={
            "source": {"width": src_w, "height": src_h, "name": source_name},
            "settings": {**config.to_dict(), "preset": "seed"},
            "metrics": {
                "psnr": final_psnr,
                "seconds": seconds,
                "iterations": iteration,
                "stopped": stopped,
                "train_width": w,
                "train_height": h,
                "device": "cpu",
            },
        },
    )
    return FitResult(ws, final_psnr, seconds, iteration, stopped, history)
