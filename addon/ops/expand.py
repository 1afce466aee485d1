"""Expand Texture: adversarial texture expansion of an image in Blender.

It runs in the fit worker (``imfit_engine.expand``) through ``jobs.expand.ExpandJob``, so progress, live
preview, Esc / Cancel and background mode behave as for a fit; its settings are ``scene.imfit_expand``
(``props``).  The first expansion of an image trains its generator (minutes with the CPU preset); later
ones reuse it from the cache (``jobs.expand.cache_path``).
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from ..jobs import expand as expand_job
from ..jobs import interpreter
from ..jobs.inputs import source_image
from ..props import PRESET_ITEMS, SCALE_ITEMS
from ..ui.pref import get_preferences
from .fit import FitOperator


class IMFIT_OT_expand_texture(FitOperator, bpy.types.Operator):
    bl_idname = "imfit.expand_texture"
    bl_label = "Expand Texture"
    bl_description = (
        "Expand the image to 2x/4x/8x its size with a generator trained on it (adversarial "
        "expansion, in a background process; reuses the generator cached for the image)"
    )
    bl_options = {"UNDO"}

    preset: EnumProperty(
        name="Preset",
        items=PRESET_ITEMS,
        default="cpu-quick",
        description="Networks and training size (default: the Expand panel's)",
    )
    scale: EnumProperty(name="Scale", items=SCALE_ITEMS, default="2", description="Default: the Expand panel's")
    train_iterations: IntProperty(
        name="Training",
        default=0,
        min=0,
        description="Training iterations (0: the preset's; default: the Expand panel's)",
    )
    as_wavelets: BoolProperty(
        name="Fit Wavelets",
        default=False,
        description="Also fit wavelets to the expansion (default: the Expand panel's)",
    )
    match_colors: BoolProperty(
        name="Match Colours",
        default=False,
        description="Match the colour histogram to the image's (default: the Expand panel's)",
    )

    def _make_job(self, context):
        settings, expand = context.scene.imfit, context.scene.imfit_expand
        image = source_image(context, self.image)
        preset, scale = self._value("preset", expand), int(self._value("scale", expand))
        overrides = {"device": settings.engine_device(context)}
        if self._value("train_iterations", expand):
            overrides["iterations"] = self._value("train_iterations", expand)
        config = (
            settings.fit_config(context, **self._settings_from(context)) if self._value("as_wavelets", expand) else None
        )
        create_plane = self._value("create_plane", settings)
        python, env = interpreter.engine_python(get_preferences(context))
        return expand_job.ExpandJob(
            context.scene,
            image,
            config,
            preset=preset,
            scale=scale,
            overrides=overrides,
            checkpoint=expand_job.cache_path(image.name, preset),
            match=self._value("match_colors", expand),
            python=python,
            env=env,
            create_plane=create_plane,
        ).start()


classes = (IMFIT_OT_expand_texture,)
