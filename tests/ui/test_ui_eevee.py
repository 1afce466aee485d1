"""Blender 4.3.2's real window, session "eevee" (drive_eevee.py): a small fit's plane in the 3D Viewport's
Material Preview, compared with the engine's own render of the same fit."""

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
    return sessions.run("eevee", extension_zip)


def test_the_session_ran_without_errors(eevee):
    assert eevee["errors"] == [], eevee.get("traceback")
    assert "Traceback" not in eevee["log"], eevee["log"][-3000:]
    assert eevee["returncode"] == 0


def test_plane_renders_the_fit_in_material_preview(eevee):
    from imfit_engine import load, render_image

    x0, y0, x1, y1 = need(eevee, "rectangle")
    height = eevee["window"][1]
    screen = np.asarray(Image.open(shot(eevee, "material_preview_final")).convert("RGB"), dtype=np.float64) / 255
    crop = screen[height - y1 + 3 : height - y0 - 3, x0 + 3 : x1 - 3]  # the plane, its edges left out
    assert min(crop.shape[:2]) >= 100, crop.shape
    assert crop.mean() > 0.1, "the plane is black"
    magenta = (crop[..., 0] > 0.8) & (crop[..., 1] < 0.2) & (crop[..., 2] > 0.8)
    assert magenta.mean() < 0.01, "the plane is magenta (EEVEE could not compile its material)"
    # what the viewport shows is the fit: per channel, its correlation with the engine's render
    fit = load(f"{eevee['out']}/fit.json")
    ref = np.asarray(render_image(fit, 64, 64), dtype=np.float64)
    seen = np.asarray(Image.fromarray(np.uint8(crop * 255)).resize((64, 64), Image.BILINEAR), dtype=np.float64)
    for c in range(3):
        r = np.corrcoef(seen[..., c].ravel(), ref[..., c].ravel())[0, 1]
        assert r > 0.95, f"channel {c}: correlation {r:.3f} with the engine's render"
