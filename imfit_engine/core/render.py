"""Re-synthesis of a wavelet field: a dense reference and the tiled production renderer.

``render_reference`` evaluates every wavelet at every pixel (N x H x W memory): it is the
plain oracle that the tests hold ``render`` to.

``render`` never materialises N x H x W.  Each wavelet's envelope is cut at ``support``
standard deviations (the ellipse where exp(-r^2/2) = exp(-support^2/2)); the wavelet is
binned to the square tiles its ellipse's bounding box touches, and (wavelet, tile) pairs are
evaluated in chunks of at most ``chunk_pixels`` pixel evaluations.  The backward pass
recomputes each chunk and accumulates analytic gradients, so peak memory is bounded by the
chunk size and the image, whatever N is.  Inside a touched tile values are exact; the only
error is a wavelet's tail beyond its ellipse, so per pixel
``|render - render_reference| <= exp(-support^2 / 2) * sum_k max_c |amp_kc|``
(``truncation_bound``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import cpu_kernels
from .model import AMP, GAMMA, PHASE, SIGMA, THETA, WAVELENGTH, U, V, pixel_size


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


DEFAULT_SUPPORT = 5.0
DEFAULT_TILE = 16
DEFAULT_CHUNK_PIXELS = 1 << 18


def to_image(signed_sum: torch.Tensor) -> torch.Tensor:
    """The seed's output mapping: clamp the signed sum to [-1, 1], then map to [0, 1]."""
    return signed_sum.clamp(-1.0, 1.0) * 0.5 + 0.5


def truncation_bound(params: torch.Tensor, support: float = DEFAULT_SUPPORT) -> float:
    """Upper bound of |render - render_reference| at any pixel."""
    return math.exp(-0.5 * support * support) * float(params.detach()[:, AMP].abs().amax(dim=1).sum())


def render_reference(params: torch.Tensor, aspect: float, width: int, height: int) -> torch.Tensor:
    """Dense evaluation of the canonical formula; returns the signed sum, (H, W, 3)."""
    x, y = pixel_coords(width, height, aspect, params.device, params.dtype)
    p = params[:, :, None, None]  # (N, 12, 1, 1) broadcast over (H, W)
    dx = x[None, None, :] - p[:, U] * aspect
    dy = y[None, :, None] - p[:, V]
    c, s = torch.cos(p[:, THETA]), torch.sin(p[:, THETA])
    xr = dx * c + dy * s
    yr = -dx * s + dy * c
    env = torch.exp(-(xr**2) / (2 * p[:, SIGMA] ** 2) - yr**2 / (2 * p[:, GAMMA] ** 2))
    arg = 2 * math.pi * xr / p[:, WAVELENGTH]
    amp, phase = params[:, AMP], params[:, PHASE]
    wave = torch.cos(arg[..., None] + phase[:, None, None, :])  # (N, H, W, 3)
    return (env[..., None] * wave * amp[:, None, None, :]).sum(0)


# ----------------------------------------------------------------------------------------
# Tiled renderer


def _tile_boxes(p, aspect, width, height, tile, support):
    """Per wavelet (float64 params): the tile box its support ellipse's bounding box touches (tx0, ty0,
    ntx, nty), whether it is non-finite (it then covers everything), and its |sigma|, |gamma|."""
    dx, dy = pixel_size(width, height, aspect)
    c, s = torch.cos(p[:, THETA]).abs(), torch.sin(p[:, THETA]).abs()
    sig, gam = p[:, SIGMA].abs(), p[:, GAMMA].abs()
    half_x = support * torch.sqrt((sig * c) ** 2 + (gam * s) ** 2)
    half_y = support * torch.sqrt((sig * s) ** 2 + (gam * c) ** 2)
    cx, cy = p[:, U] * aspect, p[:, V]
    # pixel i has centre (i + .5) dx; row j has centre 1 - (j + .5) dy
    i0 = torch.ceil((cx - half_x) / dx - 0.5).clamp(min=0)
    i1 = torch.floor((cx + half_x) / dx - 0.5).clamp(max=width - 1)
    j0 = torch.ceil((1 - cy - half_y) / dy - 0.5).clamp(min=0)
    j1 = torch.floor((1 - cy + half_y) / dy - 0.5).clamp(max=height - 1)
    # a non-finite wavelet covers everything, so a numerical blow-up shows in the image
    # (and the fitter's NaN guard) instead of vanishing
    bad = ~torch.isfinite(i0 + i1 + j0 + j1)
    i0, j0 = i0.masked_fill(bad, 0), j0.masked_fill(bad, 0)
    i1, j1 = i1.masked_fill(bad, width - 1), j1.masked_fill(bad, height - 1)
    ok = (i1 >= i0) & (j1 >= j0)
    i0, i1, j0, j1 = (t.clamp(-1, 1 << 30).long() for t in (i0, i1, j0, j1))
    tx0, tx1 = i0 // tile, i1 // tile
    ty0, ty1 = j0 // tile, j1 // tile
    ntx = torch.where(ok, tx1 - tx0 + 1, 0)
    nty = torch.where(ok, ty1 - ty0 + 1, 0)
    return tx0, ty0, ntx, nty, bad, sig, gam


def pair_count(params: torch.Tensor, aspect: float, width: int, height: int, tile=None, support=None) -> int:
    """An upper bound of the (wavelet, tile) pairs ``render`` bins (its memory), without binning them."""
    with torch.no_grad():
        boxes = _tile_boxes(
            params.detach().double(), aspect, width, height, tile or DEFAULT_TILE, support or DEFAULT_SUPPORT
        )
    return int((boxes[2] * boxes[3]).sum())


class _Bins:
    """(wavelet, tile) pairs for one parameter state and raster."""

    def __init__(self, params, aspect, width, height, tile, support):
        self.tile, self.width, self.height = tile, width, height
        self.tiles_x = -(-width // tile)
        self.tiles_y = -(-height // tile)
        dev = params.device
        with torch.no_grad():
            p = params.detach().double()
            dx, dy = pixel_size(width, height, aspect)
            tx0, ty0, ntx, nty, bad, sig, gam = _tile_boxes(p, aspect, width, height, tile, support)
            cx, cy = p[:, U] * aspect, p[:, V]
            count = ntx * nty
            self.wavelet = torch.repeat_interleave(torch.arange(len(p), device=dev), count)
            start = torch.cumsum(count, 0) - count
            k = torch.arange(len(self.wavelet), device=dev) - start[self.wavelet]
            ntx_w = ntx[self.wavelet]
            tx = tx0[self.wavelet] + k % ntx_w.clamp(min=1)
            ty = ty0[self.wavelet] + k // ntx_w.clamp(min=1)
            # Drop the bounding box's tiles that cannot touch the support ellipse: in the wavelet's
            # frame scaled by (sigma, gamma), a tile lies within its half-diagonal / min(sigma, gamma)
            # of its centre, so a centre farther than support + that is outside (conservative).
            w = self.wavelet
            ox = (tx.double() + 0.5) * tile * dx - cx[w]
            oy = 1 - (ty.double() + 0.5) * tile * dy - cy[w]
            cos_t, sin_t = torch.cos(p[w, THETA]), torch.sin(p[w, THETA])
            xr = (ox * cos_t + oy * sin_t) / sig[w]
            yr = (-ox * sin_t + oy * cos_t) / gam[w]
            reach = support + 0.5 * tile * math.hypot(dx, dy) / torch.minimum(sig[w], gam[w])
            keep = (xr * xr + yr * yr <= reach * reach) | bad[w]
            self.wavelet, self.tx, self.ty = w[keep], tx[keep], ty[keep]
            self.tile_id = self.ty * self.tiles_x + self.tx

    def __len__(self):
        return len(self.wavelet)

    def chunk_size(self, chunk_pixels):
        return max(1, chunk_pixels // (self.tile * self.tile))

    def chunks(self, chunk_pixels):
        step = self.chunk_size(chunk_pixels)
        for start in range(0, len(self), step):
            yield slice(start, start + step)

    def numpy_pairs(self):
        """(wavelet, tx, ty, tile_id) of every pair as int64 numpy arrays, in wavelet order (the CPU kernels')."""
        return tuple(
            t.cpu().numpy().astype(np.int64, copy=False) for t in (self.wavelet, self.tx, self.ty, self.tile_id)
        )

    def untile(self, tiles):
        """(tiles_y * tiles_x, T*T, 3) -> (H, W, 3)."""
        t = self.tile
        img = tiles.view(self.tiles_y, self.tiles_x, t, t, 3).permute(0, 2, 1, 3, 4)
        return img.reshape(self.tiles_y * t, self.tiles_x * t, 3)[: self.height, : self.width]

    def to_tiles(self, image):
        """(H, W, 3) -> (tiles_y * tiles_x, T*T, 3), zero padded."""
        t = self.tile
        pad = image.new_zeros(self.tiles_y * t, self.tiles_x * t, 3)
        pad[: self.height, : self.width] = image
        return pad.view(self.tiles_y, t, self.tiles_x, t, 3).permute(0, 2, 1, 3, 4).reshape(-1, t * t, 3)


def _chunk_forward(p, coef, tx, ty, consts, tile: int):
    """Contributions of C (wavelet, tile) pairs: (C, T*T, 3).

    p: (C, 6) geometry columns u..wavelength; coef: (C, 2, 3) carrier coefficients (A; B);
    tx, ty: (C,) tile indices as floats; consts: (3,) = pixel dx, dy and the aspect.
    """
    xr, yr = _chunk_frame(p, tx, ty, consts, tile)
    env, cos, sin = _chunk_terms(p, xr, yr)[3:]
    basis = torch.stack((env * cos, -env * sin), dim=-1).view(len(p), -1, 2)
    return torch.bmm(basis, coef)


def _chunk_backward(p, coef, tx, ty, g, consts, tile: int):
    """Analytic gradients of sum(g * contributions) for C pairs: geometry (C, 6), carriers (C, 3, 2)."""
    n = len(p)
    xr, yr = _chunk_frame(p, tx, ty, consts, tile)
    inv_a, inv_b, omega, env, cos, sin = _chunk_terms(p, xr, yr)
    gab = torch.bmm(g, coef.transpose(1, 2)).view(n, tile, tile, 2)  # sum_c g_c A_c, sum_c g_c B_c
    ga, gb = gab[..., 0], gab[..., 1]
    ec, es = env * cos, env * sin
    # d/dA_c, d/dB_c: sum over pixels of g_c * (E cos, -E sin)
    d_ab = torch.bmm(g.transpose(1, 2), torch.stack((ec, -es), dim=-1).view(n, -1, 2))  # (C, 3, 2)
    r = cos * ga - sin * gb  # dL/dE per pixel
    q = -(es * ga + ec * gb)  # dL/d(arg) per pixel
    re = r * env
    g_xr = -2 * inv_a[:, None, None] * xr * re + omega[:, None, None] * q
    g_yr = -2 * inv_b[:, None, None] * yr * re
    c, s = torch.cos(p[:, THETA]), torch.sin(p[:, THETA])
    sum_gx = g_xr.sum((1, 2))
    sum_gy = g_yr.sum((1, 2))
    d_cx = -(sum_gx * c - sum_gy * s)
    d_cy = -(sum_gx * s + sum_gy * c)
    d_theta = (g_xr * yr - g_yr * xr).sum((1, 2))
    d_inv_a = -(re * xr * xr).sum((1, 2))
    d_inv_b = -(re * yr * yr).sum((1, 2))
    d_omega = (q * xr).sum((1, 2))
    sig, gam, lam = p[:, SIGMA], p[:, GAMMA], p[:, WAVELENGTH]
    part = torch.stack(
        (d_cx * consts[2], d_cy, d_theta, -d_inv_a / sig**3, -d_inv_b / gam**3, -d_omega * omega / lam), dim=1
    )
    return part, d_ab


def _chunk_frame(p, tx, ty, consts, tile: int):
    """Each pair's pixel offsets rotated into its wavelet's frame: xr, yr (C, T rows, T columns)."""
    dx, dy, aspect = consts[0], consts[1], consts[2]
    ar = torch.arange(tile, device=p.device, dtype=p.dtype) + 0.5
    ddx = (tx[:, None] * tile + ar) * dx - (p[:, U] * aspect)[:, None]  # (C, T) column centres
    ddy = 1.0 - (ty[:, None] * tile + ar) * dy - p[:, V][:, None]  # (C, T) row centres
    c, s = torch.cos(p[:, THETA])[:, None], torch.sin(p[:, THETA])[:, None]
    xr = (ddx * c)[:, None, :] + (ddy * s)[:, :, None]
    yr = (-ddx * s)[:, None, :] + (ddy * c)[:, :, None]
    return xr, yr


def _chunk_terms(p, xr, yr):
    inv_a = 0.5 / p[:, SIGMA] ** 2
    inv_b = 0.5 / p[:, GAMMA] ** 2
    omega = 2 * math.pi / p[:, WAVELENGTH]
    env = torch.exp(-(xr * xr) * inv_a[:, None, None] - (yr * yr) * inv_b[:, None, None])
    arg = xr * omega[:, None, None]
    return inv_a, inv_b, omega, env, torch.cos(arg), torch.sin(arg)


class _Kernels:
    """The chunk kernels, eager or compiled (torch.compile fuses their elementwise work; it pays
    off for long fits and on GPUs, after a one-off compile).  Compiled kernels see one fixed
    chunk shape: short chunks are padded with zero-carrier pairs that land in a spare tile."""

    compiled = False
    _cache = {}

    @classmethod
    def get(cls):
        if not cls.compiled:
            return _chunk_forward, _chunk_backward
        if "fns" not in cls._cache:
            cls._cache["fns"] = (
                torch.compile(_chunk_forward, dynamic=False),
                torch.compile(_chunk_backward, dynamic=False),
            )
        return cls._cache["fns"]


def use_compiled_kernels(flag: bool) -> None:
    _Kernels.compiled = bool(flag)


def _use_cpu_kernels(params: torch.Tensor) -> bool:
    """The numba kernels serve CPU tensors (float32 or float64) unless the fused torch kernels were asked for.
    A non-finite parameter goes to the torch kernels, which spread it to the whole image (the fitter's guard
    must see a blow-up); the compiled kernels assume finite numbers."""
    return (
        params.device.type == "cpu"
        and not _Kernels.compiled
        and cpu_kernels.available()
        and bool(torch.isfinite(params).all())
    )


class _Chunk:
    """One chunk's gathered inputs, padded to the full chunk size when kernels are compiled."""

    def __init__(self, params, coef_all, bins, sl, size):
        self.w = bins.wavelet[sl]
        self.tile_id = bins.tile_id[sl]
        self.n = n = len(self.w)
        self.p = params[self.w, :6]
        self.coef = coef_all[self.w]
        self.tx, self.ty = bins.tx[sl].to(params.dtype), bins.ty[sl].to(params.dtype)
        pad = size - n if _Kernels.compiled else 0
        if pad > 0:
            spare = bins.tiles_x * bins.tiles_y  # a tile past the image, dropped afterwards
            self.p = torch.cat((self.p, self.p[:1].expand(pad, 6)))
            self.coef = torch.cat((self.coef, self.coef.new_zeros(pad, 2, 3)))
            self.tx = torch.cat((self.tx, self.tx.new_zeros(pad)))
            self.ty = torch.cat((self.ty, self.ty.new_zeros(pad)))
            self.tile_id = torch.cat((self.tile_id, self.tile_id.new_full((pad,), spare)))


class _TiledRender(torch.autograd.Function):
    @staticmethod
    def forward(ctx, params, aspect, width, height, tile, support, chunk_pixels, carrier):
        bins = _Bins(params, aspect, width, height, tile, support)
        coef_all = torch.stack(_coefficients(params, carrier), dim=1)  # (N, 2, 3)
        consts = params.new_tensor([*pixel_size(width, height, aspect), aspect])
        ctx.save_for_backward(params)
        ctx.bins, ctx.chunk_pixels, ctx.carrier, ctx.consts, ctx.support = bins, chunk_pixels, carrier, consts, support
        if _use_cpu_kernels(params):
            geo, coef = params.detach()[:, :6].contiguous().numpy(), coef_all.detach().contiguous().numpy()
            cpu_kernels.set_threads(torch.get_num_threads())
            out = cpu_kernels.forward(
                geo,
                coef,
                *bins.numpy_pairs(),
                bins.tiles_x * bins.tiles_y,
                bins.tiles_x,
                tile,
                *pixel_size(width, height, aspect),
                aspect,
                support,
            )
            return bins.untile(torch.from_numpy(out))
        forward, _ = _Kernels.get()
        size = bins.chunk_size(chunk_pixels)
        out = params.new_zeros(bins.tiles_y * bins.tiles_x + 1, tile * tile, 3)  # + the spare tile
        for sl in bins.chunks(chunk_pixels):
            ch = _Chunk(params, coef_all, bins, sl, size)
            out.index_add_(0, ch.tile_id, forward(ch.p, ch.coef, ch.tx, ch.ty, consts, tile))
        return bins.untile(out[:-1])

    @staticmethod
    def backward(ctx, grad_out):
        (params,) = ctx.saved_tensors
        bins = ctx.bins
        g_tiles = torch.cat((bins.to_tiles(grad_out.to(params.dtype)), params.new_zeros(1, bins.tile**2, 3)))
        coef_all = torch.stack(_coefficients(params, ctx.carrier), dim=1)
        # gradients w.r.t. (u, v, theta, sigma, gamma, wavelength, A(3), B(3))
        if _use_cpu_kernels(params):
            geo, coef = params.detach()[:, :6].contiguous().numpy(), coef_all.detach().contiguous().numpy()
            dx, dy = pixel_size(bins.width, bins.height, float(ctx.consts[2]))
            grad = torch.from_numpy(
                cpu_kernels.backward(
                    geo,
                    coef,
                    *bins.numpy_pairs(),
                    g_tiles[:-1].contiguous().numpy(),
                    bins.tile,
                    dx,
                    dy,
                    float(ctx.consts[2]),
                    ctx.support,
                )
            )
        else:
            _, backward = _Kernels.get()
            size = bins.chunk_size(ctx.chunk_pixels)
            grad = params.new_zeros(len(params), 12)
            for sl in bins.chunks(ctx.chunk_pixels):
                ch = _Chunk(params, coef_all, bins, sl, size)
                part, d_ab = backward(ch.p, ch.coef, ch.tx, ch.ty, g_tiles[ch.tile_id], ctx.consts, bins.tile)
                grad[:, :6].index_add_(0, ch.w, part[: ch.n])
                grad[:, 6:9].index_add_(0, ch.w, d_ab[: ch.n, :, 0])
                grad[:, 9:12].index_add_(0, ch.w, d_ab[: ch.n, :, 1])
        if ctx.carrier:
            return grad, None, None, None, None, None, None, None
        # chain (A, B) -> (amp, phase): A = amp cos(phase), B = amp sin(phase)
        amp, phase = params[:, AMP], params[:, PHASE]
        d_a, d_b = grad[:, 6:9].clone(), grad[:, 9:12].clone()
        cph, sph = torch.cos(phase), torch.sin(phase)
        grad[:, 6:9] = amp * (d_b * cph - d_a * sph)
        grad[:, 9:12] = d_a * cph + d_b * sph
        return grad, None, None, None, None, None, None, None


def _coefficients(params, carrier):
    return (params[:, 6:9], params[:, 9:12]) if carrier else carrier_coefficients(params)


def render(
    params: torch.Tensor,
    aspect: float,
    width: int,
    height: int,
    *,
    tile: int = DEFAULT_TILE,
    support: float = DEFAULT_SUPPORT,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    carrier: bool = False,
) -> torch.Tensor:
    """Signed sum of the field on a width x height raster, (H, W, 3); differentiable.

    With ``carrier=True`` columns 6:9 / 9:12 hold the carrier coefficients A / B
    (``carrier_coefficients``) instead of phase / amplitude: the sum is linear in them,
    which the fitter exploits (and it avoids atan2/sqrt at zero amplitude).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"render size must be positive, got {width}x{height}")
    return _TiledRender.apply(
        params, float(aspect), int(width), int(height), int(tile), float(support), int(chunk_pixels), bool(carrier)
    )
