"""The "ImFit" sidebar tab, the same in the Image Editor, the 3D Viewport and the Shader Editor.

A panel class belongs to one space type, so ``per_editor`` makes one class of each panel for every
editor in ``SPACES``.  Panels only draw: every button is an operator (``ops``) found by its idname.
"""

from __future__ import annotations

import textwrap

import bpy

from ..engine import ImfitError
from ..jobs import fit as fit_job
from ..jobs.inputs import image_in_editor, source_image
from ..jobs.sequence import SOURCES as SEQUENCE_SOURCES
from ..nodes import baked, paths, stored
from ..nodes import group as node_tree

PREVIEW_ICON_SCALE = 8.0
LABEL_CHARS = 40  # outside a region (nothing to measure): a sidebar's width in characters, about
SPACES = {"IMAGE_EDITOR": "IMAGE", "VIEW_3D": "VIEW3D", "NODE_EDITOR": "NODE"}


def draw_progress(layout, job) -> None:
    layout.progress(factor=job.fraction, type="BAR", text=job.status)


def wrap_to_region(text: str) -> list[str]:
    """``text`` in lines that fit the region being drawn, measured in the UI's font (a label that is too long
    is cut short with "..."); by characters where there is no region."""
    region = getattr(bpy.context, "region", None)
    if region is None or region.width < 2:
        return textwrap.wrap(text, LABEL_CHARS)
    import blf

    prefs = bpy.context.preferences
    scale = prefs.system.ui_scale or 1.0
    blf.size(0, prefs.ui_styles[0].widget.points * scale)
    # the column of tabs, the panel's and a box's margins, the icon: in Blender 4.3 a label in a 291 px sidebar
    # shows ~202 px of text, a box's ~8 px less
    room = region.width - 100 * scale
    lines = []
    phrases = text.split(", ")
    for k, phrase in enumerate(phrases):  # whole phrases where they fit: "21.2 s" stays on one line
        phrase += "," if k < len(phrases) - 1 else ""
        for word in [phrase] if blf.dimensions(0, phrase)[0] <= room else phrase.split():
            if lines and blf.dimensions(0, f"{lines[-1]} {word}")[0] <= room:
                lines[-1] += f" {word}"
            else:
                lines.append(word)
    return lines


def label_lines(layout, text: str, icon: str) -> None:
    """A long message as several labels (labels do not wrap), as wide as the region allows."""
    for i, line in enumerate(wrap_to_region(text)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _job_running() -> bool:
    job = fit_job.active_job()
    return job is not None and job.running


class _ImfitPanel:
    bl_region_type = "UI"
    bl_category = "ImFit"

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space.type != "NODE_EDITOR" or space.tree_type == "ShaderNodeTree"


def _stored_image_name(context) -> str | None:
    """The name of the panel's image when it has a stored fit."""
    try:
        image_name = source_image(context).name
    except ImfitError:
        return None
    return image_name if stored.find_text(image_name) is not None else None


class _MainPanel(_ImfitPanel):
    bl_label = "Gabor ImFit"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.imfit
        engine = context.scene.render.engine
        stored_name = _stored_image_name(context)

        col = layout.column(align=True)
        col.template_ID(settings, "image", open="image.open")
        col.prop(settings, "weight")
        col = layout.column(align=True)
        col.use_property_split = True
        col.use_property_decorate = False
        image = settings.image or image_in_editor(context)
        is_sequence = image is not None and image.source in SEQUENCE_SOURCES
        for name in (
            "num_wavelets",
            "size",
            "iterations",
            "rescales",
            "device",
            "create_plane",
            *(("keyframe_interval", "interpolation") if is_sequence else ()),
        ):
            col.prop(settings, name)
        note = node_tree.limits_note(settings.num_wavelets, engine)
        if note and stored_name is None:  # how a fit of this size will render (a fitted group says its own)
            label_lines(layout, note, "INFO")

        job = fit_job.active_job()
        row = layout.row(align=True)
        row.scale_y = 1.4
        if job is not None and job.running:
            draw_progress(row, job)
            row.operator("imfit.cancel", text="", icon="CANCEL")
        elif is_sequence:
            row.operator("imfit.fit_sequence", text="Fit Sequence", icon="SEQUENCE")
        else:
            row.operator("imfit.fit", text="Fit", icon="PLAY")
            sub = row.row(align=True)
            sub.enabled = stored_name is not None
            sub.operator("imfit.refine", text="Refine", icon="FILE_REFRESH")
        if job is not None and not job.running and job.error:
            label_lines(layout, job.error, "ERROR")
        if is_sequence and settings.result_frames and settings.result_image == image.name:
            layout.label(
                text=f"{settings.result_frames} frames keyed, PSNR {settings.result_psnr:.2f} dB, "
                f"flicker {settings.result_flicker:.2f}/255",
                icon="CHECKMARK",
            )

        preview = bpy.data.images.get(fit_job.PREVIEW_IMAGE)
        if preview is not None and preview.preview is not None:
            layout.template_icon(icon_value=preview.preview.icon_id, scale=PREVIEW_ICON_SCALE)
        if stored_name is not None:
            self._draw_stored(layout, settings, stored_name, engine)

    @staticmethod
    def _draw_stored(layout, settings, image_name: str, engine: str) -> None:
        box = layout.box()
        if settings.result_image == image_name:
            stopped = " (stopped early)" if settings.result_stopped else ""
            label_lines(
                box,
                f"{settings.result_wavelets} wavelets, PSNR {settings.result_psnr:.2f} dB, "
                f"{settings.result_seconds:.1f} s{stopped}",
                "CHECKMARK",
            )
        group = stored.find_group(image_name)
        row = box.row(align=True)
        row.operator("imfit.rebuild", text="Rebuild", icon="NODETREE")
        row.operator("imfit.export_json", text="JSON", icon="EXPORT")
        row.operator("imfit.export_txt", text=".txt", icon="EXPORT")
        row = box.row(align=True)
        row.operator_menu_enum("imfit.export_shader", "kind", text="Shader", icon="EXPORT")
        row.operator("imfit.build_osl", text="OSL Material", icon="SCRIPT")
        if group is not None:
            _draw_path(box, settings, group)


def _draw_path(box, settings, group) -> None:
    """Which path the group renders with and why; the path menu; Bake and Use Baked."""
    path = group.get("imfit_path", "NODES")
    icons = {"NODES": "NODETREE", "LOOP": "FILE_REFRESH", "OSL": "SCRIPT", "BAKED": "IMAGE_DATA"}
    label_lines(box, node_tree.path_note(group), icons.get(path, "INFO"))
    scene = bpy.context.scene
    if node_tree.needs_lock(group, scene):
        label_lines(box, "Animation renders from this window follow the keyframes only with Lock Interface", "ERROR")
        box.prop(scene.render, "use_lock_interface")
    override = group.get(node_tree.OVERRIDE_KEY, "AUTO")
    label = next(item[1] for item in paths.OVERRIDE_ITEMS if item[0] == override)
    row = box.row(align=True)
    row.operator_menu_enum("imfit.set_path", "path", text=f"Path: {label}", icon="SHADING_RENDERED")
    col = box.column(align=True)
    col.use_property_split = True
    col.use_property_decorate = False
    col.prop(settings, "bake_size")
    col.prop(settings, "bake_frames")
    col.prop(settings, "bake_folder")
    row = box.row(align=True)
    row.enabled = not _job_running()
    row.operator("imfit.bake", text="Bake", icon="RENDER_STILL")
    sub = row.row(align=True)
    sub.enabled = bpy.data.images.get(baked.bake_name(group)) is not None
    sub.operator("imfit.use_baked", text="Use Baked", icon="IMAGE_DATA", depress=override == "BAKED")


class _LossPanel(_ImfitPanel):
    bl_label = "Losses"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.imfit
        col = layout.column(align=True)
        for name in ("l1", "gradient", "sobel", "mutation_scale", "learning_rate", "gamma"):
            col.prop(settings, name)


class _StylePanel(_ImfitPanel):
    bl_label = "Style"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        style = context.scene.imfit_style
        layout.template_ID(style, "style", open="image.open")
        col = layout.column(align=True)
        col.use_property_split = True
        col.use_property_decorate = False
        for name in ("levels", "base", "steps", "fit_steps", "style_weight", "content_weight", "noise"):
            col.prop(style, name)
        short = style.base * 2 ** (style.levels - 1)
        layout.label(text=f"Stylized shortest side: {short} px", icon="INFO")
        row = layout.row(align=True)
        row.enabled = not _job_running()
        row.operator("imfit.stylize", text="Stylize", icon="BRUSH_DATA")
        row.operator("imfit.fit_style", text="Fit with Style", icon="NODETREE")
        result = bpy.data.images.get(style.result_image) if style.result_image else None
        if result is not None:
            layout.label(text=f"Last: {result.name} ({result.size[0]}x{result.size[1]})", icon="CHECKMARK")
        if style.style is None:
            label_lines(layout, "Choose a style image (a painting, a texture) to transfer its look", "INFO")


class _ExpandPanel(_ImfitPanel):
    bl_label = "Expand Texture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        expand = context.scene.imfit_expand
        col = layout.column(align=True)
        col.use_property_split = True
        col.use_property_decorate = False
        for name in ("preset", "scale", "train_iterations", "match_colors", "as_wavelets"):
            col.prop(expand, name)
        row = layout.row(align=True)
        row.scale_y = 1.2
        row.enabled = not _job_running()
        row.operator("imfit.expand_texture", text="Expand Texture", icon="FULLSCREEN_ENTER")
        result = bpy.data.images.get(expand.result_image) if expand.result_image else None
        if result is not None:
            how = ", cached generator" if expand.result_reused else ""
            layout.label(text=f"Last: {result.name} ({result.size[0]}x{result.size[1]}{how})", icon="CHECKMARK")
        if expand.preset == "gpu":
            label_lines(layout, "The GPU preset trains for hours; choose CUDA in the device setting", "INFO")


def per_editor(base, name: str, parent: str | None = None) -> tuple:
    """One panel class of ``base`` per editor in SPACES: ``IMFIT_PT_<editor>_<name>``, under the editor's
    ``IMFIT_PT_<editor>_<parent>`` when given."""
    classes = []
    for space, short in SPACES.items():
        idname = f"IMFIT_PT_{short}_{name}"
        attrs = {"bl_space_type": space, "bl_idname": idname}
        if parent:
            attrs["bl_parent_id"] = f"IMFIT_PT_{short}_{parent}"
        classes.append(type(idname, (base, bpy.types.Panel), attrs))
    return tuple(classes)


# parents before children: registration order
classes = (
    *per_editor(_MainPanel, "main"),
    *per_editor(_LossPanel, "losses", "main"),
    *per_editor(_StylePanel, "style", "main"),
    *per_editor(_ExpandPanel, "expand", "main"),
)
