"""Style transfer in Blender: "Stylize" (a new image) and "Fit with Style" (a node group).

Both run in the fit worker (``imfit_engine.style``) through ``jobs.style``, so progress, live preview,
Esc / Cancel and background mode behave as for a fit; their settings are ``scene.imfit_style`` (``props``).
"""

import bpy
from bpy.props import IntProperty, StringProperty

from ..engine import ImfitError
from ..jobs import interpreter
from ..jobs import style as style_job
from ..jobs.inputs import source_image
from ..ui.pref import get_preferences
from .fit import FitOperator


def _style_image(context, name: str):
    if name:
        image = bpy.data.images.get(name)
        if image is None:
            raise ImfitError(f"there is no image named {name!r} to take the style from: open it first")
        return image
    image = context.scene.imfit_style.style
    if image is None:
        raise ImfitError("no style image: choose one in the Style panel of the ImFit tab")
    return image


class _StyleOperator(FitOperator):
    style: StringProperty(name="Style", description="Name of the style image (default: the Style panel's)")
    steps: IntProperty(name="Steps", min=0, default=200, description="Style steps (default: the panel's)")
    job_class = None

    def _make_job(self, context):
        settings, style_settings = context.scene.imfit, context.scene.imfit_style
        image = source_image(context, self.image)
        style = _style_image(context, self.style)
        steps_name = "steps" if self.job_class is style_job.StylizeJob else "fit_steps"
        steps = self._value("steps", style_settings, steps_name)
        create_plane = self._value("create_plane", settings)
        python, env = interpreter.engine_python(get_preferences(context))
        return self.job_class(
            context.scene,
            image,
            None,
            settings.fit_config(context, **self._settings_from(context)),
            style_image=style,
            style_config=style_settings.style_config(steps),
            python=python,
            env=env,
            create_plane=create_plane,
        ).start()


class IMFIT_OT_stylize(_StyleOperator, bpy.types.Operator):
    bl_idname = "imfit.stylize"
    bl_label = "Stylize Image"
    bl_description = (
        "Paint the image in the style of the style image (neural style transfer, in a background "
        "process); the result is a new image"
    )
    bl_options = {"UNDO"}
    job_class = style_job.StylizeJob


class IMFIT_OT_fit_style(_StyleOperator, bpy.types.Operator):
    bl_idname = "imfit.fit_style"
    bl_label = "Fit Gabor Wavelets with Style"
    bl_description = (
        "Fit the image with Gabor wavelets, then pull the wavelets toward the style image's "
        "textures (content + style losses); the result is a shader node group"
    )
    bl_options = {"UNDO"}
    job_class = style_job.StyleFitJob


classes = (IMFIT_OT_stylize, IMFIT_OT_fit_style)
