"""The tiled renderer's CPU kernels, compiled with numba: one pass over the pixels of each (wavelet, tile) pair.

Same maths as ``render``'s torch chunk kernels (``_chunk_forward`` / ``_chunk_backward``), which stay the
reference they are tested against, but without their intermediate arrays: each pixel's contribution (and
in the backward pass each pixel's share of its wavelet's 12 gradients) is computed in registers, and a pixel
outside the support ellipse is skipped before its exp, cos and sin.

* forward: pairs grouped by tile; threads own whole tiles, so the sums need no locks;
* backward: pairs grouped by wavelet (the binning's own order); threads own whole wavelets.

numba compiles on first use (a few seconds, cached on disk afterwards) and needs no C compiler.  Without
numba, or with ``IMFIT_KERNELS=torch``, the renderer keeps its torch kernels.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # an optional speed-up: the torch kernels render the same field
    import numba
    from numba import njit, prange

    # numba's own thread pool, not OpenMP: its OpenMP layer shares torch's runtime, and running a kernel then
    # reset torch's thread count (a task given one thread ran torch on all of them, and fits stopped being
    # reproducible).  The work queue is for one calling thread at a time, which is how the renderer calls it.
    if numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

TWO_PI = 2.0 * math.pi


def available() -> bool:
    return numba is not None and os.environ.get("IMFIT_KERNELS", "auto") != "torch"


if numba is not None:

    @njit(inline="always", fastmath=True)
    def _row(x0, j, tile, dx, dy, cx, cy, ct, st, ia, ib, ux, uy, a, cut2):
        """The pixels of tile row ``j`` inside the support ellipse, and what the recurrences along it start from.

        Along a row the rotated offsets are linear in the column i, so q(i) = a i^2 + b i + c is quadratic:
        the ellipse is an interval of columns, and exp(-q) and cos / sin of the carrier follow multiplicative
        recurrences from its first pixel (two and four multiplications a pixel instead of exp, cos and sin).
        (ux, uy) is one column's step of (xr, yr) and ``a`` the quadratic's leading coefficient, both constant.
        Returns (first, last, xr, yr, q) at the first column; first > last when the row misses the ellipse.
        """
        ddy = 1.0 - (j + 0.5) * dy - cy
        ddx = (x0 + 0.5) * dx - cx
        xr0 = ddx * ct + ddy * st
        yr0 = -ddx * st + ddy * ct
        b = 2.0 * (xr0 * ux * ia + yr0 * uy * ib)
        c = xr0 * xr0 * ia + yr0 * yr0 * ib
        disc = b * b - 4.0 * a * (c - cut2)
        if disc < 0.0 or a <= 0.0:
            return 1, 0, 0.0, 0.0, 0.0
        root = math.sqrt(disc)
        first = max(0, int(math.ceil((-b - root) / (2.0 * a))))
        last = min(tile - 1, int(math.floor((-b + root) / (2.0 * a))))
        xr = xr0 + first * ux
        yr = yr0 + first * uy
        return first, last, xr, yr, xr * xr * ia + yr * yr * ib

    @njit(parallel=True, fastmath=True, cache=True)
    def _forward(geo, coef, order, tile_start, tx, ty, tile, dx, dy, aspect, cut2, out):
        """out[tile, pixel, channel] += every pair's contribution; ``order`` lists pairs tile by tile."""
        n_tiles = tile_start.size - 1
        for t in prange(n_tiles):
            for k in range(tile_start[t], tile_start[t + 1]):
                w = order[k]  # geometry and carriers are gathered per pair
                cx = geo[w, 0] * aspect
                cy = geo[w, 1]
                ct = math.cos(geo[w, 2])
                st = math.sin(geo[w, 2])
                ia = 0.5 / (geo[w, 3] * geo[w, 3])
                ib = 0.5 / (geo[w, 4] * geo[w, 4])
                om = TWO_PI / geo[w, 5]
                a0, a1, a2 = coef[w, 0, 0], coef[w, 0, 1], coef[w, 0, 2]
                b0, b1, b2 = coef[w, 1, 0], coef[w, 1, 1], coef[w, 1, 2]
                x0 = tx[w] * tile
                y0 = ty[w] * tile
                # one column to the right: the same rotation of the carrier and the same ratio step everywhere
                ux, uy = dx * ct, -dx * st
                aq = ux * ux * ia + uy * uy * ib
                step = math.exp(-2.0 * aq)  # ratio(i + 1) / ratio(i)
                dc, ds = math.cos(ux * om), math.sin(ux * om)
                for j in range(tile):
                    first, last, xr, yr, q = _row(x0, y0 + j, tile, dx, dy, cx, cy, ct, st, ia, ib, ux, uy, aq, cut2)
                    if first > last:
                        continue
                    env = math.exp(-q)
                    ratio = math.exp(-(2.0 * (xr * ux * ia + yr * uy * ib) + aq))  # env(i + 1) / env(i)
                    c = math.cos(xr * om)
                    s = math.sin(xr * om)
                    base = j * tile
                    for i in range(first, last + 1):
                        ec = env * c
                        es = env * s
                        out[t, base + i, 0] += a0 * ec - b0 * es
                        out[t, base + i, 1] += a1 * ec - b1 * es
                        out[t, base + i, 2] += a2 * ec - b2 * es
                        env *= ratio
                        ratio *= step
                        c, s = c * dc - s * ds, s * dc + c * ds

    @njit(parallel=True, fastmath=True, cache=True)
    def _backward(geo, coef, wavelet_start, tx, ty, tile_id, tile, dx, dy, aspect, cut2, g, grad):
        """grad[w] = (d/du, d/dv, d/dtheta, d/dsigma, d/dgamma, d/dwavelength, dA(3), dB(3)) of sum(g * render)."""
        n = wavelet_start.size - 1
        for w in prange(n):
            if wavelet_start[w] == wavelet_start[w + 1]:
                continue
            cx = geo[w, 0] * aspect
            cy = geo[w, 1]
            ct = math.cos(geo[w, 2])
            st = math.sin(geo[w, 2])
            sig, gam, lam = geo[w, 3], geo[w, 4], geo[w, 5]
            ia = 0.5 / (sig * sig)
            ib = 0.5 / (gam * gam)
            om = TWO_PI / lam
            a0, a1, a2 = coef[w, 0, 0], coef[w, 0, 1], coef[w, 0, 2]
            b0, b1, b2 = coef[w, 1, 0], coef[w, 1, 1], coef[w, 1, 2]
            sgx = 0.0
            sgy = 0.0
            dth = 0.0
            dia = 0.0
            dib = 0.0
            dom = 0.0
            da0 = 0.0
            da1 = 0.0
            da2 = 0.0
            db0 = 0.0
            db1 = 0.0
            db2 = 0.0
            ux, uy = dx * ct, -dx * st
            aq = ux * ux * ia + uy * uy * ib
            step = math.exp(-2.0 * aq)
            dc, ds = math.cos(ux * om), math.sin(ux * om)
            for pair in range(wavelet_start[w], wavelet_start[w + 1]):
                t = tile_id[pair]
                x0 = tx[pair] * tile
                y0 = ty[pair] * tile
                for j in range(tile):
                    first, last, xr, yr, q = _row(x0, y0 + j, tile, dx, dy, cx, cy, ct, st, ia, ib, ux, uy, aq, cut2)
                    if first > last:
                        continue
                    env = math.exp(-q)
                    ratio = math.exp(-(2.0 * (xr * ux * ia + yr * uy * ib) + aq))
                    c = math.cos(xr * om)
                    s = math.sin(xr * om)
                    base = j * tile
                    for i in range(first, last + 1):
                        ec = env * c
                        es = env * s
                        g0, g1, g2 = g[t, base + i, 0], g[t, base + i, 1], g[t, base + i, 2]
                        da0 += g0 * ec
                        da1 += g1 * ec
                        da2 += g2 * ec
                        db0 -= g0 * es
                        db1 -= g1 * es
                        db2 -= g2 * es
                        ga = g0 * a0 + g1 * a1 + g2 * a2
                        gb = g0 * b0 + g1 * b1 + g2 * b2
                        re = ec * ga - es * gb  # dL/dE * E
                        qq = -(es * ga + ec * gb)  # dL/d(arg)
                        gxr = -2.0 * ia * xr * re + om * qq
                        gyr = -2.0 * ib * yr * re
                        sgx += gxr
                        sgy += gyr
                        dth += gxr * yr - gyr * xr
                        dia -= re * xr * xr
                        dib -= re * yr * yr
                        dom += qq * xr
                        xr += ux
                        yr += uy
                        env *= ratio
                        ratio *= step
                        c, s = c * dc - s * ds, s * dc + c * ds
            grad[w, 0] = -(sgx * ct - sgy * st) * aspect
            grad[w, 1] = -(sgx * st + sgy * ct)
            grad[w, 2] = dth
            grad[w, 3] = -dia / (sig * sig * sig)
            grad[w, 4] = -dib / (gam * gam * gam)
            grad[w, 5] = -dom * om / lam
            grad[w, 6] = da0
            grad[w, 7] = da1
            grad[w, 8] = da2
            grad[w, 9] = db0
            grad[w, 10] = db1
            grad[w, 11] = db2


def set_threads(count: int) -> None:
    if numba is not None:
        numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))


def forward(geo, coef, pair_wavelet, tx, ty, tile_id, n_tiles, tiles_x, tile, dx, dy, aspect, support):
    """(n_tiles, tile * tile, 3) sums in the parameters' dtype; numpy arrays, pairs in any order."""
    order = np.argsort(tile_id, kind="stable")
    tile_start = np.searchsorted(tile_id[order], np.arange(n_tiles + 1)).astype(np.int64)
    out = np.zeros((n_tiles, tile * tile, 3), geo.dtype)
    # per pair geometry (gathered once: the kernel then reads rows in tile order)
    _forward(
        geo[pair_wavelet],
        coef[pair_wavelet],
        order.astype(np.int64),
        tile_start,
        tx,
        ty,
        tile,
        dx,
        dy,
        aspect,
        0.5 * support * support,
        out,
    )
    return out


def backward(geo, coef, pair_wavelet, tx, ty, tile_id, g_tiles, tile, dx, dy, aspect, support):
    """(N, 12) gradients in the parameters' dtype; pairs must be sorted by wavelet (the binning's order)."""
    n = len(geo)
    wavelet_start = np.searchsorted(pair_wavelet, np.arange(n + 1)).astype(np.int64)
    grad = np.zeros((n, 12), geo.dtype)
    _backward(geo, coef, wavelet_start, tx, ty, tile_id, tile, dx, dy, aspect, 0.5 * support * support, g_tiles, grad)
    return grad
