"""Helpers for tests that drive real Blender (bpy): import the add-on, render a material, compare.

Renders are real Cycles / EEVEE renders of a plane filling an orthographic camera, so that
pixel (i, j) (row 0 = top) samples the plane at UV ((i + .5) / W, 1 - (j + .5) / H): the
same pixel centres as ``imfit_engine.render``.  The image is saved as a 16-bit PNG through
the scene's view transform (display space) and read back raw, so a test compares what a
user would see against ``to_image(render_reference(...))``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "gabor_imfit"


def package_module(dotted: str):
    """Import ``<dotted>`` (e.g. ``addon.node_tree``) as the extension would: inside a package
    rooted at the repo, so relative imports resolve as in Blender.

    The package object is made here instead of executing the repo's ``__init__.py`` (the
    add-on's registration), so the node code can be tested on its own.  Modules imported this
    way are copies of the plain ``imfit_engine`` ones: catch the package's ``ImfitError``.
    """
    if PACKAGE not in sys.modules:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = [str(REPO)]
        sys.modules[PACKAGE] = pkg
    return importlib.import_module(f"{PACKAGE}.{dotted}")


def addon_module(name: str):
    return package_module(f"addon.{name}")


def bpy_python_path() -> None:
    """bpy's own site-packages on sys.path, as Blender has them (``tools/dev_extension.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import dev_extension

    dev_extension.bpy_python_path()


def fresh_scene():
    """A factory-fresh, empty file; returns its scene."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def realistic_params(n: int, aspect: float, height_px: int, seed: int = 0) -> np.ndarray:
    """A field shaped like a fit's: (n, 12) float32 canonical columns.

    Sizes run from a couple of pixels to a fraction of the image, wavelengths stay above
    2.5 px and between 2 and 32 sigmas (Zucker's constraints), amplitudes are 0..0.5 and
    the sum is partly clipped by the [-1, 1] mapping.
    """
    rng = np.random.default_rng(seed)
    px = 1.0 / height_px
    p = np.empty((n, 12), np.float64)
    p[:, 0] = rng.uniform(-0.05, 1.05, n)
    p[:, 1] = rng.uniform(-0.05, 1.05, n)
    p[:, 2] = rng.uniform(-math.pi, math.pi, n)
    sigma = np.exp(rng.uniform(math.log(1.5 * px), math.log(0.2), n))
    p[:, 3] = sigma
    p[:, 4] = sigma * rng.uniform(1.0, 4.0, n)
    p[:, 5] = np.maximum(sigma * rng.uniform(2.0, 12.0, n), 2.5 * px)
    p[:, 6:9] = rng.uniform(-math.pi, math.pi, (n, 3))
    p[:, 9:12] = rng.uniform(0.0, 0.5, (n, 3))
    # many wavelets overlap: shrink amplitudes like a fit does, so the sum is only partly clipped
    p[:, 9:12] *= min(1.0, 4.0 / math.sqrt(n)) ** 0.5
    return p.astype(np.float32)


def reference_signed(params: np.ndarray, aspect: float, width: int, height: int) -> np.ndarray:
    """The engine's signed sum of a field, (H, W, 3), float64 maths."""
    import torch

    from imfit_engine.core.render import render_reference

    with torch.no_grad():
        return render_reference(torch.as_tensor(params, dtype=torch.float64), aspect, width, height).numpy()


def reference_display(params: np.ndarray, aspect: float, width: int, height: int) -> np.ndarray:
    """The engine's image of a field, (H, W, 3) in [0, 1]: ``to_image`` of the signed sum."""
    import torch

    from imfit_engine.core.render import to_image

    return to_image(torch.from_numpy(reference_signed(params, aspect, width, height))).numpy()


def read_pixels(path) -> np.ndarray:
    """An image file's stored values, (H, W, 4) float32 in [0, 1], row 0 = top (no colour management)."""
    import bpy

    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        img.colorspace_settings.name = "Non-Color"
        w, h = img.size
        buf = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(buf)
        return buf.reshape(h, w, 4)[::-1]
    finally:
        bpy.data.images.remove(img)


def read_png16(path) -> np.ndarray:
    """A 16-bit PNG's stored values, (H, W, 3) in [0, 1], row 0 = top (no colour management)."""
    return read_pixels(path)[..., :3].astype(np.float64)


def render_display(scene, frame: int | None = None) -> tuple[np.ndarray, float]:
    """Render the scene's camera to a display-space array (H, W, 3); returns it and seconds taken."""
    import bpy

    if frame is not None:
        scene.frame_set(frame)
    with tempfile.TemporaryDirectory(prefix="imfit_render_") as tmp:
        path = os.path.join(tmp, "render.png")
        scene.render.filepath = path
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=True, scene=scene.name)
        seconds = time.perf_counter() - t0
        return read_png16(path), seconds


def preview_scene(
    node_tree,
    params,
    width: int,
    height: int,
    engine: str = "CYCLES",
    name: str = "test",
    backend: str | None = None,
    path: str | None = None,
):
    """A fresh scene showing ``params`` on the add-on's preview plane, framed exactly; ``path`` forces the
    group's path (``nodes.paths``: NODES, LOOP, OSL, BAKED), else the add-on picks it for ``engine``.

    Returns (scene, group, plane object, build seconds).
    """
    scene = fresh_scene()
    if engine.startswith("BLENDER_EEVEE"):
        engine = addon_module("nodes.scene").eevee_engine()  # "BLENDER_EEVEE_NEXT" on 4.2-4.5
    scene.render.engine = engine
    aspect = width / height
    t0 = time.perf_counter()
    group = node_tree.build_wavelet_group(
        name,
        params,
        aspect,
        backend=backend or node_tree.backend_for_engine(engine),
        size=(width, height),
        path=path,
        scene=scene,
    )
    seconds = time.perf_counter() - t0
    plane = addon_module("nodes.plane").create_preview_plane(scene, group, width, height, name)
    scene_setup = addon_module("nodes.scene")
    scene_setup.add_camera_framing(scene, width, height, addon_module("nodes.plane").PLANE_HEIGHT)
    scene_setup.setup_render(scene, engine, width, height)
    return scene, group, plane, seconds


def max_error_255(image, reference) -> float:
    """Largest per-channel difference, in 1/255 steps."""
    return float(np.abs(np.asarray(image, np.float64) - np.asarray(reference, np.float64)).max() * 255.0)


def texel_filtered_error_255(image, reference) -> float:
    """Largest distance, in 1/255 steps, of each pixel from the range its 3x3 neighbourhood of ``reference``
    spans: 0 for an exact image and for one whose texture filter blends neighbouring texels (EEVEE 4.2-4.5
    shows a texture at 1:1 blended by about a texel, with any interpolation but Closest); a misplaced, wrong
    or missing image still fails."""
    ref = np.asarray(reference, np.float64)
    padded = np.pad(ref, ((1, 1), (1, 1), (0, 0)), mode="edge")
    windows = [padded[dy : dy + ref.shape[0], dx : dx + ref.shape[1]] for dy in range(3) for dx in range(3)]
    low, high = np.min(windows, axis=0), np.max(windows, axis=0)
    value = np.asarray(image, np.float64)
    return float(np.maximum(low - value, value - high).clip(min=0).max() * 255.0)


class quiet_stdout:
    """Silence Blender's own prints (``Saved: ...``) at the file-descriptor level."""

    def __enter__(self):
        sys.stdout.flush()
        self._saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)


def fit_like_params(n: int, aspect: float, seed: int = 0) -> np.ndarray:
    """A field sized like a real fit of n wavelets (a Kodak photo's 4096-wavelet fit, scaled): sizes shrink as
    1/sqrt(n), so a point is covered by about the same number of wavelets (~60) at any n, as in real fits;
    (n, 12) float32 canonical columns."""
    rng = np.random.default_rng(seed)
    shrink = math.sqrt(4096.0 / n)
    p = np.empty((n, 12), np.float64)
    p[:, 0] = rng.uniform(-0.02, 1.02, n)
    p[:, 1] = rng.uniform(-0.02, 1.02, n)
    p[:, 2] = rng.uniform(-math.pi, math.pi, n)
    sigma = np.exp(rng.uniform(math.log(0.0015), math.log(0.05), n)) * shrink
    p[:, 3] = sigma
    p[:, 4] = sigma * np.exp(rng.uniform(math.log(0.3), math.log(6.0), n))
    p[:, 5] = np.maximum(sigma * rng.uniform(2.0, 8.0, n), 0.005)
    p[:, 6:9] = rng.uniform(-math.pi, math.pi, (n, 3))
    p[:, 9:12] = rng.uniform(0.0, 0.5, (n, 3)) * rng.uniform(0.2, 1.0, (n, 1))
    return p.astype(np.float32)


def engine_display(params, aspect: float, width: int, height: int, controls=None) -> np.ndarray:
    """The engine's own image of a field (its tiled production renderer, the one bakes use), (H, W, 3) in
    [0, 1]; ``controls`` (``resynth.Controls``) as the node group's global controls would set them."""
    import torch

    from imfit_engine.core import resynth
    from imfit_engine.core.render import render

    controls = controls or resynth.DEFAULT_CONTROLS
    p = torch.as_tensor(resynth.controlled(params, controls), dtype=torch.float64)
    with torch.no_grad():
        signed = render(p, aspect, width, height).numpy()
    return resynth.to_display(resynth.apply_gain(signed, controls))
