"""Menus and the status bar: Image > Gabor ImFit, Node > Gabor ImFit, File > Import / Export, and the fit's progress
in the status bar.  F3 searches the current editor's menus and the top bar's, so every operator is here."""

from __future__ import annotations

import bpy

from ..jobs import fit as fit_job
from .panel import draw_progress


class IMFIT_MT_menu(bpy.types.Menu):
    bl_idname = "IMFIT_MT_menu"
    bl_label = "Gabor ImFit"

    def draw(self, context):
        layout = self.layout
        layout.operator("imfit.fit", icon="PLAY")
        layout.operator("imfit.refine")
        layout.operator("imfit.fit_sequence", icon="SEQUENCE")
        layout.operator("imfit.cancel", icon="CANCEL")
        layout.separator()
        layout.operator("imfit.rebuild")
        layout.operator("imfit.import_fit", icon="IMPORT")
        layout.operator("imfit.bake", icon="RENDER_STILL")
        layout.operator("imfit.use_baked")
        layout.operator_menu_enum("imfit.set_path", "path")
        layout.operator("imfit.build_osl")
        layout.operator("imfit.export_json")
        layout.operator("imfit.export_txt")
        layout.separator()
        layout.operator("imfit.stylize", icon="BRUSH_DATA")
        layout.operator("imfit.fit_style", icon="NODETREE")
        layout.operator("imfit.expand_texture", icon="FULLSCREEN_ENTER")
        layout.separator()
        layout.operator("imfit.check_engine")


def draw_submenu(self, context):
    self.layout.separator()
    self.layout.menu(IMFIT_MT_menu.bl_idname)


def draw_export_menu(self, context):
    self.layout.operator("imfit.export_json", text="Gabor ImFit (.json)")
    self.layout.operator("imfit.export_txt", text="Gabor ImFit torch-imfit (.txt)")
    self.layout.operator_menu_enum("imfit.export_shader", "kind", text="Gabor ImFit Shader")


def draw_import_menu(self, context):
    self.layout.operator("imfit.import_fit", text="Gabor ImFit (.json, .txt)")


def draw_status_bar(self, context):
    job = fit_job.active_job()
    if job is not None and job.running:
        row = self.layout.row()
        row.ui_units_x = 14
        draw_progress(row, job)


# (header or menu, draw function) pairs appended on register, removed on unregister.  F3 searches
# the current editor's menus and the top bar's: Image > Gabor ImFit, Node > Gabor ImFit, File > Import / Export.
MENU_APPENDS = (
    (bpy.types.IMAGE_MT_image, draw_submenu),
    (bpy.types.NODE_MT_node, draw_submenu),
    (bpy.types.TOPBAR_MT_file_export, draw_export_menu),
    (bpy.types.TOPBAR_MT_file_import, draw_import_menu),
    (bpy.types.STATUSBAR_HT_header, draw_status_bar),
)


def register_menus() -> None:
    for owner, draw in MENU_APPENDS:
        owner.append(draw)


def unregister_menus() -> None:
    for owner, draw in MENU_APPENDS:
        owner.remove(draw)


classes = (IMFIT_MT_menu,)
