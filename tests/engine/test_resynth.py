"""Re-synthesis without torch (core.resynth): the per-tile lists the culled shaders walk, the numpy renderer of
the add-on's own bakes, and the worker's bake job (files, manifest, resume, stop)."""

import json
import math

import numpy as np
import pytest
import torch

from imfit_engine.core import resynth
from imfit_engine.core.model import WaveletSet
from imfit_engine.core.render import DEFAULT_SUPPORT, render, render_reference
from imfit_engine.io import formats
from imfit_engine.io.export import osl_tiles_source
from imfit_engine.worker import jobs, protocol
from support import random_params


def _dense(params, aspect, x, y):
    """Signed sum at field points (x = u * aspect, y = v), every wavelet, float64."""
    p = np.asarray(params, np.float64)
    dx = x[:, None] - p[None, :, 0] * aspect
    dy = y[:, None] - p[None, :, 1]
    c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
    xr, yr = dx * c + dy * s, -dx * s + dy * c
    env = np.exp(-(xr**2) / (2 * p[:, 3] ** 2) - yr**2 / (2 * p[:, 4] ** 2))
    arg = 2 * np.pi * xr / p[:, 5]
    return np.einsum("pk,pkc->pc", env, np.cos(arg[..., None] + p[None, :, 6:9]) * p[None, :, 9:12])


def test_support_is_the_engines():
    assert resynth.SUPPORT == DEFAULT_SUPPORT


@pytest.mark.parametrize("rotation_known", [True, False])
def test_tile_lists_hold_every_wavelet_that_reaches_a_point(rotation_known):
    """Summing only a point's tile list gives the full sum within the truncation bound, inside the image and
    outside it (the outside list), on a non-square image."""
    aspect = 1.5
    params = random_params(300, seed=2, min_sigma=0.003, max_sigma=0.08).numpy().astype(np.float64)
    lists = resynth.tile_lists(params, aspect, 16, rotation_known=rotation_known)
    assert lists.meta["culled"] and lists.nx == 24 and lists.ny == 16
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, aspect + 0.5, 4000)
    y = rng.uniform(-0.5, 1.5, 4000)
    full = _dense(params, aspect, x, y)
    tiles = lists.tile_of(x, y)
    culled = np.zeros_like(full)
    for t in np.unique(tiles):
        at = tiles == t
        members = lists.index[lists.start[t] : lists.start[t] + lists.count[t]]
        culled[at] = _dense(params[members], aspect, x[at], y[at])
    bound = math.exp(-0.5 * DEFAULT_SUPPORT**2) * np.abs(params[:, 9:12]).max(axis=1).sum()
    assert np.abs(culled - full).max() <= bound
    assert (tiles == lists.outside).any()  # some points were off the grid
    assert lists.mean_count() < 0.5 * len(params)  # and culling did cut the work


def test_rotation_proof_lists_hold_any_rotation():
    """Lists built with the bounding circle stay exact when every wavelet turns (an animated Rotation Offset)."""
    params = random_params(200, seed=3, min_sigma=0.005, max_sigma=0.05).numpy().astype(np.float64)
    circle = resynth.tile_lists(params, 1.0, 16, rotation_known=False)
    turned = resynth.controlled(params, resynth.Controls(rotation_offset=1.1))
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-0.2, 1.2, 3000), rng.uniform(-0.2, 1.2, 3000)
    full = _dense(turned, 1.0, x, y)
    tiles = circle.tile_of(x, y)
    culled = np.zeros_like(full)
    for t in np.unique(tiles):
        at = tiles == t
        members = circle.index[circle.start[t] : circle.start[t] + circle.count[t]]
        culled[at] = _dense(turned[members], 1.0, x[at], y[at])
    bound = math.exp(-0.5 * DEFAULT_SUPPORT**2) * np.abs(params[:, 9:12]).max(axis=1).sum()
    assert np.abs(culled - full).max() <= bound


def test_grid_choice_and_unculled():
    params = random_params(2000, seed=4, min_sigma=0.002, max_sigma=0.02).numpy()
    best = resynth.tile_lists(params, 1.5)
    assert best.meta["tiles_per_height"] >= 16 and best.mean_count() < 200
    one = resynth.tile_lists(params, 1.5, 1)
    assert not one.meta["culled"] and one.count.tolist() == [2000, 0]


@pytest.mark.parametrize("width, height, aspect", [(48, 32, 1.5), (37, 29, 1.0), (20, 40, 0.7)])
def test_numpy_render_matches_the_reference(width, height, aspect):
    params = random_params(120, seed=5, min_sigma=0.01, max_sigma=0.2)
    reference = render_reference(params.double(), aspect, width, height).numpy()
    mine = resynth.render_signed(params.numpy(), aspect, width, height)
    bound = resynth.math.exp(-12.5) * float(params[:, 9:12].abs().amax(1).sum())
    assert mine.shape == (height, width, 3)
    assert np.abs(mine - reference).max() <= 2e-5 + bound


def test_controls_and_display():
    params = random_params(30, seed=6).numpy()
    controls = resynth.Controls(phase_shift=0.3, rotation_offset=-0.2, scale=1.4, frequency_multiplier=0.5,
                                amplitude_multiplier=1.2, offset=0.1)  # fmt: skip
    p = resynth.controlled(params, controls)
    np.testing.assert_allclose(p[:, 3:5], params[:, 3:5] * 1.4, rtol=1e-5)
    np.testing.assert_allclose(p[:, 5], params[:, 5] * 1.4 / 0.5, rtol=1e-5)
    np.testing.assert_allclose(p[:, 6:9], params[:, 6:9] + 0.3, rtol=1e-5, atol=1e-6)
    shown = resynth.render_display(params, 1.0, 16, 16, controls)
    signed = render(torch.as_tensor(p, dtype=torch.float32), 1.0, 16, 16).numpy()
    np.testing.assert_allclose(shown, np.clip(signed * 1.2 + 0.1, -1, 1) * 0.5 + 0.5, atol=2e-5)
    assert resynth.Controls.from_dict(controls.to_dict()) == controls
    assert resynth.field_key(params, controls) != resynth.field_key(params)
    assert resynth.field_key(params.astype(np.float64)) == resynth.field_key(params)


def test_osl_tiles_source_inlines_the_lists():
    params = random_params(50, seed=7, min_sigma=0.01, max_sigma=0.05).numpy()
    ws = WaveletSet(params, 60, 40)
    lists = resynth.tile_lists(params, ws.aspect, 8)
    source = osl_tiles_source(ws, lists)
    assert f"int tile_start[{lists.tiles + 1}]" in source and f"int L[{len(lists.index)}]" in source
    assert f"float W[{params.size}]" in source and "int nx = 12;" in source
    assert "// >>> imfit" not in source


def _read_png16(path) -> np.ndarray:
    """The 16-bit RGB PNG io.png writes (filter 0 on every row; pillow reads 16-bit colour at 8 bits)."""
    import struct
    import zlib

    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    rows = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, 1 + width * 6)
    return rows[:, 1:].copy().view(">u2").reshape(height, width, 3) / 65535.0


def _bake_job(tmp_path, ws, frames, size=(24, 16)):
    fit = tmp_path / "fit.json"
    formats.save_json(ws, fit)
    return {
        "kind": "bake",
        "output_dir": str(tmp_path),
        "bake": {
            "fit": str(fit),
            "width": size[0],
            "height": size[1],
            "folder": str(tmp_path / "out"),
            "stem": "field",
            "frames": frames,
        },  # fmt: skip
    }


def test_bake_job_writes_resumes_and_stops(tmp_path):
    params = random_params(40, seed=8).numpy()
    ws = WaveletSet(params, 48, 32)
    moved = params.copy()
    moved[:, 0] += 0.05
    np.save(tmp_path / "moved.npy", moved)
    controls = resynth.Controls(phase_shift=0.5)
    frames = [
        {"number": 1, "params": None, "controls": {}, "key": "a"},
        {"number": 2, "params": str(tmp_path / "moved.npy"), "controls": controls.to_dict(), "key": "b"},
    ]
    messages = []
    jobs.run_bake(_bake_job(tmp_path, ws, frames), lambda kind, **m: messages.append((kind, m)), lambda: False)
    result = next(m for kind, m in messages if kind == "result")
    assert not result["stopped"] and result["frames"] == 2 and result["resumed"] == 0
    manifest = json.loads((tmp_path / "out" / protocol.bake_manifest("field")).read_text())
    assert manifest["frames"]["2"] == {"key": "b", "file": "field_0002.png"}
    baked = _read_png16(tmp_path / "out" / "field_0002.png")
    with torch.no_grad():
        signed = render(torch.as_tensor(resynth.controlled(moved, controls), dtype=torch.float32), 1.5, 24, 16)
    assert np.abs(baked - resynth.to_display(signed.numpy())).max() < 1e-4

    messages.clear()
    frames[1]["key"] = "c"  # frame 2 changed, frame 1 did not
    jobs.run_bake(_bake_job(tmp_path, ws, frames), lambda kind, **m: messages.append((kind, m)), lambda: False)
    result = next(m for kind, m in messages if kind == "result")
    assert result["resumed"] == 1 and [m["resumed"] for kind, m in messages if kind == "frame"] == [True, False]

    messages.clear()
    jobs.run_bake(_bake_job(tmp_path, ws, frames, (30, 20)), lambda k, **m: messages.append((k, m)), lambda: True)
    result = next(m for kind, m in messages if kind == "result")
    assert result["stopped"] and result["frames"] == 0 and "resumes" in result["message"]


def test_bake_job_refuses_bad_sizes(tmp_path):
    ws = WaveletSet(random_params(4, seed=9).numpy(), 8, 8)
    with pytest.raises(jobs.ImfitError, match="bake size"):
        jobs.run_bake(_bake_job(tmp_path, ws, [], (0, 10)), lambda *a, **k: None, lambda: False)
