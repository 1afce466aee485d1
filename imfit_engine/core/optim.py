"""The wavelet optimiser: Adam with per-column rates, plateau decay, and the constraints after each step."""

from __future__ import annotations

import math

import torch

# Floors that keep wavelets clean at the current level's pixel size (in pixels).
MIN_ENVELOPE_PX = 0.5
MIN_WAVELENGTH_PX = 2.0


class WaveletAdam:
    """Adam over one (N, 12) tensor of internal parameters with a learning rate per column group."""

    # multiples of the global learning rate per internal column group
    RATES = {"pos": 0.15, "theta": 2.0, "len": 2.0, "carrier": 1.0}

    def __init__(self, internal, lr, betas=(0.9, 0.99), eps=1e-8):
        self.p, self.betas, self.eps = internal, betas, eps
        self.m = torch.zeros_like(internal)
        self.v = torch.zeros_like(internal)
        self.t = 0
        r = self.RATES
        cols = [r["pos"]] * 2 + [r["theta"]] + [r["len"]] * 3 + [r["carrier"]] * 6
        self.col_rate = torch.tensor(cols, device=internal.device, dtype=internal.dtype)
        self.lr = lr

    def step(self, grad):
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        mhat = self.m / (1 - b1**self.t)
        vhat = self.v / (1 - b2**self.t)
        self.p.data.add_(-(self.lr * self.col_rate) * mhat / (vhat.sqrt() + self.eps))

    def reset_rows(self, rows):
        self.m[rows] = 0
        self.v[rows] = 0


class Plateau:
    """Multiply the learning rate by `factor` each step the loss has not improved for `patience` steps."""

    def __init__(self, factor, patience=20, threshold=1e-4):
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.best, self.bad = float("inf"), 0

    def __call__(self, loss) -> float:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad = loss, 0
            return 1.0
        self.bad += 1
        return self.factor if self.bad > self.patience else 1.0


def project(internal, aspect, w, h):
    """Constraints at the current level: no sub-pixel envelopes, no aliased carriers, seed ranges."""
    px = 1.0 / h  # pixel pitch in height units (square pixels)
    lo_env = math.log(MIN_ENVELOPE_PX * px)
    lo_wave = math.log(MIN_WAVELENGTH_PX * px)
    d = internal.data
    d[:, 3:5].clamp_(lo_env, math.log(4.0))
    d[:, 5].clamp_(lo_wave, math.log(64.0))
    # torch-imfit's ranges (centres on the image, amplitude <= 1), so .txt export loses nothing
    d[:, 0:2].clamp_(0.0, 1.0)
    ab = d[:, 6:12].view(-1, 2, 3)
    ab.mul_((1.0 / ab.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))
