"""Fit a wavelet field to an image: coarse-to-fine, Adam with plateau decay, clean wavelets.

The optimiser works in the internal parametrisation of ``params`` (log lengths, carrier
coefficients the image is linear in).  Amplitudes and phases are solved in closed form
(``init.solve_carrier``) when wavelets are seeded or re-seeded, and refined by Adam in between.
Each level of the pyramid (``level_sizes``) adds its share of the wavelets where the residual is
largest, and every ``reseed_every`` iterations the weakest of them move there (``_reallocate``); the full-size
level anneals at the end, or runs until a time budget is spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .config import FitConfig
from .device import pick_device
from .init import seed_wavelets, solve_carrier
from .loop import Loop
from .metrics import psnr_of
from .model import WaveletSet
from .optim import Plateau, WaveletAdam, project
from .params import render_internal, to_canonical, to_internal
from .render import to_image, use_compiled_kernels
from .targets import fit_loss, resize


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
    # GPUs: torch.compile fuses the chunk kernels (a one-off compile, cached on disk); the CPU runs numba's
    use_compiled_kernels(config.compile == "on" or (config.compile == "auto" and device.type == "cuda"))
    generator = torch.Generator().manual_seed(config.seed)
    src_h, src_w = image.shape[:2]
    aspect = src_w / src_h
    full = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32, device=device) * 2 - 1
    wfull = (
        None if weight is None else torch.as_tensor(np.ascontiguousarray(weight), dtype=torch.float32, device=device)
    )
    sizes = level_sizes(src_w, src_h, config.size, config.rescales)
    iters = level_iterations(config)

    targets, weights = [], []
    for w, h in sizes:
        targets.append(resize(full, w, h))
        if wfull is None:
            weights.append(torch.ones(h, w, 1, device=device))
        else:
            wl = resize(wfull[..., None], w, h).clamp_min(1e-4)
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
    opt = WaveletAdam(internal, config.lr)
    loop = Loop(should_stop, on_progress, start=start)
    loop.best = internal.detach().clone()
    history, iteration = [], 0

    def preview():
        with torch.no_grad():
            w, h = sizes[-1]
            return to_image(render_internal(loop.best, aspect, w, h)).cpu().numpy()

    clocks = _level_clocks(config, sizes, iters, start)
    for level, ((w, h), clock) in enumerate(zip(sizes, clocks)):
        target, wmap = targets[level], weights[level]
        if level_counts[level] > active:
            _grow(internal, opt, active, level_counts[level], target, wmap, aspect, generator, config)
            active = level_counts[level]
        plateau = Plateau(config.gamma)
        loop.best_loss, lr_scale = math.inf, 1.0  # a new level has a new loss scale; the best state stays
        final = level == len(sizes) - 1
        clock.begin()
        running = clock.running()
        while running:
            k = clock.k
            if loop.stop_requested(iteration):
                break
            out = render_internal(internal[:active], aspect, w, h).clamp(-1, 1)
            loss = fit_loss(out, target, wmap, config)
            loss_value = float(loss.detach())
            if not loop.finite(loss_value, iteration, keep="kept the last good parameters"):
                with torch.no_grad():
                    internal.data.copy_(loop.best)
                history.append((iteration, level, float("nan"), float("nan")))
                break
            loop.offer(loss_value, lambda: internal.detach().clone())
            (grad,) = torch.autograd.grad(loss, internal)
            lr_scale *= plateau(loss_value)
            # anneal over the last third of the final level so the fit ends converged
            tail = max(0.0, 3 * clock.fraction() - 2) if final else 0.0
            opt.lr = config.lr * lr_scale * (1 - 0.9 * tail)
            opt.step(grad)
            if config.mutation_scale:
                noise = torch.randn(internal.shape, generator=generator).to(device)
                internal.data.add_(noise * config.mutation_scale * opt.lr * opt.col_rate)
            project(internal, aspect, w, h)
            iteration += 1
            clock.tick()
            if config.reseed_every and clock.k % config.reseed_every == 0 and clock.fraction() < 0.8:
                _reallocate(internal, active, opt, out.detach(), target, wmap, aspect, generator, config)
            psnr = psnr_of(float(((out.detach() - target) ** 2).mean()) / 4)
            running = clock.running()  # read once: the last report must agree with the loop's end
            last = not running
            total = sum(c.expected() for c in clocks)
            if (now := loop.report_due(force=k == 0 or last)) is not None:
                on_progress(Progress(iteration, total, level, len(sizes), loss_value, psnr, now, preview))
            if k % 10 == 0 or last:
                history.append((iteration, level, loss_value, psnr))
        if loop.stopped:
            break
        with torch.no_grad():
            # end of the level: its final state is the best candidate going forward
            out = render_internal(internal, aspect, w, h).clamp(-1, 1)
            if float(fit_loss(out, target, wmap, config)) <= loop.best_loss:
                loop.best = internal.detach().clone()
            internal.data.copy_(loop.best)

    best = loop.best
    with torch.no_grad():
        w, h = sizes[-1]
        out = render_internal(best, aspect, w, h).clamp(-1, 1)
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
                "stopped": loop.stopped,
                "train_width": sizes[-1][0],
                "train_height": sizes[-1][1],
                "device": str(device),
            },
        },
    )
    return FitResult(ws, final_psnr, seconds, iteration, loop.stopped, history, loop.message)


# With a time budget the coarse levels may take at most this share of it (fewer iterations than asked when
# the budget is short): the full-size level is where the time pays off.
COARSE_BUDGET_SHARE = 0.25


class _LevelClock:
    """How long one level runs and how far through it the fit is: a number of iterations, or, under a time
    budget, until a deadline on the wall clock (re-read every iteration, so a busy machine slows the fit
    down instead of making it overrun the budget)."""

    def __init__(self, iterations: int, deadline: Optional[float] = None, budgeted_full: bool = False):
        self.iterations, self.deadline, self.budgeted_full = iterations, deadline, budgeted_full
        self.k, self.started = 0, None

    def begin(self) -> None:
        self.started = time.perf_counter()
        if self.deadline is not None and self.budgeted_full:
            self.deadline = max(self.deadline, self.started)

    def tick(self) -> None:
        self.k += 1

    def running(self) -> bool:
        if self.deadline is None:
            return self.k < self.iterations
        if self.budgeted_full:  # the full-size level: until the deadline, at least one iteration
            return self.k == 0 or time.perf_counter() < self.deadline
        return self.k < self.iterations and time.perf_counter() < self.deadline

    def fraction(self) -> float:
        """How far through the level, 0..1 (iterations, or time under a budget)."""
        if not self.budgeted_full:
            return self.k / max(1, self.iterations)
        span = self.deadline - self.started
        return 1.0 if span <= 0 else min(1.0, (time.perf_counter() - self.started) / span)

    def expected(self) -> int:
        """The level's length as far as it is known now (progress totals)."""
        if self.started is None or not self.budgeted_full:
            return self.k if self.started is not None and not self.running() else self.iterations
        if not self.running():
            return self.k
        pace = (time.perf_counter() - self.started) / max(1, self.k)
        return self.k + max(1, int((self.deadline - time.perf_counter()) / max(pace, 1e-9)))


def _level_clocks(config: FitConfig, sizes, iters, start: float) -> list[_LevelClock]:
    """One clock per level.  Without a budget each runs its iterations; with one, the coarse levels share
    ``COARSE_BUDGET_SHARE`` of it in proportion to their work (iterations x pixels) and the full-size level
    runs until ``start + time_budget``, whatever its iteration count says."""
    if config.time_budget <= 0:
        return [_LevelClock(n) for n in iters]
    work = [n * w * h for (w, h), n in zip(sizes[:-1], iters[:-1])]
    clocks, t = [], start
    for n, share in zip(iters[:-1], work):
        t += COARSE_BUDGET_SHARE * config.time_budget * share / max(1, sum(work))
        clocks.append(_LevelClock(n, deadline=t))
    return clocks + [_LevelClock(iters[-1], deadline=start + config.time_budget, budgeted_full=True)]


def _grow(internal, opt, active, count, target, wmap, aspect, generator, config):
    """Activate rows active..count, seeded where the residual of the active ones is largest,
    then solve all active carriers jointly for this level's target."""
    h, w = target.shape[:2]
    with torch.no_grad():
        out = render_internal(internal[:active], aspect, w, h).clamp(-1, 1) if active else torch.zeros_like(target)
        resid = ((target - out) ** 2 * wmap).sum(-1)
        rows = torch.arange(active, count, device=target.device)
        internal.data[rows] = seed_wavelets(count - active, target, resid, aspect, generator, size_count=count)
        opt.reset_rows(rows)
        project(internal, aspect, w, h)
    solve_carrier(internal, torch.arange(count, device=target.device), target, wmap, aspect, config.carrier_solve_steps)


# Each re-seeding pass also moves a share of the active wavelets, the weakest, to where the residual is largest:
# pruning and insertion in one step (as Image-GS inserts where the error is), so no wavelet stays where it barely
# helps.  It pays with many wavelets and costs with few (README, "Speed and quality"): at 4096, 768x512, 150 s,
# kodim05 26.35 -> 26.78 / 26.90 / 26.74 dB at 5 / 10 / 20%, kodim23 38.37 -> 39.11 / 39.13 dB at 5 / 10%; at 256,
# astronaut at 128 px 28.34 -> 28.21 / 27.96 dB at 5 / 10%.  So the share grows from none at 256 wavelets to
# REALLOCATE_SHARE at 4096 and more (log-linear in between: 5% at 1024, not measured).
REALLOCATE_SHARE = 0.10


def reallocation_share(num_wavelets: int) -> float:
    """The share of the active wavelets each re-seeding pass moves besides the dead ones, in a fit of
    ``num_wavelets`` (at every level: the coarse ones hold fewer)."""
    return REALLOCATE_SHARE * min(1.0, max(0.0, math.log2(max(num_wavelets, 1) / 256) / 4))


def _reallocate(internal, active, opt, out, target, wmap, aspect, generator, config):
    """Move the wavelets that contribute (almost) nothing, and the weakest ``reallocation_share`` of the others, to
    where the residual of ``out`` (the active rows' render) is largest; new envelopes are sized as one of
    ``active`` wavelets, their carriers solved in closed form.  A wavelet's weight is its energy,
    |carrier|^2 x sigma x gamma: about what removing it costs the fit."""
    with torch.no_grad():
        ab = internal[:active, 6:12].view(-1, 2, 3)
        moving = ab.pow(2).sum(1).sqrt().amax(1) < 2e-3
        weakest = int(reallocation_share(config.num_wavelets) * active)
        if weakest:
            energy = ab.pow(2).sum((1, 2)) * internal[:active, 3:5].sum(1).exp()
            moving[torch.topk(energy, weakest, largest=False).indices] = True
        rows = torch.nonzero(moving).flatten()
        if len(rows) == 0:
            return
        resid = ((target - out) ** 2 * wmap).sum(-1)
        internal.data[rows] = seed_wavelets(
            len(rows), target, resid, aspect, generator, uniform_share=0.05, size_count=active
        )
        opt.reset_rows(rows)
        h, w = target.shape[:2]
        project(internal, aspect, w, h)
        solve_carrier(internal, rows, target, wmap, aspect, config.carrier_solve_steps)
