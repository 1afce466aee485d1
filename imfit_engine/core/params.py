"""The fitters' internal parametrisation, better conditioned than the canonical one (``model``).

Internal columns: u, v, theta, log sigma, log gamma, log wavelength, A(3), B(3), where per channel
amp * cos(arg + phase) = A cos(arg) - B sin(arg): lengths as logarithms (always positive, steps
relative to the size) and carriers the image is linear in (solved in closed form, ``init``).
"""

from __future__ import annotations

import torch

from .render import carrier_coefficients, from_carrier, render

POS, THETA, LOGLEN, AB = slice(0, 2), slice(2, 3), slice(3, 6), slice(6, 12)

# Envelope cut used while fitting: exp(-4^2/2) = 3e-4 of a wavelet's peak, invisible in 8 bits,
# and 36% fewer evaluations than the 5-sigma cut of final renders.
TRAIN_SUPPORT = 4.0


def to_internal(params: torch.Tensor) -> torch.Tensor:
    """Canonical (N, 12) parameters to internal ones."""
    a, b = carrier_coefficients(params)
    return torch.cat((params[:, :3], torch.log(params[:, 3:6].abs().clamp_min(1e-8)), a, b), dim=1)


def to_canonical(internal: torch.Tensor) -> torch.Tensor:
    """Internal (N, 12) parameters to canonical ones (amplitudes >= 0)."""
    amp, phase = from_carrier(internal[:, 6:9], internal[:, 9:12])
    return torch.cat((internal[:, :3], torch.exp(internal[:, 3:6]), phase, amp), dim=1)


def render_internal(internal: torch.Tensor, aspect: float, width: int, height: int) -> torch.Tensor:
    """The signed sum of internal parameters on a width x height raster, cut at ``TRAIN_SUPPORT``."""
    p = torch.cat((internal[:, :3], torch.exp(internal[:, 3:6]), internal[:, 6:12]), dim=1)
    return render(p, aspect, width, height, carrier=True, support=TRAIN_SUPPORT)
