"""The tiled renderer against the dense reference: values, gradients, truncation, memory.

The reference checks run with both kernel sets: the numba CPU kernels (the CPU default) and the torch
chunk kernels (what CUDA and MPS run, and the CPU without numba), so the GPU path stays covered here.
"""

import json
import math
import subprocess
import sys

import pytest
import torch

from imfit_engine.core import cpu_kernels
from imfit_engine.core.model import COLUMNS
from imfit_engine.core.render import render, render_reference, to_image, truncation_bound
from support import REPO, random_params

KERNELS = ["numba", "torch"] if cpu_kernels.numba is not None else ["torch"]


@pytest.fixture(params=KERNELS)
def kernels(request, monkeypatch):
    """Every test taking this runs once per kernel set."""
    monkeypatch.setenv("IMFIT_KERNELS", "auto" if request.param == "numba" else "torch")
    assert cpu_kernels.available() == (request.param == "numba")
    return request.param


@pytest.mark.parametrize("aspect,width,height,tile", [(1.0, 40, 40, 16), (1.5, 48, 32, 8), (0.6, 30, 50, 16)])
def test_values_match_reference(aspect, width, height, tile, kernels):
    p = random_params(80, seed=1, dtype=torch.float64)
    ref = render_reference(p, aspect, width, height)
    out = render(p, aspect, width, height, tile=tile)
    assert out.shape == (height, width, 3)
    err = (out - ref).abs().max().item()
    assert err <= 1e-4
    assert err <= truncation_bound(p)


def test_resolution_independent(kernels):
    """At 3x the raster the centre pixel of each 3x3 block sits on the 1x pixel centre: same value."""
    p = random_params(30, seed=2, dtype=torch.float64)
    small = render_reference(p, 1.5, 30, 20)
    big = render(p, 1.5, 90, 60)
    assert (big[1::3, 1::3] - small).abs().max().item() < 1e-4


def test_gradients_match_reference(kernels):
    p = random_params(40, seed=3, dtype=torch.float64).requires_grad_(True)
    g = torch.randn(24, 36, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (g_ref,) = torch.autograd.grad((render_reference(p, 1.5, 36, 24) * g).sum(), p)
    (g_out,) = torch.autograd.grad((render(p, 1.5, 36, 24, tile=8) * g).sum(), p)
    rel = (g_out - g_ref).abs().amax(0) / g_ref.abs().amax(0)
    for name, r in zip(COLUMNS, rel.tolist()):
        assert r < 1e-3, name


def test_gradients_float32_and_carrier_mode(kernels):
    """float32 production path: carrier (A, B) columns give the same image and consistent gradients."""
    p = random_params(50, seed=4)
    a = p[:, 9:12] * torch.cos(p[:, 6:9])
    b = p[:, 9:12] * torch.sin(p[:, 6:9])
    carrier = torch.cat((p[:, :6], a, b), 1).requires_grad_(True)
    out = render(carrier, 1.0, 32, 32, carrier=True)
    assert (out - render(p, 1.0, 32, 32)).abs().max() < 1e-5
    (g,) = torch.autograd.grad(out.sum(), carrier)
    # the image is linear in (A, B): d(sum)/dA is the sum of each wavelet's cosine basis
    dense = render_reference(torch.cat((p[:, :6], torch.zeros(50, 3), torch.ones(50, 3)), 1).double(), 1.0, 32, 32)
    assert torch.isfinite(g).all()
    assert abs(g[:, 6].sum().item() - dense[..., 0].sum().item()) < 1e-2 * dense[..., 0].abs().sum().item() + 1e-3


def test_truncation_bound_holds_and_is_meaningful(kernels):
    """With a short support the error is visible, stays under the bound, and shrinks as support grows."""
    p = random_params(60, seed=5, dtype=torch.float64)
    ref = render_reference(p, 1.0, 48, 48)
    errors = []
    for support in (2.0, 3.0, 4.0):
        err = (render(p, 1.0, 48, 48, support=support) - ref).abs().max().item()
        assert err <= truncation_bound(p, support)
        errors.append(err)
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] > 1e-3  # the bound is about a real effect


def test_to_image_clamps_like_the_seed():
    s = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    assert to_image(s).tolist() == [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.skipif(cpu_kernels.numba is None, reason="numba is not installed")
def test_cpu_kernels_agree_with_torch_kernels_on_a_fit_sized_field(monkeypatch):
    """A field like a fit's at 128 x 96 with 600 wavelets: both kernel sets give the same image and gradients."""
    p = random_params(600, seed=7, min_sigma=0.004, max_sigma=0.08).requires_grad_(True)
    g = torch.randn(96, 128, 3, generator=torch.Generator().manual_seed(1))
    results = {}
    for name in ("auto", "torch"):
        monkeypatch.setenv("IMFIT_KERNELS", name)
        out = render(p, 4 / 3, 128, 96, carrier=True)
        (grad,) = torch.autograd.grad((out * g).sum(), p)
        results[name] = out.detach(), grad
    (out_n, grad_n), (out_t, grad_t) = results["auto"], results["torch"]
    # the CPU kernels skip pixels outside the support ellipse, the torch ones evaluate whole tiles
    assert (out_n - out_t).abs().max().item() <= truncation_bound(p.detach()) + 1e-5
    rel = (grad_n - grad_t).abs().amax(0) / grad_t.abs().amax(0)
    assert rel.max().item() < 2e-3


MEMORY_PROBE = r"""
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
from imfit_engine.core.render import render
from support import random_params
n, size = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
p = random_params(n, seed=0, min_sigma=0.002, max_sigma=0.03).requires_grad_(True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = render(p, 1.0, size, size)
out.square().sum().backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"delta_mb": (peak - base) / 1024, "finite": bool(torch.isfinite(p.grad).all())}))
"""


def test_memory_bounded_for_large_n():
    """50k wavelets at 64^2: a dense N x H x W float32 tensor alone would be 800 MB; the tiled path stays small."""
    n, size = 50_000, 64
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(REPO / "tests"), str(n), str(size)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    dense_mb = n * size * size * 4 / 2**20
    assert probe["finite"]
    assert probe["delta_mb"] < 200, probe
    assert probe["delta_mb"] < dense_mb / 4
    assert math.isfinite(probe["delta_mb"])


def test_non_finite_wavelet_poisons_the_image():
    """A blown-up parameter must show up (as NaN), not silently vanish from the sum."""
    p = random_params(5, seed=6)
    p[2, 0] = float("nan")
    assert torch.isnan(render(p, 1.0, 16, 16)).all()


@pytest.mark.slow
def test_compiled_kernels_match_eager():
    """torch.compile'd chunk kernels (the GPU default): same values and gradients as the eager ones."""
    from imfit_engine.core import render as r

    p = random_params(300, seed=7).requires_grad_(True)
    results = []
    for compiled in (False, True):
        r.use_compiled_kernels(compiled)
        try:
            out = render(p, 1.3, 52, 40, chunk_pixels=1 << 14)  # several chunks, one of them padded
            (g,) = torch.autograd.grad(out.square().sum(), p)
        finally:
            r.use_compiled_kernels(False)
        results.append((out.detach(), g))
    (o1, g1), (o2, g2) = results
    assert (o1 - o2).abs().max() < 1e-5
    assert ((g1 - g2).abs().max(0).values / g1.abs().max(0).values).max() < 1e-4
