"""Bake, Use Baked, and the path choice of a fit's node group.

Bake renders the group's field with the engine in the worker (``jobs.bake.BakeJob``): modal in the UI with
progress and Esc / Cancel, blocking in scripts and background mode, as a fit is.  Use Baked switches the
group between its baked image and the automatic path; Set Path chooses any path (``nodes.paths``).
"""

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..engine import ImfitError
from ..jobs import bake as bake_job
from ..jobs import interpreter
from ..jobs.inputs import source_image
from ..nodes import baked, paths, stored
from ..nodes import group as node_tree
from ..ui.pref import get_preferences
from .polling import JobOperator


def fitted_group(context, image_name: str = ""):
    """(image name, node group) of the panel's fitted image, or an ImfitError saying what to do."""
    name = image_name or source_image(context).name
    group = stored.find_group(name)
    if group is None:
        raise ImfitError(f"image {name} has no ImFit node group: run Fit, Import or Rebuild first")
    return name, group


class IMFIT_OT_bake(JobOperator, bpy.types.Operator):
    bl_idname = "imfit.bake"
    bl_label = "Bake Gabor Field"
    bl_description = (
        "Render the fit's field with the engine (in a background process) to an image at the chosen size, "
        "or, for an animated group, to an image sequence following its keyframes and controls; the group "
        "then shows it. Baking again keeps frames already baked"
    )
    bl_options = {"UNDO"}

    image: StringProperty(name="Image", description="Name of the fitted image (default: the panel's image)")
    size: IntProperty(
        name="Size",
        min=0,
        max=paths.BAKE_MAX,
        subtype="PIXEL",
        description="Longest side in pixels (0: the fitted image's; default: the panel's)",
    )
    frames: StringProperty(name="Frames", description="Frames to bake, e.g. 1-48 (default: the panel's)")
    folder: StringProperty(name="Folder", subtype="DIR_PATH", description="Output folder (default: the panel's)")

    busy_message = "A fit or bake is running"
    files_error = "cannot write the bake's files: {e}. Check the bake folder and free disk space"

    def _make_job(self, context):
        _, group = fitted_group(context, self.image)
        settings = context.scene.imfit
        size = baked.fitted_size(group, self._value("size", settings, "bake_size"))
        frames = bake_job.frames_to_bake(context.scene, group, self._value("frames", settings, "bake_frames"))
        folder = bake_job.bake_folder(self._value("folder", settings, "bake_folder"), group.name)
        python, env = interpreter.engine_python(get_preferences(context))
        return bake_job.BakeJob(
            context.scene, group, size=size, frames=frames, folder=folder, python=python, env=env
        ).start()


class IMFIT_OT_use_baked(bpy.types.Operator):
    bl_idname = "imfit.use_baked"
    bl_label = "Use Baked Image"
    bl_description = "Show the baked image in the fit's node group, or go back to the automatic path"
    bl_options = {"REGISTER", "UNDO"}

    image: StringProperty(name="Image", description="Name of the fitted image (default: the panel's image)")

    def execute(self, context):
        try:
            _, group = fitted_group(context, self.image)
            to_baked = group.get(node_tree.OVERRIDE_KEY, "AUTO") != "BAKED"
            if to_baked and bpy.data.images.get(baked.bake_name(group)) is None:
                raise ImfitError(f"{group.name} has no baked image yet: press Bake first")
            node_tree.set_override(group, "BAKED" if to_baked else "AUTO", context.scene)
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"ImFit: {group.name}: {node_tree.path_note(group)}")
        return {"FINISHED"}


class IMFIT_OT_set_path(bpy.types.Operator):
    bl_idname = "imfit.set_path"
    bl_label = "Set Gabor Path"
    bl_description = "How the fit's node group renders: automatic (the fastest exact path here), or one path"
    bl_options = {"REGISTER", "UNDO"}

    image: StringProperty(name="Image", description="Name of the fitted image (default: the panel's image)")
    path: EnumProperty(name="Path", items=paths.OVERRIDE_ITEMS, default="AUTO")

    def execute(self, context):
        try:
            _, group = fitted_group(context, self.image)
            node_tree.set_override(group, self.path, context.scene)
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"ImFit: {group.name}: {node_tree.path_note(group)}")
        return {"FINISHED"}


classes = (IMFIT_OT_bake, IMFIT_OT_use_baked, IMFIT_OT_set_path)
