"""The canonical Gabor wavelet parameter space: the one place it is defined.

A fit is N wavelets of 12 values each, in this column order (``COLUMNS``):

======================  ===================================================================
column                  meaning and unit
======================  ===================================================================
``u``, ``v``            centre in image UV: u in [0, 1] left to right, v in [0, 1] bottom
                        to top (Blender's UV convention; pixel centres at (i + .5) / W).
``theta``               direction of the wave (the envelope's sigma axis), radians,
                        counter-clockwise from +u.
``sigma``               envelope standard deviation along the wave, in image heights.
``gamma``               envelope standard deviation across the wave, in image heights.
``wavelength``          carrier wavelength, in image heights.
``phase_r/g/b``         carrier phase per channel, radians.
``amp_r/g/b``           amplitude per channel (signed sum units: the image is [-1, 1]).
======================  ===================================================================

Lengths are in units of the source image's height and u is stretched by the source aspect
(width / height), so wavelets stay round on non-square images and the field renders at any
resolution.  A point at (u, v) sits at ``x = u * aspect, y = v`` in height units; then::

    dx, dy   = x - u_k * aspect, y - v_k
    xr       =  dx cos(theta) + dy sin(theta)
    yr       = -dx sin(theta) + dy cos(theta)
    sum_c    = sum_k amp_kc * exp(-xr^2 / 2 sigma^2 - yr^2 / 2 gamma^2)
                              * cos(2 pi xr / wavelength + phase_kc)
    image_c  = clamp(sum_c, -1, 1) * 0.5 + 0.5

The image values are the stored (sRGB-encoded) pixel values, as in torch-imfit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

COLUMNS = (
    "u", "v", "theta", "sigma", "gamma", "wavelength",
    "phase_r", "phase_g", "phase_b", "amp_r", "amp_g", "amp_b",
)
U, V, THETA, SIGMA, GAMMA, WAVELENGTH = range(6)
PHASE = slice(6, 9)
AMP = slice(9, 12)
LENGTHS = slice(3, 6)

UNITS = {
    "u": "image width fraction, left to right",
    "v": "image height fraction, bottom to top",
    "theta": "radians, counter-clockwise from +u",
    "sigma": "image heights",
    "gamma": "image heights",
    "wavelength": "image heights",
    "phase": "radians",
    "amp": "signed-sum units ([-1, 1] maps to [0, 1])",
}


@dataclass
class WaveletSet:
    """N wavelets in canonical columns plus the source size that fixes the aspect."""

    params: torch.Tensor  # (N, 12), float32, canonical columns
    width: int
    height: int
    meta: dict = field(default_factory=dict)

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __len__(self) -> int:
        return int(self.params.shape[0])


def pixel_size(width: int, height: int, aspect: float) -> tuple[float, float]:
    """Pixel pitch (dx, dy) in height units for a width x height raster of a field."""
    return aspect / width, 1.0 / height


def pixel_coords(width: int, height: int, aspect: float, device=None, dtype=torch.float32):
    """Pixel-centre coordinates in height units: x (W,) left to right, y (H,) top row first."""
    dx, dy = pixel_size(width, height, aspect)
    x = (torch.arange(width, device=device, dtype=dtype) + 0.5) * dx
    y = 1.0 - (torch.arange(height, device=device, dtype=dtype) + 0.5) * dy
    return x, y


def carrier_coefficients(params: torch.Tensor):
    """(A, B) per channel with amp*cos(a + phase) = A cos(a) - B sin(a): linear in A and B."""
    amp, phase = params[:, AMP], params[:, PHASE]
    return amp * torch.cos(phase), amp * torch.sin(phase)


def from_carrier(a: torch.Tensor, b: torch.Tensor):
    """Inverse of ``carrier_coefficients``: non-negative amplitude and phase in (-pi, pi]."""
    return torch.sqrt(a * a + b * b), torch.atan2(b, a)


def normalised(params: torch.Tensor) -> torch.Tensor:
    """Same field, tidy numbers: amplitudes >= 0, phases and theta wrapped to (-pi, pi]."""
    p = params.clone()
    amp, phase = from_carrier(*carrier_coefficients(p))
    p[:, AMP], p[:, PHASE] = amp, phase
    p[:, THETA] = torch.atan2(torch.sin(p[:, THETA]), torch.cos(p[:, THETA]))
    return p


TWO_PI = 2.0 * math.pi
