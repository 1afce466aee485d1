"""Re-synthesis without torch: the global controls, per-tile wavelet lists (culling) and a numpy renderer.

Blender's Python has numpy but no torch, and its shaders should cost what the local overlap costs, not N
per pixel.  A wavelet is negligible beyond ``SUPPORT`` standard deviations (the engine's renderer cuts it
there too, ``render.DEFAULT_SUPPORT``), so a plane split into tiles needs, at a point, only the wavelets
whose support ellipse touches the point's tile:

* ``TileLists``: a grid of square tiles over the image (field coordinates ``x = u * aspect``, ``y = v``,
  tile row 0 at the bottom), each tile's wavelet indices in one list (``start``/``count`` per tile), plus
  one more "outside" list: the wavelets whose support reaches beyond the grid, for points outside it
  (a UV beyond 0..1), so a culled shader is exact everywhere, not only on the image.
* ``render_signed``: the same binning on a raster's 16 x 16 pixel tiles, evaluated in vectorised chunks:
  the add-on's in-Blender bake, and a second opinion on the torch renderer in the tests.

Global controls (the node group's inputs) act on the parameters (``controlled``) or on the sum (gain,
bias); ``Controls`` holds them with the node group's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .model import AMP, GAMMA, PHASE, SIGMA, THETA, WAVELENGTH, U, V

SUPPORT = 5.0  # standard deviations: the engine's cut (core.render.DEFAULT_SUPPORT)
RASTER_TILE = 16  # pixels per side of render_signed's tiles
CHUNK_ELEMENTS = 1 << 20  # (pair, pixel) evaluations per vectorised chunk: ~24 MB of float32 temporaries


@dataclass(frozen=True)
class Controls:
    """The node group's global controls (its input sockets of the same names)."""

    phase_shift: float = 0.0
    rotation_offset: float = 0.0
    scale: float = 1.0
    frequency_multiplier: float = 1.0
    amplitude_multiplier: float = 1.0
    offset: float = 0.0

    SOCKETS = {
        "Phase Shift": "phase_shift",
        "Rotation Offset": "rotation_offset",
        "Scale": "scale",
        "Frequency Multiplier": "frequency_multiplier",
        "Amplitude Multiplier": "amplitude_multiplier",
        "Offset": "offset",
    }

    @classmethod
    def from_sockets(cls, values: dict) -> Controls:
        """From {socket name: value} (missing names keep their defaults)."""
        return cls(**{attr: float(values[name]) for name, attr in cls.SOCKETS.items() if name in values})

    def to_dict(self) -> dict:
        return {attr: getattr(self, attr) for attr in self.SOCKETS.values()}

    @classmethod
    def from_dict(cls, values: dict | None) -> Controls:
        fields = set(cls.SOCKETS.values())
        return cls(**{k: float(v) for k, v in (values or {}).items() if k in fields})


DEFAULT_CONTROLS = Controls()


def controlled(params, controls: Controls = DEFAULT_CONTROLS) -> np.ndarray:
    """The parameters the controls make: phases shifted, rotations offset, lengths scaled, frequencies
    multiplied (float64).  Gain and bias act on the sum (``apply_gain``)."""
    p = np.array(params, dtype=np.float64, copy=True)
    p[:, PHASE] += controls.phase_shift
    p[:, THETA] += controls.rotation_offset
    p[:, SIGMA : WAVELENGTH + 1] *= controls.scale
    p[:, WAVELENGTH] /= controls.frequency_multiplier
    return p


def apply_gain(signed, controls: Controls = DEFAULT_CONTROLS):
    return signed * controls.amplitude_multiplier + controls.offset


def to_display(signed) -> np.ndarray:
    """The stored (sRGB-encoded) image of a signed sum: clamp to [-1, 1], map to [0, 1]."""
    return np.clip(signed, -1.0, 1.0) * 0.5 + 0.5


# ----------------------------------------------------------------------------------------
# Binning


def _half_extents(p: np.ndarray, support: float, rotation_known: bool):
    """Half width and height of each support ellipse's bounding box (a circle's when the rotation may
    change: any rotation stays inside it)."""
    sig, gam = np.abs(p[:, SIGMA]), np.abs(p[:, GAMMA])
    if not rotation_known:
        r = support * np.maximum(sig, gam)
        return r, r
    c, s = np.abs(np.cos(p[:, THETA])), np.abs(np.sin(p[:, THETA]))
    return support * np.hypot(sig * c, gam * s), support * np.hypot(sig * s, gam * c)


def _pairs(p, aspect, x0, y0, tile_w, tile_h, nx, ny, support, rotation_known):
    """(wavelet, tile x, tile y) of every tile of an nx x ny grid that a support ellipse can touch."""
    n = len(p)
    hx, hy = _half_extents(p, support, rotation_known)
    cx, cy = p[:, U] * aspect, p[:, V]
    with np.errstate(invalid="ignore"):
        tx0 = np.floor((cx - hx - x0) / tile_w)
        tx1 = np.floor((cx + hx - x0) / tile_w)
        ty0 = np.floor((cy - hy - y0) / tile_h)
        ty1 = np.floor((cy + hy - y0) / tile_h)
    # a non-finite wavelet covers every tile, so a blow-up shows instead of vanishing (as the engine does)
    bad = ~np.isfinite(tx0 + tx1 + ty0 + ty1)
    tx0, ty0 = np.where(bad, 0, np.clip(tx0, 0, nx)), np.where(bad, 0, np.clip(ty0, 0, ny))
    tx1, ty1 = np.where(bad, nx - 1, np.clip(tx1, -1, nx - 1)), np.where(bad, ny - 1, np.clip(ty1, -1, ny - 1))
    ntx = np.maximum(tx1 - tx0 + 1, 0).astype(np.int64)
    nty = np.maximum(ty1 - ty0 + 1, 0).astype(np.int64)
    count = ntx * nty
    wavelet = np.repeat(np.arange(n), count)
    first = np.cumsum(count) - count
    k = np.arange(len(wavelet)) - first[wavelet]
    width = np.maximum(ntx[wavelet], 1)
    tx = tx0[wavelet].astype(np.int64) + k % width
    ty = ty0[wavelet].astype(np.int64) + k // width
    # drop bounding-box tiles the ellipse cannot reach: in the wavelet's frame scaled by (sigma, gamma), a
    # tile lies within its half-diagonal / min(sigma, gamma) of its centre (conservative)
    w = wavelet
    ox = x0 + (tx + 0.5) * tile_w - cx[w]
    oy = y0 + (ty + 0.5) * tile_h - cy[w]
    sig, gam = np.abs(p[w, SIGMA]), np.abs(p[w, GAMMA])
    small = np.minimum(sig, gam)
    reach = support + 0.5 * math.hypot(tile_w, tile_h) / np.maximum(small, 1e-30)
    if rotation_known:
        cos_t, sin_t = np.cos(p[w, THETA]), np.sin(p[w, THETA])
        xr = (ox * cos_t + oy * sin_t) / sig
        yr = (-ox * sin_t + oy * cos_t) / gam
        keep = xr * xr + yr * yr <= reach * reach
    else:  # any rotation: the circle of radius support * max(sigma, gamma)
        big = np.maximum(sig, gam)
        keep = np.hypot(ox, oy) <= support * big + 0.5 * math.hypot(tile_w, tile_h)
    keep |= bad[w]
    return w[keep], tx[keep], ty[keep], hx, hy, cx, cy


@dataclass
class TileLists:
    """Per-tile wavelet lists over the image (see the module docstring).

    Tile (tx, ty) covers ``x0 + tx * tile <= x < x0 + (tx + 1) * tile`` (likewise y); its list is
    ``index[start[t] : start[t] + count[t]]`` with ``t = ty * nx + tx``; ``t = nx * ny`` is the outside list.
    """

    x0: float
    y0: float
    tile: float
    nx: int
    ny: int
    start: np.ndarray  # (nx * ny + 1,) int64
    count: np.ndarray  # (nx * ny + 1,) int64
    index: np.ndarray  # (pairs,) int32, tile by tile, wavelet order inside a tile
    support: float = SUPPORT
    meta: dict = field(default_factory=dict)

    @property
    def tiles(self) -> int:
        return self.nx * self.ny

    @property
    def outside(self) -> int:
        """The outside list's tile number."""
        return self.nx * self.ny

    def mean_count(self) -> float:
        """Mean list length over the image's tiles: the wavelets a point evaluates, on average."""
        return float(self.count[: self.tiles].mean())

    def tile_of(self, x, y) -> np.ndarray:
        """Tile numbers of field points (x = u * aspect, y = v); points off the grid get ``outside``."""
        tx = np.floor((np.asarray(x, np.float64) - self.x0) / self.tile)
        ty = np.floor((np.asarray(y, np.float64) - self.y0) / self.tile)
        inside = (tx >= 0) & (tx < self.nx) & (ty >= 0) & (ty < self.ny)
        return np.where(inside, ty * self.nx + tx, self.outside).astype(np.int64)


def tile_lists(
    params,
    aspect: float,
    tiles_per_height: int | None = None,
    *,
    support: float = SUPPORT,
    rotation_known: bool = True,
    max_pairs: int = 4_000_000,
) -> TileLists:
    """Per-tile lists of ``params`` (canonical, controls already applied) over the image.

    ``tiles_per_height``: the grid (1 gives one tile holding every wavelet: no culling); None picks the
    finest of 4, 8, ..., 128 tiles per image height whose lists stay near the shortest reachable and
    hold at most ``max_pairs`` entries.  ``rotation_known=False`` bins with the bounding circle, for
    rotations that may change (an animated Rotation Offset) without rebuilding the lists.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 12:
        raise ValueError(f"params must be (N, 12), got {p.shape}")
    if tiles_per_height is None:
        return _best_grid(p, aspect, support, rotation_known, max_pairs)
    g = max(1, int(tiles_per_height))
    tile = 1.0 / g
    nx, ny = max(1, math.ceil(aspect * g - 1e-9)), g
    if g == 1:  # one tile holds everything, and there is no outside
        nx = ny = 1
        n = len(p)
        return TileLists(
            0.0,
            0.0,
            max(aspect, 1.0),
            1,
            1,
            np.array([0, 0], np.int64),
            np.array([n, 0], np.int64),
            np.arange(n, dtype=np.int32),
            support,
            {"tiles_per_height": 1, "culled": False},
        )
    w, tx, ty, hx, hy, cx, cy = _pairs(p, aspect, 0.0, 0.0, tile, tile, nx, ny, support, rotation_known)
    t = ty * nx + tx
    order = np.argsort(t, kind="stable")
    t, w = t[order], w[order]
    # the outside list: supports that reach beyond the grid's rectangle
    with np.errstate(invalid="ignore"):
        beyond = (cx - hx < 0) | (cx + hx > nx * tile) | (cy - hy < 0) | (cy + hy > ny * tile)
    beyond |= ~np.isfinite(cx + cy + hx + hy)
    outside = np.flatnonzero(beyond)
    count = np.bincount(t, minlength=nx * ny).astype(np.int64)
    count = np.append(count, len(outside))
    start = np.cumsum(count) - count
    index = np.concatenate([w, outside]).astype(np.int32)
    return TileLists(0.0, 0.0, tile, nx, ny, start, count, index, support, {"tiles_per_height": g, "culled": True})


def _bbox_pairs(p, aspect, g, support, rotation_known) -> int:
    """Tiles the supports' bounding boxes cover on a grid of ``g`` tiles per height (before the ellipse test)."""
    hx, hy = _half_extents(p, support, rotation_known)
    nx = max(1, math.ceil(aspect * g - 1e-9))
    cx, cy = p[:, U] * aspect * g, p[:, V] * g
    with np.errstate(invalid="ignore"):
        ntx = np.clip(np.floor(cx + hx * g), -1, nx - 1) - np.clip(np.floor(cx - hx * g), 0, nx) + 1
        nty = np.clip(np.floor(cy + hy * g), -1, g - 1) - np.clip(np.floor(cy - hy * g), 0, g) + 1
    return int(np.nansum(np.maximum(ntx, 0) * np.maximum(nty, 0)))


def _best_grid(p, aspect, support, rotation_known, max_pairs) -> TileLists:
    """The coarsest grid whose mean list is within 15% of the finest affordable one's (estimated from the
    bounding boxes, which costs no list building), under ``max_pairs`` entries."""
    estimates = []
    for g in (4, 8, 16, 32, 64, 128):
        pairs = _bbox_pairs(p, aspect, g, support, rotation_known)
        if pairs > max_pairs and estimates:
            break
        estimates.append((g, pairs / (max(1, math.ceil(aspect * g - 1e-9)) * g)))
    best = min(mean for _, mean in estimates)
    g = next(g for g, mean in estimates if mean <= 1.15 * best + 1.0)
    return tile_lists(p, aspect, g, support=support, rotation_known=rotation_known)


# ----------------------------------------------------------------------------------------
# A numpy renderer


def render_signed(params, aspect: float, width: int, height: int, *, support: float = SUPPORT) -> np.ndarray:
    """Signed sum of ``params`` (canonical) on a width x height raster, (H, W, 3) float32, with the engine's
    pixel centres; each wavelet cut at ``support`` sigmas (as the engine's renderer)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"render size must be positive, got {width}x{height}")
    p = np.asarray(params, dtype=np.float64)
    dx, dy = aspect / width, 1.0 / height
    t = RASTER_TILE
    nx, ny = -(-width // t), -(-height // t)
    # tile row 0 at the bottom in field coordinates; the raster's row 0 is the top, so y0 = 1 - ny * t * dy
    y0 = 1.0 - ny * t * dy
    w, tx, ty, *_ = _pairs(p, aspect, 0.0, y0, t * dx, t * dy, nx, ny, support, True)
    out = np.zeros((ny * nx, t * t, 3), np.float32)
    if len(w):
        tile_id = (ny - 1 - ty) * nx + tx  # raster tile row 0 is the top
        order = np.argsort(tile_id, kind="stable")  # a tile's pairs side by side: one reduce per chunk
        w, tx, tile_id = w[order], tx[order], tile_id[order]
        row = tile_id // nx
        # per wavelet, float32: the carrier as A cos + B sin (two transcendental calls per pixel, not three)
        amp, phase = p[:, AMP], p[:, PHASE]
        coef_a, coef_b = (amp * np.cos(phase)).astype(np.float32), (-amp * np.sin(phase)).astype(np.float32)
        cos_t, sin_t = np.cos(p[:, THETA]).astype(np.float32), np.sin(p[:, THETA]).astype(np.float32)
        inv_s = (-0.5 / p[:, SIGMA] ** 2).astype(np.float32)
        inv_g = (-0.5 / p[:, GAMMA] ** 2).astype(np.float32)
        omega = (2.0 * math.pi / p[:, WAVELENGTH]).astype(np.float32)
        local = np.arange(t) + 0.5
        px = np.tile(local * dx, t).astype(np.float32)[None]  # offsets from a tile's top-left corner
        py = np.repeat(-local * dy, t).astype(np.float32)[None]
        step = max(1, CHUNK_ELEMENTS // (t * t))
        for s in range(0, len(w), step):
            ww, tid = w[s : s + step], tile_id[s : s + step]
            # the tile's top-left corner relative to the wavelet's centre (float64, then small numbers)
            ox = (tx[s : s + step] * t * dx - p[ww, U] * aspect).astype(np.float32)[:, None]
            oy = ((1.0 - row[s : s + step] * t * dy) - p[ww, V]).astype(np.float32)[:, None]
            ddx, ddy = ox + px, oy + py
            c, sn = cos_t[ww, None], sin_t[ww, None]
            xr = ddx * c + ddy * sn
            yr = ddy * c - ddx * sn
            env = np.exp(xr * xr * inv_s[ww, None] + yr * yr * inv_g[ww, None])
            arg = xr * omega[ww, None]
            ec, es = env * np.cos(arg), env * np.sin(arg)
            starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
            ids = tid[starts]
            for ch in range(3):
                contrib = ec * coef_a[ww, ch, None] + es * coef_b[ww, ch, None]
                out[ids, :, ch] += np.add.reduceat(contrib, starts, axis=0)
    img = out.reshape(ny, nx, t, t, 3).transpose(0, 2, 1, 3, 4).reshape(ny * t, nx * t, 3)
    return np.ascontiguousarray(img[:height, :width])


def render_display(params, aspect: float, width: int, height: int, controls: Controls = DEFAULT_CONTROLS) -> np.ndarray:
    """The stored image (values in [0, 1], (H, W, 3) float32) of a field under ``controls``."""
    signed = render_signed(controlled(params, controls), aspect, width, height)
    return to_display(apply_gain(signed, controls)).astype(np.float32)


def field_key(params, controls: Controls = DEFAULT_CONTROLS) -> str:
    """A short fingerprint of a field and its controls: a bake of the same key shows the same image."""
    import hashlib
    import json

    digest = hashlib.sha1(np.ascontiguousarray(params, dtype=np.float32).tobytes())
    digest.update(json.dumps(controls.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()[:20]
