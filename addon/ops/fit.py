"""Fit, Refine and Cancel.

Invoked from the UI a fit is modal: a timer polls the worker, Esc or Cancel stops it (the best
result so far is kept) and Blender stays responsive.  Executed (scripts, background mode) it
runs to the end before returning.  No 'REGISTER': the redo panel would re-run a whole fit.
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..engine import fit_config
from ..engine import sequence as frames_engine
from ..jobs import fit as fit_job
from ..jobs import interpreter
from ..jobs import sequence as sequence_job
from ..jobs.inputs import source_image
from ..nodes import stored
from ..nodes.keyframes import INTERPOLATIONS
from ..ui.pref import get_preferences
from .polling import JobOperator

FIT, LIMITS = fit_config.DEFAULTS, fit_config.LIMITS


class FitOperator(JobOperator):
    """What the fitting operators share (Fit, Refine, Sequence, Style, Expand): the image and the settings a
    script may override (the job itself is JobOperator's)."""

    image: StringProperty(name="Image", description="Name of the image to fit (default: the panel's image)")
    num_wavelets: IntProperty(
        name="Wavelets",
        min=LIMITS["num_wavelets"][0],
        default=FIT.num_wavelets,
        description="Number of Gabor wavelets (default: the panel's)",
    )
    size: IntProperty(
        name="Size",
        min=LIMITS["size"][0],
        max=LIMITS["size"][1],
        default=FIT.size,
        description="Longest side of the training image, pixels (default: the panel's)",
    )
    iterations: IntProperty(
        name="Iterations",
        min=LIMITS["iterations"][0],
        default=FIT.iterations,
        description="Iterations at full size (default: the panel's)",
    )
    create_plane: BoolProperty(
        name="Create Plane", default=True, description="Add a plane with a material that renders the fit"
    )

    refine = False

    def _settings_from(self, context) -> dict:
        """Values set on the operator (scripts) win over the panel's settings."""
        return {
            key: getattr(self, key)
            for key in ("num_wavelets", "size", "iterations")
            if self.properties.is_property_set(key)
        }

    def _make_job(self, context) -> fit_job.FitJob:
        settings = context.scene.imfit
        image = source_image(context, self.image)
        overrides = self._settings_from(context)
        init_json = None
        if self.refine:
            kept = stored.load(image.name)  # validates the text before a worker starts
            init_json = stored.find_text(image.name).as_string()
            # continue at full size; asking for more wavelets than stored adds new ones
            overrides["num_wavelets"] = max(overrides.get("num_wavelets", settings.num_wavelets), len(kept))
            overrides["rescales"] = 0
        create_plane = self._value("create_plane", settings)
        python, env = interpreter.engine_python(get_preferences(context))
        return fit_job.FitJob(
            context.scene,
            image,
            settings.weight,
            settings.fit_config(context, **overrides),
            python=python,
            env=env,
            create_plane=create_plane and not self.refine,
            init_json=init_json,
        ).start()


class IMFIT_OT_fit(FitOperator, bpy.types.Operator):
    bl_idname = "imfit.fit"
    bl_label = "Fit Gabor Wavelets"
    bl_description = (
        "Fit the image with a sum of Gabor wavelets in a background process, then build a "
        "shader node group (and a plane) that renders it"
    )
    bl_options = {"UNDO"}


class IMFIT_OT_refine(FitOperator, bpy.types.Operator):
    bl_idname = "imfit.refine"
    bl_label = "Refine Gabor Fit"
    bl_description = "Continue training from the fit stored in this file (warm start at full size)"
    bl_options = {"UNDO"}

    refine = True


class IMFIT_OT_fit_sequence(FitOperator, bpy.types.Operator):
    bl_idname = "imfit.fit_sequence"
    bl_label = "Fit Gabor Sequence"
    bl_description = (
        "Fit every frame of an image sequence or movie (each from the previous frame's fit) and key "
        "one node group at every frame, so playback re-synthesises the sequence"
    )
    bl_options = {"UNDO"}

    keyframe_interval: IntProperty(
        name="Keyframe Interval",
        min=1,
        default=frames_engine.DEFAULT_KEYFRAME_INTERVAL,
        description="A fresh fit every this many frames; the others start from the previous frame",
    )
    interpolation: EnumProperty(
        name="Interpolation",
        items=INTERPOLATIONS,
        default="LINEAR",
        description="How wavelets move between the keyed frames",
    )
    frames: StringProperty(name="Frames", description="Scene frames to fit, e.g. 1-48 (default: all the image shows)")

    def _make_job(self, context):
        settings = context.scene.imfit
        image = source_image(context, self.image)
        sequence_settings = {
            key: self._value(key, settings) for key in ("keyframe_interval", "interpolation", "create_plane")
        }
        python, env = interpreter.engine_python(get_preferences(context))
        return sequence_job.SequenceJob(
            context.scene,
            image,
            settings.weight,
            settings.fit_config(context, **self._settings_from(context)),
            python=python,
            env=env,
            select=frames_engine.parse_range(self.frames) if self.frames else None,
            **sequence_settings,
        ).start()


class IMFIT_OT_cancel(bpy.types.Operator):
    bl_idname = "imfit.cancel"
    bl_label = "Cancel Gabor Fit"
    bl_description = "Stop the running fit; the best result so far is kept and built"

    @classmethod
    def poll(cls, context):
        job = fit_job.active_job()
        return job is not None and job.running and not job.stop_requested

    def execute(self, context):
        fit_job.active_job().request_stop()
        self.report({"INFO"}, "ImFit: stopping; the best result so far will be kept")
        return {"FINISHED"}


classes = (IMFIT_OT_fit, IMFIT_OT_refine, IMFIT_OT_fit_sequence, IMFIT_OT_cancel)


def unregister_hook() -> None:
    """End a running fit: no worker may outlive the add-on."""
    fit_job.shutdown_active()
