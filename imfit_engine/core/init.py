"""Where new wavelets start: importance-sampled where the image (or the residual) has structure,
oriented along it, with carriers solved in closed form."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .params import render_internal
from .targets import SOBEL


def structure(target: torch.Tensor):
    """Gradient energy and dominant gradient angle per pixel (smoothed structure tensor)."""
    lum = target.mean(-1)[None, None]
    gx = F.conv2d(lum, SOBEL.to(lum)[None, None], padding=1)[0, 0] / 8
    gy = -F.conv2d(lum, SOBEL.to(lum).t()[None, None], padding=1)[0, 0] / 8  # y up
    blur = torch.ones(1, 1, 5, 5, device=lum.device, dtype=lum.dtype) / 25
    jxx, jyy, jxy = (F.conv2d(t[None, None], blur, padding=2)[0, 0] for t in (gx * gx, gy * gy, gx * gy))
    energy = jxx + jyy
    angle = 0.5 * torch.atan2(2 * jxy, jxx - jyy)
    return energy, angle


def seed_wavelets(count, target, residual_energy, aspect, generator, uniform_share=0.3, size_count=None):
    """New wavelets (internal columns) placed by importance sampling of `residual_energy` (H, W); carriers zero.

    Envelopes are sized as if `size_count` wavelets (default `count`) shared the image, smaller
    where the sampling density is high.
    """
    h, w = residual_energy.shape
    dev = target.device
    energy, angle = structure(target)
    prob = residual_energy.flatten().clamp_min(0)
    prob = (1 - uniform_share) * prob / prob.sum().clamp_min(1e-12) + uniform_share / prob.numel()
    idx = torch.multinomial(prob.cpu(), count, replacement=True, generator=generator).to(dev)
    row, col = idx // w, idx % w
    jitter = torch.rand(count, 2, generator=generator).to(dev) - 0.5
    u = (col + 0.5 + jitter[:, 0]) / w
    v = 1 - (row + 0.5 + jitter[:, 1]) / h
    # envelope size from the local sampling density: dense (detailed) regions get small wavelets
    density = prob.view(h, w)[row, col] * prob.numel()
    sigma = 0.6 * math.sqrt(aspect / (size_count or count)) / density.clamp(0.2, 25).sqrt()
    sigma = sigma.clamp(min=1.5 / h)
    theta = angle[row, col]
    wavelength = 4.0 * sigma
    out = torch.zeros(count, 12, device=dev)
    out[:, 0], out[:, 1], out[:, 2] = u, v, theta
    out[:, 3] = torch.log(sigma)
    out[:, 4] = torch.log(sigma)
    out[:, 5] = torch.log(wavelength)
    return out


def solve_carrier(internal, rows, target, weight, aspect, steps):
    """Least squares for the carrier coefficients of `rows` (others fixed): CGLS on the linear map."""
    if steps <= 0 or len(rows) == 0:
        return
    h, w = target.shape[:2]
    fixed = internal.detach().clone()
    fixed[rows, 6:12] = 0
    base = render_internal(fixed, aspect, w, h).detach()

    def apply(ab):  # image of the selected rows' coefficients alone
        p = internal.detach()[rows].clone()
        p[:, 6:12] = ab
        return render_internal(p, aspect, w, h)

    def adjoint(img):
        ab = torch.zeros(len(rows), 6, device=target.device, requires_grad=True)
        with torch.enable_grad():
            out = apply(ab)
            (g,) = torch.autograd.grad(out, ab, img)
        return g

    x = internal.detach()[rows, 6:12].clone()
    with torch.no_grad():
        r = (target - base - apply(x)) * weight
        s = adjoint(r)
        p = s.clone()
        gamma = (s * s).sum()
        for _ in range(steps):
            q = apply(p)
            denom = (q * q * weight).sum()
            if denom <= 0:
                break
            alpha = gamma / denom
            x += alpha * p
            r -= alpha * q * weight
            s = adjoint(r)
            gamma_new = (s * s).sum()
            if gamma_new <= 1e-20:
                break
            p = s + (gamma_new / gamma) * p
            gamma = gamma_new
        internal.data[rows, 6:12] = x
