"""Operators on the fit stored in the .blend: rebuild its node group, export it as JSON or .txt."""

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper

from ..engine import ImfitError, atomic, formats
from ..jobs.inputs import source_image
from ..nodes import stored


class StoredFitOperator:
    """Mixin: ``run(context, image_name, wavelets)`` on the fit stored for the image; errors become reports."""

    image: StringProperty(name="Image", description="Name of the fitted image (default: the panel's image)")

    def execute(self, context):
        try:
            image_name = self.image or source_image(context).name
            message = self.run(context, image_name, stored.load(image_name))
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class IMFIT_OT_rebuild(StoredFitOperator, bpy.types.Operator):
    bl_idname = "imfit.rebuild"
    bl_label = "Rebuild Gabor Nodes"
    bl_description = "Re-create the wavelet node group from the fit stored in this file"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, image_name, wavelets) -> str:
        group, _ = stored.build_nodes(context.scene, image_name, wavelets, create_plane=False)
        return f"ImFit: rebuilt {group.name} ({len(wavelets)} wavelets)"


class ExportOperator(StoredFitOperator, ExportHelper):
    """Mixin: an export of the stored fit through the file browser (named after the image)."""

    def invoke(self, context, event):
        try:
            self.image = self.image or source_image(context).name
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
            return {"CANCELLED"}
        self.filepath = bpy.path.ensure_ext(bpy.path.clean_name(self.image.rsplit(".", 1)[0]), self.filename_ext)
        return super().invoke(context, event)


class IMFIT_OT_export_json(ExportOperator, bpy.types.Operator):
    bl_idname = "imfit.export_json"
    bl_label = "Export Gabor Fit (.json)"
    bl_description = "Save the stored fit as the canonical ImFit JSON file"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def run(self, context, image_name, wavelets) -> str:
        # the stored text is already canonical JSON: write it as it is
        atomic.write_atomic(self.filepath, stored.find_text(image_name).as_string())
        return f"ImFit: saved {len(wavelets)} wavelets to {self.filepath}"


class IMFIT_OT_export_txt(ExportOperator, bpy.types.Operator):
    bl_idname = "imfit.export_txt"
    bl_label = "Export Gabor Fit (torch-imfit .txt)"
    bl_description = "Save the stored fit as torch-imfit's .txt (12 numbers per wavelet, for its shaders)"
    filename_ext = ".txt"
    filter_glob: StringProperty(default="*.txt", options={"HIDDEN"})

    def run(self, context, image_name, wavelets) -> str:
        metrics = wavelets.meta.get("metrics", {})
        # torch-imfit's coordinates refer to its training raster, as the CLI writes them
        formats.save_txt(wavelets, self.filepath, metrics.get("train_width"), metrics.get("train_height"))
        return f"ImFit: saved {len(wavelets)} wavelets to {self.filepath} (torch-imfit format)"


classes = (IMFIT_OT_rebuild, IMFIT_OT_export_json, IMFIT_OT_export_txt)
