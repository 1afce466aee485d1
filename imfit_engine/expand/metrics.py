"""Texture statistics that do not care about image size: power spectrum and colour histogram.

An expansion is a larger piece of the same texture, so its statistics per pixel should match the
source's: the same radially averaged power spectrum (in cycles per pixel) and the same distribution
of colours.  A 2x bicubic upscale is the same content magnified: its spectrum moves to half the
frequencies and its histogram narrows where interpolation averages.  numpy only.
"""

from __future__ import annotations

import numpy as np

SPECTRUM_BINS = np.linspace(1.0 / 32.0, 0.5, 17)  # edges in cycles per pixel (a 16 x 16 image's lowest)
QUANTILES = 512


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb if rgb.ndim == 2 else rgb[..., :3].mean(axis=2)


def radial_power_spectrum(rgb: np.ndarray, edges: np.ndarray = SPECTRUM_BINS) -> np.ndarray:
    """log10 of the power spectral density of the luminance, averaged over rings of frequency.

    The mean is removed and a 2D Hann window applied (no leakage from the non-periodic borders); the
    power is divided by the window's energy, so the density does not depend on the image size.
    Returns one value per ring between consecutive ``edges`` (cycles per pixel).
    """
    img = _luma(rgb)
    h, w = img.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    x = (img - img.mean()) * window
    power = np.abs(np.fft.fft2(x)) ** 2 / max(float((window**2).sum()), 1e-12)
    r = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    ring = np.digitize(r.ravel(), edges) - 1
    valid = (ring >= 0) & (ring < len(edges) - 1)
    sums = np.bincount(ring[valid], power.ravel()[valid], minlength=len(edges) - 1)
    counts = np.bincount(ring[valid], minlength=len(edges) - 1)
    if (counts == 0).any():
        raise ValueError(f"image {w}x{h} is too small for the spectrum's rings")
    return np.log10(sums / counts + 1e-20)


def spectrum_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the log radial spectra, in decades (x10 for dB)."""
    return float(np.mean(np.abs(radial_power_spectrum(a) - radial_power_spectrum(b))))


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's (Wasserstein-1) distance between the images' value distributions, per channel,
    averaged over channels; in pixel-value units ([0, 1] images give [0, 1])."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if b.ndim == 2:
        b = b[..., None]
    levels = (np.arange(QUANTILES) + 0.5) / QUANTILES
    out = []
    for c in range(a.shape[2]):
        qa = np.quantile(a[..., c].ravel(), levels)
        qb = np.quantile(b[..., c].ravel(), levels)
        out.append(np.mean(np.abs(qa - qb)))
    return float(np.mean(out))


def bicubic_upscale(rgb: np.ndarray, scale: int = 2) -> np.ndarray:
    """The baseline: pillow's bicubic resize to ``scale`` times the size, per channel in float."""
    from PIL import Image

    rgb = np.asarray(rgb, dtype=np.float32)
    h, w = rgb.shape[:2]
    channels = [
        np.asarray(Image.fromarray(rgb[..., c], mode="F").resize((w * scale, h * scale), Image.Resampling.BICUBIC))
        for c in range(rgb.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)
