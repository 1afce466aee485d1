"""The "ImFit" sidebar tab (Image Editor, 3D Viewport, Shader Editor), the status-bar progress and
the menu entries that make the operators findable with F3."""
from __future__ import annotations

import textwrap

import bpy

from . import fit_job, node_tree, sequence_fit, stored_fit
from .engine import ImfitError
from .ops_engine import IMFIT_OT_check_engine
from .ops_fit import (IMFIT_OT_cancel, IMFIT_OT_fit, IMFIT_OT_fit_sequence, IMFIT_OT_refine, image_in_editor,
                     source_image)
from .ops_shader import IMFIT_OT_build_osl, IMFIT_OT_export_shader
from .ops_stored import IMFIT_OT_export_json, IMFIT_OT_export_txt, IMFIT_OT_rebuild

PREVIEW_ICON_SCALE = 8.0
LABEL_CHARS = 40  # outside a region (nothing to measure): a sidebar's width in characters, about


def _draw_progress(layout, job) -> None:
    layout.progress(factor=job.fraction, type="BAR", text=job.status)


class _ImfitPanel:
    bl_region_type = "UI"
    bl_category = "ImFit"

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space.type != "NODE_EDITOR" or space.tree_type == "ShaderNodeTree"


def _wrap_to_region(text: str) -> list[str]:
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


def _label_lines(layout, text: str, icon: str) -> None:
    """A long message as several labels (labels do not wrap), as wide as the region allows."""
    for i, line in enumerate(_wrap_to_region(text)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _stored_image_name(context) -> str | None:
    """The name of the panel's image when it has a stored fit."""
    try:
        image_name = source_image(context).name
    except ImfitError:
        return None
    return image_name if stored_fit.find_text(image_name) is not None else None


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
        is_sequence = image is not None and image.source in sequence_fit.SOURCES
        for name in ("num_wavelets", "size", "iterations", "rescales", "device", "create_plane",
                     *(("keyframe_interval", "interpolation") if is_sequence else ())):
            col.prop(settings, name)
        note = node_tree.limits_note(settings.num_wavelets, engine)
        if note:
            _label_lines(layout, note, "ERROR")

        job = fit_job.active_job()
        row = layout.row(align=True)
        row.scale_y = 1.4
        if job is not None and job.running:
            _draw_progress(row, job)
            row.operator(IMFIT_OT_cancel.bl_idname, text="", icon="CANCEL")
        elif is_sequence:
            row.operator(IMFIT_OT_fit_sequence.bl_idname, text="Fit Sequence", icon="SEQUENCE")
        else:
            row.operator(IMFIT_OT_fit.bl_idname, text="Fit", icon="PLAY")
            sub = row.row(align=True)
            sub.enabled = stored_name is not None
            sub.operator(IMFIT_OT_refine.bl_idname, text="Refine", icon="FILE_REFRESH")
        if job is not None and not job.running and job.error:
            _label_lines(layout, job.error, "ERROR")
        if is_sequence and settings.result_frames and settings.result_image == image.name:
            layout.label(text=f"{settings.result_frames} frames keyed, PSNR {settings.result_psnr:.2f} dB, "
                              f"flicker {settings.result_flicker:.2f}/255", icon="CHECKMARK")

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
            _label_lines(box, f"{settings.result_wavelets} wavelets, PSNR {settings.result_psnr:.2f} dB, "
                              f"{settings.result_seconds:.1f} s{stopped}", "CHECKMARK")
        group = stored_fit.find_group(image_name)
        count = int(group.get("imfit_count", 0)) if group is not None else 0
        note = node_tree.limits_note(count, engine) if count != settings.num_wavelets else None
        if note:
            _label_lines(box, note, "ERROR")
        row = box.row(align=True)
        row.operator(IMFIT_OT_rebuild.bl_idname, text="Rebuild", icon="NODETREE")
        row.operator(IMFIT_OT_export_json.bl_idname, text="JSON", icon="EXPORT")
        row.operator(IMFIT_OT_export_txt.bl_idname, text=".txt", icon="EXPORT")
        row = box.row(align=True)
        row.operator_menu_enum(IMFIT_OT_export_shader.bl_idname, "kind", text="Shader", icon="EXPORT")
        row.operator(IMFIT_OT_build_osl.bl_idname, text="OSL Material", icon="SCRIPT")


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


SPACES = {"IMAGE_EDITOR": "IMAGE", "VIEW_3D": "VIEW3D", "NODE_EDITOR": "NODE"}


def _panel_classes() -> tuple:
    """The same two panels for each editor (a panel class belongs to one space type)."""
    classes = []
    for space, short in SPACES.items():
        main = type(f"IMFIT_PT_{short}_main", (_MainPanel, bpy.types.Panel),
                    {"bl_space_type": space, "bl_idname": f"IMFIT_PT_{short}_main"})
        losses = type(f"IMFIT_PT_{short}_losses", (_LossPanel, bpy.types.Panel),
                      {"bl_space_type": space, "bl_idname": f"IMFIT_PT_{short}_losses",
                       "bl_parent_id": main.bl_idname})
        classes += [main, losses]
    return tuple(classes)


class IMFIT_MT_menu(bpy.types.Menu):
    bl_idname = "IMFIT_MT_menu"
    bl_label = "Gabor ImFit"

    def draw(self, context):
        layout = self.layout
        layout.operator(IMFIT_OT_fit.bl_idname, icon="PLAY")
        layout.operator(IMFIT_OT_refine.bl_idname)
        layout.operator(IMFIT_OT_fit_sequence.bl_idname, icon="SEQUENCE")
        layout.operator(IMFIT_OT_cancel.bl_idname, icon="CANCEL")
        layout.separator()
        layout.operator(IMFIT_OT_rebuild.bl_idname)
        layout.operator(IMFIT_OT_build_osl.bl_idname)
        layout.operator(IMFIT_OT_export_json.bl_idname)
        layout.operator(IMFIT_OT_export_txt.bl_idname)
        layout.separator()
        layout.operator(IMFIT_OT_check_engine.bl_idname)


def draw_submenu(self, context):
    self.layout.separator()
    self.layout.menu(IMFIT_MT_menu.bl_idname)


def draw_export_menu(self, context):
    self.layout.operator(IMFIT_OT_export_json.bl_idname, text="Gabor ImFit (.json)")
    self.layout.operator(IMFIT_OT_export_txt.bl_idname, text="Gabor ImFit torch-imfit (.txt)")
    self.layout.operator_menu_enum(IMFIT_OT_export_shader.bl_idname, "kind", text="Gabor ImFit Shader")


def draw_status_bar(self, context):
    job = fit_job.active_job()
    if job is not None and job.running:
        row = self.layout.row()
        row.ui_units_x = 14
        _draw_progress(row, job)


classes = (*_panel_classes(), IMFIT_MT_menu)

# (header or menu, draw function) pairs appended on register, removed on unregister.  F3 searches
# the current editor's menus and the top bar's: Image > Gabor ImFit, Node > Gabor ImFit, File > Export.
MENU_APPENDS = (
    (bpy.types.IMAGE_MT_image, draw_submenu),
    (bpy.types.NODE_MT_node, draw_submenu),
    (bpy.types.TOPBAR_MT_file_export, draw_export_menu),
    (bpy.types.STATUSBAR_HT_header, draw_status_bar),
)


def register_menus() -> None:
    for owner, draw in MENU_APPENDS:
        owner.append(draw)


def unregister_menus() -> None:
    for owner, draw in MENU_APPENDS:
        owner.remove(draw)


def register_feature(classes, scene_attr: str, settings_type, draw_menu) -> None:
    """A sub-feature (Style, Expand): its classes, its Scene settings and its entries in the ImFit menu.
    Call after the main panels and ``scene.imfit``: its panels are their children."""
    for cls in classes:
        bpy.utils.register_class(cls)
    setattr(bpy.types.Scene, scene_attr, bpy.props.PointerProperty(type=settings_type))
    IMFIT_MT_menu.append(draw_menu)


def unregister_feature(classes, scene_attr: str, draw_menu) -> None:
    IMFIT_MT_menu.remove(draw_menu)
    delattr(bpy.types.Scene, scene_attr)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
