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

This module needs numpy only, so Blender's Python can read fits without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLUMNS = (
    "u",
    "v",
    "theta",
    "sigma",
    "gamma",
    "wavelength",
    "phase_r",
    "phase_g",
    "phase_b",
    "amp_r",
    "amp_g",
    "amp_b",
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

    params: np.ndarray  # (N, 12) float32, canonical columns
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


# |sigma|, |gamma| and |wavelength| a wavelet may have, in image heights: below, float32 arithmetic underflows
# (the fitter's smallest, unseeded rows are 2e-9); above, a wavelet is flat across any image
LENGTH_RANGE = (1e-9, 1e6)


def invalid_value(params: np.ndarray) -> tuple[int, int, str] | None:
    """(row, column, what is wrong) of the first value the model cannot render, or None."""
    params = np.asarray(params, dtype=np.float64)
    bad = ~np.isfinite(params)
    lengths = np.abs(params[:, LENGTHS])
    short, long = lengths < LENGTH_RANGE[0], lengths > LENGTH_RANGE[1]
    for mask, why in (
        (bad, "not a finite number"),
        (short, f"a length below {LENGTH_RANGE[0]:g} image heights (a zero-size wavelet)"),
        (long, f"a length above {LENGTH_RANGE[1]:g} image heights"),
    ):
        if mask.any():
            i, j = (int(k) for k in np.argwhere(mask)[0])
            return i, j + (LENGTHS.start if mask is not bad else 0), why
    return None
