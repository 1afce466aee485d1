"""Operators on the fit stored in the .blend: rebuild its node group, export it as JSON or .txt."""

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

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


class IMFIT_OT_import_fit(bpy.types.Operator, ImportHelper):
    bl_idname = "imfit.import_fit"
    bl_label = "Import Gabor Fit"
    bl_description = (
        "Bring in a fit made with `imfit fit` (.json) or torch-imfit (.txt): its stored fit, node group and "
        "plane, as after Fit"
    )
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json;*.txt", options={"HIDDEN"})
    width: IntProperty(
        name="Width",
        min=0,
        max=65536,
        subtype="PIXEL",
        description="torch-imfit .txt only: width of the image the fit was trained on (a .txt stores no size)",
    )
    height: IntProperty(
        name="Height",
        min=0,
        max=65536,
        subtype="PIXEL",
        description="torch-imfit .txt only: height of the image the fit was trained on",
    )
    name: StringProperty(
        name="Name",
        description="Name the fit is kept under, as an image's would be (default: the one the file records, "
        "else the file's name)",
    )
    create_plane: BoolProperty(
        name="Create Plane", default=True, description="Add a plane with a material that renders the fit"
    )

    def execute(self, context):
        try:
            image_name, group, _, wavelets = stored.import_fit(
                context.scene, self.filepath, self.width, self.height, self.name, self.create_plane
            )
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"ImFit: imported {len(wavelets)} wavelets as {group.name} ({image_name})")
        return {"FINISHED"}


classes = (IMFIT_OT_rebuild, IMFIT_OT_export_json, IMFIT_OT_export_txt, IMFIT_OT_import_fit)
