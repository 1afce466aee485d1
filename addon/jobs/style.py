"""Style jobs: the same worker, progress, preview and cancel as a fit (``jobs.fit.FitJob``), with a style image.

``StyleFitJob`` is a style-guided fit: its result is a fit and is applied as one (stored text, node group).
``StylizeJob`` is neural style transfer: its result is a PNG, loaded into a new packed image.
"""

from __future__ import annotations

import os

import bpy

from ..engine import ImfitError
from . import fit as fit_job
from . import inputs

STYLIZED_SUFFIX = " Stylized"


class StyleFitJob(fit_job.FitJob):
    kind = "fit_style"

    def __init__(self, scene, image, weight, config: dict, *, style_image, style_config: dict, **kwargs):
        if style_image is None:
            raise ImfitError("no style image: choose one in the Style panel of the ImFit tab")
        self.style_name = style_image.name
        self._style_image, self.style_config = style_image, dict(style_config)
        super().__init__(scene, image, weight, config, **kwargs)

    def _inputs(self, image, weight, init_json) -> dict:
        fields = super()._inputs(image, weight, init_json)
        folder = os.path.join(self.folder, "style")  # its own folder: input files have fixed names
        os.makedirs(folder, exist_ok=True)
        fields.update(style=inputs.source_input(self._style_image, folder), style_config=self.style_config)
        self._style_image = None  # no ID reference kept past the set-up
        return fields

    def summary(self) -> str:
        return super().summary() + f", in the style of {self.style_name}"


class StylizeJob(StyleFitJob):
    kind = "stylize"

    def progress_text(self) -> str:
        return f"Stylizing, step {self.iteration}/{self.total}"

    def _apply_result(self, m: dict) -> None:
        if not os.path.isfile(m["path"]):
            raise ImfitError(f"the engine wrote no image at {m['path']}")
        if bpy.data.scenes.get(self.scene_name) is None:
            raise ImfitError(f"scene {self.scene_name} was deleted while stylizing; the result is lost")
        image = bpy.data.images.load(m["path"], check_existing=False)
        image.name = f"{os.path.splitext(self.image_name)[0]}{STYLIZED_SUFFIX}"
        image.pack()  # the worker's folder is removed when the job ends
        fit_job.show_preview(m["path"], pack=True)
        bpy.data.scenes[self.scene_name].imfit_style.result_image = image.name
        self.result = dict(m, image=image.name)

    def summary(self) -> str:
        r = self.result
        stopped = f" ({r.get('message') or 'stopped early'})" if r.get("stopped") else ""
        return (
            f"ImFit: {self.image_name} stylized after {self.style_name} as image {r['image']!r} "
            f"({r['width']}x{r['height']}, {r['iterations']} steps, {r['seconds']:.1f} s){stopped}"
        )
