"""16-bit PNG writing with numpy and zlib only (Blender's Python has no pillow): the worker's inputs that
Blender writes, and the sRGB encoding of scene-linear pixels."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .atomic import write_atomic


def srgb_from_linear(linear):
    """The sRGB transfer function (IEC 61966-2-1): scene-linear values to encoded values in [0, 1]."""
    x = np.clip(np.nan_to_num(np.asarray(linear, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png16(path, pixels) -> None:
    """Write (H, W) grey or (H, W, 3) RGB floats in [0, 1], row 0 on top, as a 16-bit PNG, atomically."""
    values = np.clip(np.nan_to_num(np.asarray(pixels, dtype=np.float64), nan=0.0), 0.0, 1.0)
    if values.ndim == 2:
        colour_type = 0
    elif values.ndim == 3 and values.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"write_png16 needs (H, W) or (H, W, 3) values, got {values.shape}")
    height, width = values.shape[:2]
    samples = np.round(values * 65535.0).astype(">u2").reshape(height, -1).view(np.uint8)
    rows = np.hstack([np.zeros((height, 1), np.uint8), samples])  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )  # temp files: fast
    write_atomic(path, png)
