"""Fit, Refine and Cancel.

Invoked from the UI a fit is modal: a timer polls the worker, Esc or Cancel stops it (the best
result so far is kept) and Blender stays responsive.  Executed (scripts, background mode) it
runs to the end before returning.  No 'REGISTER': the redo panel would re-run a whole fit.
"""
import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import fit_job, interpreter, sequence_fit, stored_fit
from .engine import ImfitError
from .engine import sequence as frames_engine
from .polling import PollingOperator
from .preferences import get_preferences


def image_in_editor(context):
    """The image of the current Image Editor, else of any Image Editor in the window."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None:
            return area.spaces.active.image
    return None


def source_image(context, name: str = ""):
    """The image to fit: by name, else the panel's choice, else the one in the Image Editor."""
    if name:
        image = bpy.data.images.get(name)
        if image is None:
            raise ImfitError(f"there is no image named {name!r} in this file: open it first (Image > Open)")
        return image
    image = context.scene.imfit.image or image_in_editor(context)
    if image is None:
        raise ImfitError("no image to fit: choose one in the ImFit tab of the sidebar, or open one in the "
                         "Image Editor")
    return image


class _FitOperator(PollingOperator):
    image: StringProperty(name="Image", description="Name of the image to fit (default: the panel's image)")
    num_wavelets: IntProperty(name="Wavelets", min=1, default=256, description="Number of Gabor wavelets")
    size: IntProperty(name="Size", min=8, default=256, description="Longest side of the training image, pixels")
    iterations: IntProperty(name="Iterations", min=1, default=200, description="Iterations at full size")
    create_plane: BoolProperty(name="Create Plane", default=True,
                               description="Add a plane with a material that renders the fit")

    refine = False
    _job = None

    @classmethod
    def poll(cls, context):
        job = fit_job.active_job()
        if job is not None and job.running:
            cls.poll_message_set("A fit is running")
            return False
        return context.scene is not None

    def _settings_from(self, context) -> dict:
        """Values set on the operator (scripts) win over the panel's settings."""
        return {key: getattr(self, key) for key in ("num_wavelets", "size", "iterations")
                if self.properties.is_property_set(key)}

    def _make_job(self, context) -> fit_job.FitJob:
        settings = context.scene.imfit
        image = source_image(context, self.image)
        overrides = self._settings_from(context)
        init_json = None
        if self.refine:
            stored = stored_fit.load(image.name)  # validates the text before a worker starts
            init_json = stored_fit.find_text(image.name).as_string()
            # continue at full size; asking for more wavelets than stored adds new ones
            overrides["num_wavelets"] = max(overrides.get("num_wavelets", settings.num_wavelets), len(stored))
            overrides["rescales"] = 0
        create_plane = self.create_plane if self.properties.is_property_set("create_plane") else settings.create_plane
        python, env = interpreter.engine_python(get_preferences(context))
        return fit_job.FitJob(context.scene, image, settings.weight, settings.fit_config(context, **overrides),
                              python=python, env=env, create_plane=create_plane and not self.refine,
                              init_json=init_json).start()

    def _start(self, context):
        """The started job, or None after reporting why not."""
        try:
            return self._make_job(context)
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
        except OSError as e:  # writing the worker's input files
            self.report({"ERROR"}, f"ImFit: cannot prepare the fit's files: {e}. Check the temporary folder "
                                   "(Preferences > File Paths) and free disk space")
        return None

    def poll_job(self, context, timeout):
        job = self._job
        if job.tick(timeout):
            return None
        if job.error:
            self.report({"ERROR"}, f"ImFit: {job.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, job.summary())
        return {"FINISHED"}

    def execute(self, context):  # scripts and background mode: return when the fit is done
        self._job = self._start(context)
        return self.run_polled(context, blocking=True) if self._job else {"CANCELLED"}

    def invoke(self, context, event):
        self._job = self._start(context)
        return self.run_polled(context, blocking=bpy.app.background) if self._job else {"CANCELLED"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.request_stop()  # the worker still sends its best result
            return {"RUNNING_MODAL"}
        return super().modal(context, event)


class IMFIT_OT_fit(_FitOperator, bpy.types.Operator):
    bl_idname = "imfit.fit"
    bl_label = "Fit Gabor Wavelets"
    bl_description = ("Fit the image with a sum of Gabor wavelets in a background process, then build a "
                      "shader node group (and a plane) that renders it")
    bl_options = {"UNDO"}


class IMFIT_OT_refine(_FitOperator, bpy.types.Operator):
    bl_idname = "imfit.refine"
    bl_label = "Refine Gabor Fit"
    bl_description = "Continue training from the fit stored in this file (warm start at full size)"
    bl_options = {"UNDO"}

    refine = True


class IMFIT_OT_fit_sequence(_FitOperator, bpy.types.Operator):
    bl_idname = "imfit.fit_sequence"
    bl_label = "Fit Gabor Sequence"
    bl_description = ("Fit every frame of an image sequence or movie (each from the previous frame's fit) and key "
                      "one node group at every frame, so playback re-synthesises the sequence")
    bl_options = {"UNDO"}

    keyframe_interval: IntProperty(name="Keyframe Interval", min=1, default=10,
                                   description="A fresh fit every this many frames; the others start from the "
                                               "previous frame")
    interpolation: EnumProperty(name="Interpolation", items=sequence_fit.INTERPOLATIONS, default="LINEAR",
                                description="How wavelets move between the keyed frames")
    frames: StringProperty(name="Frames", description="Scene frames to fit, e.g. 1-48 (default: all the image shows)")

    def _make_job(self, context):
        settings = context.scene.imfit
        image = source_image(context, self.image)
        sequence_settings = {key: getattr(self, key) if self.properties.is_property_set(key) else getattr(settings, key)
                             for key in ("keyframe_interval", "interpolation", "create_plane")}
        python, env = interpreter.engine_python(get_preferences(context))
        return sequence_fit.SequenceJob(
            context.scene, image, settings.weight, settings.fit_config(context, **self._settings_from(context)),
            python=python, env=env, select=frames_engine.parse_range(self.frames) if self.frames else None,
            **sequence_settings).start()


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
