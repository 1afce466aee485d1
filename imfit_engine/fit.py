"""Fit a wavelet field to an image: coarse-to-fine, Adam with plateau decay, clean wavelets.

The optimiser works in an internal parametrisation that is better conditioned than the
canonical one (model.py): lengths as logarithms, and per channel the carrier coefficients
(A, B) with amp * cos(arg + phase) = A cos(arg) - B sin(arg), which the image is linear in.
Amplitudes and phases are therefore solved in closed form (least squares, ``_solve_carrier``)
at the start and after re-seeding, and refined by Adam in between.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .model import COLUMNS, WaveletSet
from .render import carrier_coefficients, from_carrier, render, to_image, use_compiled_kernels

# Internal column layout: u, v, theta, log sigma, log gamma, log wavelength, A(3), B(3).
_POS, _THETA, _LOGLEN, _AB = slice(0, 2), slice(2, 3), slice(3, 6), slice(6, 12)

# Floors that keep wavelets clean at the current level's pixel size (in pixels).
MIN_ENVELOPE_PX = 0.5
MIN_WAVELENGTH_PX = 2.0


@dataclass
class FitConfig:
    num_wavelets: int = 256
    size: int = 256  # longest side of the training raster, pixels
    iterations: int = 200  # iterations at full size; coarser levels get more (iter_multiple)
    iter_multiple: float = 1.5
    rescales: int = 2  # coarse levels, each half the size of the next
    lr: float = 0.01  # global learning rate (per-group rates are multiples of it)
    gamma: float = 0.997  # learning-rate factor applied when the loss plateaus
    l1: float = 0.0
    gradient: float = 0.0
    sobel: float = 0.0
    mutation_scale: float = 0.0
    device: str = "auto"
    seed: int = 0
    reseed_every: int = 50  # iterations between dead-wavelet re-seeding passes (0: never)
    carrier_solve_steps: int = 12  # least-squares steps for amplitudes/phases after (re)seeding
    preset: str = "default"  # "seed": torch-imfit's algorithm (pipeline.PRESETS), for comparisons
    compile: str = "auto"  # fused (torch.compile) render kernels: "auto" = on for CUDA, "on", "off"
    time_budget: float = 0.0  # seconds; > 0: the full-size level runs as long as the budget allows, then anneals

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FitConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Progress:
    iteration: int
    total: int
    level: int
    levels: int
    loss: float
    psnr: float
    elapsed: float
    _preview: Callable[[], np.ndarray]

    def preview(self) -> np.ndarray:
        """The current fit rendered at the training size, (H, W, 3) in [0, 1]."""
        return self._preview()


@dataclass
class FitResult:
    wavelets: WaveletSet
    psnr: float  # at the full training size, against the (antialiased) training target
    seconds: float
    iterations: int
    stopped: bool  # ended early by should_stop or a non-finite loss
    history: list  # (iteration, level, loss, psnr) samples
    message: str = ""  # why it stopped early, for the user


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def level_sizes(width: int, height: int, size: int, rescales: int) -> list[tuple[int, int]]:
    """Training rasters, coarse to fine; the finest has longest side min(size, source)."""
    scale = min(1.0, size / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    sizes = [(max(1, round(w / 2**k)), max(1, round(h / 2**k))) for k in range(rescales, 0, -1)]
    return sizes + [(w, h)]


def level_iterations(config: FitConfig) -> list[int]:
    """The seed's schedule: iterations * (rescales - a) * iter_multiple at coarse level a."""
    r = config.rescales
    coarse = [round(config.iterations * (r - a) * config.iter_multiple) for a in range(r)]
    return coarse + [config.iterations]


def psnr_of(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


# ----------------------------------------------------------------------------------------
# parametrisation


def to_internal(params: torch.Tensor) -> torch.Tensor:
    a, b = carrier_coefficients(params)
    return torch.cat((params[:, :3], torch.log(params[:, 3:6].abs().clamp_min(1e-8)), a, b), dim=1)


def to_canonical(internal: torch.Tensor) -> torch.Tensor:
    amp, phase = from_carrier(internal[:, 6:9], internal[:, 9:12])
    return torch.cat((internal[:, :3], torch.exp(internal[:, 3:6]), phase, amp), dim=1)


# Envelope cut used while fitting: exp(-4^2/2) = 3e-4 of a wavelet's peak, invisible in 8 bits,
# and 36% fewer evaluations than the 5-sigma cut of final renders.
TRAIN_SUPPORT = 4.0


def _render_internal(internal, aspect, w, h):
    p = torch.cat((internal[:, :3], torch.exp(internal[:, 3:6]), internal[:, 6:12]), dim=1)
    return render(p, aspect, w, h, carrier=True, support=TRAIN_SUPPORT)


# ----------------------------------------------------------------------------------------
# targets and losses


def _resize(img: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """(H, W, C) -> (h, w, C), antialiased."""
    if img.shape[0] == h and img.shape[1] == w:
        return img
    x = img.permute(2, 0, 1)[None]
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0)


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _sobel(img):
    x = img.permute(2, 0, 1)[:, None]  # (3, 1, H, W)
    k = _SOBEL.to(img)
    gx = F.conv2d(x, k[None, None], padding=1)
    gy = F.conv2d(x, k.t()[None, None], padding=1)
    return torch.cat((gx, gy), 1)


def _loss(out, target, weight, config: FitConfig):
    diff = out - target
    loss = (diff * diff * weight).mean()
    if config.l1:
        loss = loss + config.l1 * (diff.abs() * weight).mean()
    if config.gradient:
        gdx = diff[:, 1:] - diff[:, :-1]
        gdy = diff[1:] - diff[:-1]
        loss = loss + config.gradient * ((gdx * gdx).mean() + (gdy * gdy).mean())
    if config.sobel:
        s = _sobel(diff)
        loss = loss + config.sobel * (s * s).mean()
    return loss


# ----------------------------------------------------------------------------------------
# initialisation


def _structure(target: torch.Tensor):
    """Gradient energy and dominant gradient angle per pixel (smoothed structure tensor)."""
    lum = target.mean(-1)[None, None]
    gx = F.conv2d(lum, _SOBEL.to(lum)[None, None], padding=1)[0, 0] / 8
    gy = -F.conv2d(lum, _SOBEL.to(lum).t()[None, None], padding=1)[0, 0] / 8  # y up
    blur = torch.ones(1, 1, 5, 5, device=lum.device, dtype=lum.dtype) / 25
    jxx, jyy, jxy = (F.conv2d(t[None, None], blur, padding=2)[0, 0] for t in (gx * gx, gy * gy, gx * gy))
    energy = jxx + jyy
    angle = 0.5 * torch.atan2(2 * jxy, jxx - jyy)
    return energy, angle


def _seed_wavelets(count, target, residual_energy, aspect, generator, uniform_share=0.3, size_count=None):
    """New wavelets placed by importance sampling of `residual_energy` (H, W); carriers zero.

    Envelopes are sized as if `size_count` wavelets (default `count`) shared the image, smaller
    where the sampling density is high.
    """
    h, w = residual_energy.shape
    dev = target.device
    energy, angle = _structure(target)
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


def _solve_carrier(internal, rows, target, weight, aspect, steps):
    """Least squares for the carrier coefficients of `rows` (others fixed): CGLS on the linear map."""
    if steps <= 0 or len(rows) == 0:
        return
    h, w = target.shape[:2]
    fixed = internal.detach().clone()
    fixed[rows, 6:12] = 0
    base = _render_internal(fixed, aspect, w, h).detach()

    def apply(ab):  # image of the selected rows' coefficients alone
        p = internal.detach()[rows].clone()
        p[:, 6:12] = ab
        return _render_internal(p, aspect, w, h)

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


# ----------------------------------------------------------------------------------------


class _Optimiser:
    """Adam over parameter groups sharing one tensor (per-column learning rates)."""

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


class _Plateau:
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


def _project(internal, aspect, w, h):
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


def fit(
    image: np.ndarray,
    weight: Optional[np.ndarray] = None,
    config: FitConfig = FitConfig(),
    *,
    init: Optional[WaveletSet] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    source_name: str = "",
) -> FitResult:
    """Fit `config.num_wavelets` wavelets to `image` (H, W, 3) in [0, 1]; `weight` (H, W) >= 0."""
    start = time.perf_counter()
    device = pick_device(config.device)
    # compiling costs ~20 s once (cached on disk afterwards) and runs ~2x faster on the CPU
    use_compiled_kernels(config.compile == "on" or (config.compile == "auto" and device.type == "cuda"))
    generator = torch.Generator().manual_seed(config.seed)
    src_h, src_w = image.shape[:2]
    aspect = src_w / src_h
    full = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32, device=device) * 2 - 1
    wfull = None if weight is None else torch.as_tensor(np.ascontiguousarray(weight), dtype=torch.float32, device=device)
    sizes = level_sizes(src_w, src_h, config.size, config.rescales)
    iters = level_iterations(config)
    total = sum(iters)

    targets, weights = [], []
    for w, h in sizes:
        targets.append(_resize(full, w, h))
        if wfull is None:
            weights.append(torch.ones(h, w, 1, device=device))
        else:
            wl = _resize(wfull[..., None], w, h).clamp_min(1e-4)
            weights.append(wl / wl.mean())

    # Progressive growth: without a warm start, half the wavelets of the next level at each coarser
    # one; each level adds its share where the residual is largest, so fine levels get fine wavelets.
    n = config.num_wavelets
    if init is not None:
        warm = to_internal(torch.as_tensor(init.params, dtype=torch.float32, device=device))[:n]
        level_counts = [n] * len(sizes)
    else:
        warm = torch.zeros(0, 12, device=device)
        level_counts = [max(1, math.ceil(n / 2 ** (len(sizes) - 1 - k))) for k in range(len(sizes))]
    internal = torch.zeros(n, 12, device=device)
    internal[:, 3:6] = -20.0  # rows not grown yet: zero carriers, pixel-sized (cheap) envelopes
    internal[: len(warm)] = warm
    active = len(warm)
    internal.requires_grad_(True)
    opt = _Optimiser(internal, config.lr)
    history, iteration, stopped, message = [], 0, False, ""
    best_loss, best = float("inf"), internal.detach().clone()
    last_report = 0.0

    def preview():
        with torch.no_grad():
            w, h = sizes[-1]
            return to_image(_render_internal(best, aspect, w, h)).cpu().numpy()

    for level, ((w, h), n_iter) in enumerate(zip(sizes, iters)):
        target, wmap = targets[level], weights[level]
        if level_counts[level] > active:
            _grow(internal, opt, active, level_counts[level], target, wmap, aspect, generator, config)
            active = level_counts[level]
        plateau = _Plateau(config.gamma)
        best_loss, lr_scale = float("inf"), 1.0
        final = level == len(sizes) - 1
        level_start, k = time.perf_counter(), -1
        while k + 1 < n_iter:
            k += 1
            if final and config.time_budget > 0 and k == _BUDGET_PROBE:
                fitted = _iterations_within(config.time_budget, start, level_start, k)
                total, n_iter = total + fitted - n_iter, fitted
            if should_stop is not None and should_stop():
                stopped, message = True, f"stopped on request at iteration {iteration}; kept the best result so far"
                break
            out = _render_internal(internal[:active], aspect, w, h).clamp(-1, 1)
            loss = _loss(out, target, wmap, config)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                stopped = True
                message = f"the loss became non-finite at iteration {iteration}; kept the last good parameters"
                with torch.no_grad():
                    internal.data.copy_(best)
                history.append((iteration, level, float("nan"), float("nan")))
                break
            if loss_value < best_loss:
                best_loss = loss_value
                best = internal.detach().clone()
            (grad,) = torch.autograd.grad(loss, internal)
            lr_scale *= plateau(loss_value)
            # anneal over the last third of the final level so the fit ends converged
            tail = max(0.0, (k - 2 * n_iter / 3) / (n_iter / 3)) if final else 0.0
            opt.lr = config.lr * lr_scale * (1 - 0.9 * tail)
            opt.step(grad)
            if config.mutation_scale:
                noise = torch.randn(internal.shape, generator=generator).to(device)
                internal.data.add_(noise * config.mutation_scale * opt.lr * opt.col_rate)
            _project(internal, aspect, w, h)
            iteration += 1
            if config.reseed_every and (k + 1) % config.reseed_every == 0 and k + 1 < n_iter * 0.8:
                _reseed_dead(internal, active, opt, out.detach(), target, wmap, aspect, generator, config)
            mse01 = float(((out.detach() - target) ** 2).mean()) / 4
            now = time.perf_counter() - start
            if on_progress is not None and (now - last_report >= 0.25 or k in (0, n_iter - 1)):
                last_report = now
                on_progress(Progress(iteration, total, level, len(sizes), loss_value, psnr_of(mse01), now, preview))
            if k % 10 == 0 or k == n_iter - 1:
                history.append((iteration, level, loss_value, psnr_of(mse01)))
        if stopped:
            break
        with torch.no_grad():
            # end of the level: its final state is the best candidate going forward
            out = _render_internal(internal, aspect, w, h).clamp(-1, 1)
            if float(_loss(out, target, wmap, config)) <= best_loss:
                best = internal.detach().clone()
            internal.data.copy_(best)

    with torch.no_grad():
        w, h = sizes[-1]
        out = _render_internal(best, aspect, w, h).clamp(-1, 1)
        final_psnr = psnr_of(float(((out - targets[-1]) ** 2).mean()) / 4)
        params = to_canonical(best).cpu().numpy().astype(np.float32)
    seconds = time.perf_counter() - start
    ws = WaveletSet(
        params,
        src_w,
        src_h,
        meta={
            "source": {"width": src_w, "height": src_h, "name": source_name},
            "settings": config.to_dict(),
            "metrics": {
                "psnr": final_psnr,
                "seconds": seconds,
                "iterations": iteration,
                "stopped": stopped,
                "train_width": sizes[-1][0],
                "train_height": sizes[-1][1],
                "device": str(device),
            },
        },
    )
    return FitResult(ws, final_psnr, seconds, iteration, stopped, history, message)


_BUDGET_PROBE = 20  # full-size iterations timed before a time budget sets the level's length


def _iterations_within(budget, start, level_start, done):
    """The full-size level's length that ends it (anneal included) at `budget` seconds after `start`."""
    now = time.perf_counter()
    pace = (now - level_start) / done
    return done + max(1, int((budget - (now - start)) / pace * 0.97))


def _grow(internal, opt, active, count, target, wmap, aspect, generator, config):
    """Activate rows active..count, seeded where the residual of the active ones is largest,
    then solve all active carriers jointly for this level's target."""
    h, w = target.shape[:2]
    with torch.no_grad():
        out = _render_internal(internal[:active], aspect, w, h).clamp(-1, 1) if active else torch.zeros_like(target)
        resid = ((target - out) ** 2 * wmap).sum(-1)
        rows = torch.arange(active, count, device=target.device)
        internal.data[rows] = _seed_wavelets(count - active, target, resid, aspect, generator, size_count=count)
        opt.reset_rows(rows)
        _project(internal, aspect, w, h)
    _solve_carrier(internal, torch.arange(count, device=target.device), target, wmap, aspect,
                   config.carrier_solve_steps)


def _reseed_dead(internal, active, opt, out, target, wmap, aspect, generator, config):
    """Wavelets that contribute (almost) nothing move to where the residual is largest."""
    with torch.no_grad():
        ab = internal[:active, 6:12]
        amp = ab.view(-1, 2, 3).pow(2).sum(1).sqrt().amax(1)
        dead = torch.nonzero(amp < 2e-3).flatten()
        if len(dead) == 0:
            return
        resid = ((target - out) ** 2 * wmap).sum(-1)
        new = _seed_wavelets(len(dead), target, resid, aspect, generator, uniform_share=0.05)
        internal.data[dead] = new
        opt.reset_rows(dead)
        h, w = target.shape[:2]
        _project(internal, aspect, w, h)
        _solve_carrier(internal, dead, target, wmap, aspect, config.carrier_solve_steps)


__all__ = ["FitConfig", "FitResult", "Progress", "fit", "pick_device", "level_sizes", "level_iterations", "COLUMNS"]
