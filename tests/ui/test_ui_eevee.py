"""Blender 4.3.2's real window, session "eevee" (drive_eevee.py): a small fit's plane in the 3D Viewport's
Material Preview, then imported fits of 256, 4096 and 16384 wavelets (past what EEVEE before 5.0 compiles
unrolled: 512 crashed this Blender), each compared with the engine's own render of the same fit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import sessions
from PIL import Image
from ui_session import REPO, need, shot

sys.path.insert(0, str(REPO))


@pytest.fixture(scope="module")
def eevee(extension_zip):
    return sessions.run("eevee", extension_zip, large=sessions.large_fits())


def test_the_session_ran_without_errors(eevee):
    assert eevee["errors"] == [], eevee.get("traceback")
    assert "Traceback" not in eevee["log"], eevee["log"][-3000:]
    assert eevee["returncode"] == 0


def plane_on_screen(results, shot_name: str, rectangle) -> np.ndarray:
    """The plane's pixels in a screenshot (its edges left out), (H, W, 3) in [0, 1]."""
    x0, y0, x1, y1 = rectangle
    height = results["window"][1]
    screen = np.asarray(Image.open(shot(results, shot_name)).convert("RGB"), dtype=np.float64) / 255
    crop = screen[height - y1 + 3 : height - y0 - 3, x0 + 3 : x1 - 3]
    assert min(crop.shape[:2]) >= 100, crop.shape
    return crop


def assert_shows_the_fit(crop: np.ndarray, fit_path: str) -> None:
    """Not black, not magenta, and per channel what the engine renders of the fit (correlation > 0.95)."""
    from imfit_engine import load, render_image

    assert crop.mean() > 0.1, "the plane is black"
    magenta = (crop[..., 0] > 0.8) & (crop[..., 1] < 0.2) & (crop[..., 2] > 0.8)
    assert magenta.mean() < 0.01, "the plane is magenta (EEVEE could not compile its material)"
    # both averaged down to 64x64 (box filter): a fine-grained fit's detail must not alias differently
    height, width = crop.shape[:2]
    ref = Image.fromarray(np.uint8(np.asarray(render_image(load(fit_path), width, height)) * 255))
    ref = np.asarray(ref.resize((64, 64), Image.BOX), dtype=np.float64)
    seen = np.asarray(Image.fromarray(np.uint8(crop * 255)).resize((64, 64), Image.BOX), dtype=np.float64)
    for c in range(3):
        r = np.corrcoef(seen[..., c].ravel(), ref[..., c].ravel())[0, 1]
        assert r > 0.95, f"channel {c}: correlation {r:.3f} with the engine's render"


def test_plane_renders_the_fit_in_material_preview(eevee):
    crop = plane_on_screen(eevee, "material_preview_final", need(eevee, "rectangle"))
    assert_shows_the_fit(crop, f"{eevee['out']}/fit.json")


@pytest.mark.parametrize("count", sessions.LARGE_COUNTS)
def test_large_fits_show_in_material_preview_without_crashing(eevee, count):
    entry = need(eevee, "large")[str(count)]
    assert entry["result"] == ["FINISHED"] and entry["plane"], entry
    # Blender 4.3.2 has no shader loops, and unrolled EEVEE code past ~160 wavelets can crash it: a baked image
    assert entry["path"] == "BAKED", entry["note"]
    assert "EEVEE" in entry["note"] and "baked image" in entry["note"], entry["note"]
    crop = plane_on_screen(eevee, f"large{count}_final", entry["rectangle"])
    fit_path = dict(map(tuple, eevee["params"]["large"]))[count]
    assert_shows_the_fit(crop, fit_path)
