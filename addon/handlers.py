"""Application handlers: node groups that follow the render engine, fits that end with their file.

Each ImFit group runs the path its scene's render engine, the Blender version and its size call for
(nodes/paths.py; ARCHITECTURE.md, "Blender limits"); the engine can change at any time, so every group follows
it (node_tree.set_engine): on depsgraph updates (the UI changing the engine), before a render started from the
main thread, and after a file is loaded.

The culled paths' tile lists and the baked image follow the keyframes on every frame change, and socket edits
on depsgraph updates (node_tree.on_frame_change, on_depsgraph_update).

Loading a file removes modal operators, so nothing would poll a running fit any more, and its
result belongs to the file being closed: the fit is ended before the load.
"""

from __future__ import annotations

import threading

import bpy
from bpy.app.handlers import persistent

from .engine import ImfitError
from .jobs import fit as fit_job
from .nodes import baked, osl_path, stored
from .nodes import group as node_tree


def _situation(scene) -> str:
    """What a group's path depends on in ``scene``: the engine and whether Cycles can run OSL."""
    return f"{scene.render.engine}/{osl_path.osl_available(scene)}"


def sync_paths(scene, force: bool = False) -> int:
    """Switch groups whose path was chosen for another engine or device; returns how many changed."""
    if scene is None:
        return 0
    situation = _situation(scene)
    changed = 0
    for group in stored.wavelet_groups():
        # cheap check first (set_engine walks the tree); linked groups cannot be edited here
        if group.library is None and (force or group.get("imfit_situation") != situation):
            try:
                changed += node_tree.set_engine(group, scene.render.engine, scene)
                group["imfit_situation"] = situation
            except ImfitError as e:
                # a group the user took apart, or an OSL compile failing: the panel says it, once per change
                group["imfit_situation"] = situation
                group["imfit_detail"] = str(e)
    return changed


@persistent
def imfit_sync_on_depsgraph(scene, depsgraph=None):
    sync_paths(scene)
    if depsgraph is not None:  # socket edits in the UI reach the loop's textures, the OSL script, the bake
        node_tree.on_depsgraph_update(scene, depsgraph)


@persistent
def imfit_sync_on_render_pre(scene, *_):
    # An interactive render calls this from its job thread, where editing node trees is unsafe;
    # the depsgraph handler has already synced those.  Scripted and background renders run here.
    if threading.current_thread() is threading.main_thread():
        sync_paths(scene)
        node_tree.refresh_all(scene, scene.frame_current)


@persistent
def imfit_sync_on_load(*_):
    # groups are shared by every scene: follow the one the file opens with; the loop's textures are not
    # saved with the file, so every path's data is rebuilt
    scene = getattr(bpy.context, "scene", None) or next(iter(bpy.data.scenes), None)
    for group in stored.wavelet_groups():
        group.pop("imfit_situation", None)
        group.pop(node_tree.DATA_KEY, None)
    sync_paths(scene)
    if scene is not None:
        node_tree.refresh_all(scene, scene.frame_current)


@persistent
def imfit_pack_on_save(*_):
    baked.pack_auto_bakes()


@persistent
def imfit_sync_textures_on_frame(scene, *_):
    node_tree.on_frame_change(scene)


@persistent
def imfit_end_fit_on_load(*_):
    fit_job.shutdown_active()


HANDLERS = (
    (bpy.app.handlers.load_pre, imfit_end_fit_on_load),
    (bpy.app.handlers.depsgraph_update_post, imfit_sync_on_depsgraph),
    (bpy.app.handlers.render_pre, imfit_sync_on_render_pre),
    (bpy.app.handlers.load_post, imfit_sync_on_load),
    (bpy.app.handlers.frame_change_post, imfit_sync_textures_on_frame),
    (bpy.app.handlers.save_pre, imfit_pack_on_save),
)


def register_handlers() -> None:
    for handler_list, function in HANDLERS:
        if function not in handler_list:
            handler_list.append(function)


def unregister_handlers() -> None:
    for handler_list, function in HANDLERS:
        while function in handler_list:
            handler_list.remove(function)
