"""The fitter on real photos: quality, determinism, warm start, stop, NaN, weights, schedule."""

import math

import numpy as np
import pytest
import torch

from imfit_engine.api import render_image as render_preview
from imfit_engine.core.fit import FitConfig, fit, level_iterations, level_sizes
from imfit_engine.core.model import GAMMA, SIGMA, WAVELENGTH, WaveletSet
from imfit_engine.core.render import render, to_image
from support import load_rgb, psnr

TINY = FitConfig(num_wavelets=32, size=48, iterations=20, rescales=1, seed=3)


@pytest.fixture(scope="module")
def astronaut_fit():
    """The acceptance fit: a real 128-px photo with 256 wavelets (the seed reaches ~20.7 dB here)."""
    image = load_rgb("astronaut.png", (128, 128))
    config = FitConfig(num_wavelets=256, size=128, iterations=100, iter_multiple=1.5, rescales=2, seed=0)
    return image, fit(image, None, config)


def test_fit_quality_on_real_photo(astronaut_fit):
    image, result = astronaut_fit
    # measured 24.58 / 24.42 / 24.32 dB for seeds 0-2 (CPU); the seed's algorithm gets ~20.7 dB here
    assert result.psnr >= 24.0
    again = render_preview(result.wavelets, 128, 128)
    assert abs(psnr(again, image) - result.psnr) < 0.05  # the stored params reproduce the reported PSNR
    assert result.wavelets.params.shape == (256, 12)
    assert result.wavelets.meta["metrics"]["psnr"] == result.psnr


def test_fit_keeps_wavelets_clean(astronaut_fit):
    """No collapsed envelopes or aliased carriers: the floors hold at the training pixel size."""
    _, result = astronaut_fit
    p = result.wavelets.params
    px = 1 / 128
    assert p[:, [SIGMA, GAMMA]].min() >= 0.5 * px * 0.999
    assert p[:, WAVELENGTH].min() >= 2.0 * px * 0.999
    assert np.isfinite(p).all()


def test_deterministic_for_a_seed():
    image = load_rgb("chelsea.png", (72, 48))
    a = fit(image, None, TINY).wavelets.params
    b = fit(image, None, TINY).wavelets.params
    c = fit(image, None, FitConfig(**{**TINY.to_dict(), "seed": 4})).wavelets.params
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_non_square_source_keeps_aspect():
    image = load_rgb("coffee.png")  # 192 x 128
    result = fit(image, None, TINY)
    ws = result.wavelets
    assert (ws.width, ws.height) == (192, 128)
    m = ws.meta["metrics"]
    assert (m["train_width"], m["train_height"]) == (48, 32)
    ref = load_rgb("coffee.png", (48, 32))
    assert psnr(render_preview(ws), ref) > 18


def test_warm_start_continues():
    image = load_rgb("chelsea.png", (72, 48))
    first = fit(image, None, TINY)
    second = fit(image, None, FitConfig(**{**TINY.to_dict(), "rescales": 0}), init=first.wavelets)
    assert second.psnr > first.psnr
    assert len(second.wavelets) == len(first.wavelets)


def test_should_stop_returns_best_so_far_and_progress_reports():
    image = load_rgb("chelsea.png", (72, 48))
    seen = []

    def on_progress(p):
        seen.append(p)

    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 25

    config = FitConfig(**{**TINY.to_dict(), "iterations": 400})
    result = fit(image, None, config, on_progress=on_progress, should_stop=should_stop)
    assert result.stopped and "stopped on request" in result.message
    assert result.iterations == 25
    assert np.isfinite(result.wavelets.params).all() and result.psnr > 10
    assert seen and seen[-1].total == sum(level_iterations(config))
    preview = seen[-1].preview()
    assert preview.shape == (32, 48, 3)  # the training raster and 0 <= preview.min() and preview.max() <= 1


def test_nan_loss_stops_and_keeps_last_good_params():
    image = load_rgb("chelsea.png", (72, 48))
    config = FitConfig(**{**TINY.to_dict(), "lr": float("inf")})
    result = fit(image, None, config)
    assert result.stopped and "non-finite" in result.message
    assert np.isfinite(result.wavelets.params).all()
    assert math.isfinite(result.psnr)


def test_weight_focuses_the_fit():
    """Weight 1 on the left half, ~0 on the right: the left half fits much better than the right."""
    image = load_rgb("chelsea.png", (72, 48))
    weight = np.zeros((48, 72), np.float32)
    weight[:, :36] = 1
    out = render_preview(fit(image, weight, FitConfig(**{**TINY.to_dict(), "size": 72})).wavelets)
    assert psnr(out[:, :36], image[:, :36]) > psnr(out[:, 36:], image[:, 36:]) + 3


def test_loss_terms_run():
    image = load_rgb("chelsea.png", (72, 48))
    config = FitConfig(**{**TINY.to_dict(), "l1": 0.5, "gradient": 0.5, "sobel": 0.1, "mutation_scale": 0.1})
    result = fit(image, None, config)
    assert result.psnr > 15 and np.isfinite(result.wavelets.params).all()


def test_schedule_matches_the_seed():
    # torch-imfit: size 256 with 2 rescales trains at 64, 128 and 256
    assert level_sizes(512, 512, 256, 2) == [(64, 64), (128, 128), (256, 256)]
    assert level_sizes(600, 400, 256, 1) == [(128, 86), (256, 171)]
    assert level_iterations(FitConfig(iterations=100, rescales=2, iter_multiple=1.5)) == [300, 150, 100]


def test_time_budget_holds_and_the_full_size_level_fills_it():
    """With a time budget the fit ends at the budget whatever the machine does (the deadline is re-read every
    iteration), the coarse levels keep to their share, and progress totals follow the real length."""
    image = load_rgb("chelsea.png", (72, 48))
    fit(image, None, FitConfig(**{**TINY.to_dict(), "iterations": 1}))  # compiled kernels loaded: not timed below
    seen = []
    config = FitConfig(**{**TINY.to_dict(), "iterations": 30, "time_budget": 2.0})
    result = fit(image, None, config, on_progress=lambda p: seen.append((p.iteration, p.total, p.level, p.elapsed)))
    assert 1.8 < result.seconds < 2.6  # ended at the budget, not at 30 full-size iterations
    assert seen[-1][0] == seen[-1][1] == result.iterations  # progress knew the real length
    coarse_end = max((e for _, _, level, e in seen if level == 0), default=0.0)
    assert coarse_end <= 0.25 * 2.0 + 0.3  # the coarse level's share (plus one report's slack)
    short = fit(image, None, FitConfig(**{**config.to_dict(), "time_budget": 0.0, "iterations": 3}))
    assert result.psnr > short.psnr + 1.0  # the budget went into optimisation


def test_render_is_resolution_independent_for_a_fit(astronaut_fit):
    """A fit re-rendered at 3x: the centre pixel of each 3x3 block equals the 1x pixel."""
    _, result = astronaut_fit
    ws: WaveletSet = result.wavelets
    p = torch.as_tensor(ws.params)
    small = to_image(render(p, 1.0, 128, 128))
    big = to_image(render(p, 1.0, 384, 384))
    assert (big[1::3, 1::3] - small).abs().max() < 1e-4


def test_reallocation_moves_the_weakest_wavelets_to_the_largest_residual(monkeypatch):
    """A re-seeding pass moves the weakest share of the wavelets (least energy) to where the residual is largest,
    sized as one of the whole set (not as if the few moved shared the image), and leaves the rest; the share is
    none at 256 wavelets and REALLOCATE_SHARE from 4096."""
    from imfit_engine.core import fit as fitter
    from imfit_engine.core.optim import WaveletAdam
    from imfit_engine.core.params import render_internal, to_internal

    size, n = 64, 40
    assert fitter.reallocation_share(256) == 0 and fitter.reallocation_share(1 << 14) == fitter.REALLOCATE_SHARE
    monkeypatch.setattr(fitter, "reallocation_share", lambda num_wavelets: 0.1)  # 4 of these 40
    rng = np.random.default_rng(0)
    canonical = np.zeros((n, 12), np.float32)
    canonical[:, 0:2] = rng.uniform(0.1, 0.4, (n, 2))  # centres in the bottom-left quarter (v is up)
    canonical[:, 3:5] = 3 / size
    canonical[:, 5] = 12 / size
    canonical[:, 9:12] = np.linspace(0.05, 0.5, n)[rng.permutation(n), None]  # amplitudes, all different
    internal = to_internal(torch.as_tensor(canonical)).requires_grad_(True)
    before = internal.detach().clone()
    with torch.no_grad():
        out = render_internal(internal, 1.0, size, size).clamp(-1, 1)
    target = out.clone()
    target[:16, -16:] += 0.8  # the top-right corner is all the residual: nothing there fits it yet
    fitter._reallocate(
        internal, n, WaveletAdam(internal, 0.01), out, target, torch.ones(size, size, 1), 1.0,
        torch.Generator().manual_seed(0), FitConfig(),
    )  # fmt: skip
    moved = (internal.detach() != before).any(1).nonzero().flatten().tolist()
    weakest = np.argsort(canonical[:, 9])[:4].tolist()
    assert sorted(moved) == sorted(weakest) and moved
    new = internal.detach()[moved]
    in_corner = (new[:, 0] > 0.75) & (new[:, 1] > 0.75)
    assert in_corner.float().mean() >= 0.75  # 5% of new positions are drawn uniformly, the rest by the residual
    assert (new[in_corner, 3].exp() * size < 3).all()  # sized as one of 40 wavelets (~1.6 px), not of 4 (~5 px)
