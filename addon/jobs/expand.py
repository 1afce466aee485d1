"""Texture expansion in the fit worker (``imfit_engine.expand_job``): the same process, progress, preview and
cancel as a fit (``jobs.fit.FitJob``).

The result is a new packed image ``<image> x<scale>``; with wavelets it also gets a stored fit and a node
group, as a fitted image does.  The generator is cached per image and preset in the extension's user folder
(``cache_path``): a second expansion of the same pixels reuses it, a stopped training resumes, and an image
whose pixels changed trains anew (the worker compares the checkpoint's fingerprint of the pixels).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from ..engine import ADDON_ID, EXTENSION_PACKAGE, ImfitError, formats
from ..nodes import stored
from . import fit as fit_job
from .inputs import safe_stem

EXPANDED_SUFFIX = " x{scale}"


def cache_folder() -> str:
    """Where generators are kept: the extension's user folder, else the system's temporary folder."""
    if EXTENSION_PACKAGE.startswith("bl_ext."):
        try:
            return bpy.utils.extension_path_user(ADDON_ID, path="expand", create=True)
        except (ValueError, RuntimeError):
            pass
    folder = os.path.join(tempfile.gettempdir(), "gabor-imfit-expand")
    os.makedirs(folder, exist_ok=True)
    return folder


def cache_path(image_name: str, preset: str) -> str:
    safe = safe_stem(image_name, "image")
    return os.path.join(cache_folder(), f"{safe[:80]}-{preset}.pt")


def expanded_name(image_name: str, scale: int) -> str:
    return os.path.splitext(image_name)[0] + EXPANDED_SUFFIX.format(scale=scale)


class ExpandJob(fit_job.FitJob):
    """``config`` is the wavelet fit's ``FitConfig`` dict, or None for the image alone."""

    kind = "expand"

    def __init__(
        self,
        scene,
        image,
        config: dict | None,
        *,
        preset: str,
        scale: int,
        overrides: dict,
        checkpoint: str | None,
        match: bool = False,
        **kwargs,
    ):
        self.preset, self.scale, self.match = preset, int(scale), bool(match)
        self.overrides, self.checkpoint = dict(overrides), checkpoint
        self.phase, self.losses = "train", {}
        super().__init__(scene, image, None, config, **kwargs)

    def _inputs(self, image, weight, init_json) -> dict:
        fields = super()._inputs(image, None, None)
        fields["expand"] = {
            "preset": self.preset,
            "scale": self.scale,
            "overrides": self.overrides,
            "checkpoint": self.checkpoint,
            "match": self.match,
        }
        return fields

    def progress_text(self) -> str:
        if self.phase == "fit":
            return f"Fitting wavelets {self.iteration}/{self.total}, {self.psnr:.2f} dB"
        l1 = self.losses.get("l1")
        loss = f", L1 {l1:.2f}" if l1 is not None else ""
        return f"Training the expansion {self.iteration}/{self.total}{loss}"

    def _on_progress(self, m: dict) -> None:
        super()._on_progress(m)
        self.phase, self.losses = m.get("phase", "train"), m.get("losses") or {}

    def _apply_result(self, m: dict) -> None:
        if not os.path.isfile(m["path"]):
            raise ImfitError(f"the engine wrote no image at {m['path']}")
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise ImfitError(f"scene {self.scene_name} was deleted during the expansion; the result is lost")
        image = _replace_image(m["path"], expanded_name(self.image_name, m["scale"]))
        group = plane = None
        wavelets = 0
        if m.get("fit"):
            json_text = Path(m["fit"]).read_text(encoding="utf-8")
            ws = formats.parse_json_text(json_text, m["fit"])
            stored.store(image.name, json_text)
            group, plane = stored.build_nodes(scene, image.name, ws, self.create_plane)
            wavelets = len(ws)
            settings = scene.imfit
            settings.result_image = image.name
            settings.result_psnr, settings.result_seconds = m["psnr"], m["seconds"]
            settings.result_wavelets, settings.result_stopped = wavelets, bool(m["stopped"])
        preview = m.get("preview") if m.get("preview") and os.path.isfile(m["preview"]) else m["path"]
        fit_job.show_preview(preview, pack=True)
        expand_settings = scene.imfit_expand
        expand_settings.result_image = image.name
        expand_settings.result_reused = bool(m["reused"])
        self.result = dict(
            m,
            image=image.name,
            group=group.name if group else None,
            plane=plane.name if plane else None,
            wavelets=wavelets,
        )

    def summary(self) -> str:
        r = self.result
        how = (
            "reused the generator trained for it" if r["reused"] else f"generator trained {r['iterations']} iterations"
        )
        fit = f", {r['wavelets']} wavelets at PSNR {r['psnr']:.2f} dB" if r.get("wavelets") else ""
        stopped = f" ({r.get('message') or 'stopped early'})" if r.get("stopped") else ""
        return (
            f"ImFit: {self.image_name} expanded {r['scale']}x to image {r['image']!r} "
            f"({r['width']}x{r['height']}); {how}{fit}, {r['seconds']:.1f} s{stopped}"
        )


def _replace_image(path: str, name: str):
    """A packed image ``name`` with the pixels of ``path``; an older one of that name is replaced in place
    for its users (materials keep working)."""
    image = bpy.data.images.load(path, check_existing=False)
    image.pack()  # the worker's folder is removed when the job ends
    old = bpy.data.images.get(name)
    if old is not None and old != image:
        old.user_remap(image)
        bpy.data.images.remove(old)
    image.name = name
    return image
