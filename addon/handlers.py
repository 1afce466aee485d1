"""Application handlers: node groups that follow the render engine, fits that end with their file.

Cycles and EEVEE need different node layouts for the same wavelet (ARCHITECTURE.md, "Blender limits"); the engine can
change at any time, so every ImFit group's atom follows it (node_tree.set_backend): on
depsgraph updates (the UI changing the engine), before a render started from the main
thread, and after a file is loaded.

Groups past EEVEE's uniform limit read their wavelets from a data texture in a loop; the
texture follows the keyframes on every frame change (node_tree.on_frame_change).

Loading a file removes modal operators, so nothing would poll a running fit any more, and its
result belongs to the file being closed: the fit is ended before the load.
"""

from __future__ import annotations

import threading

import bpy
from bpy.app.handlers import persistent

from .engine import ImfitError
from .jobs import fit as fit_job
from .nodes import group as node_tree
from .nodes import stored


def sync_backends(scene) -> int:
    """Switch groups whose backend differs from ``scene``'s engine; returns how many changed."""
    if scene is None:
        return 0
    backend = node_tree.backend_for_engine(scene.render.engine)
    changed = 0
    for group in stored.wavelet_groups():
        # cheap check first (set_backend walks the tree); a body may be a variant ("EEVEE_LOOP");
        # linked groups cannot be edited here
        if group.library is None and not str(group.get("imfit_backend", "")).startswith(backend):
            try:
                changed += node_tree.set_backend(group, backend)
            except ImfitError:
                pass  # a group the user took apart: Rebuild makes a new one; no error on every update
    return changed


@persistent
def imfit_sync_on_depsgraph(scene, depsgraph=None):
    sync_backends(scene)
    if depsgraph is not None:  # socket edits in the UI reach the EEVEE loop's data texture
        node_tree.on_depsgraph_update(scene, depsgraph)


@persistent
def imfit_sync_on_render_pre(scene, *_):
    # An interactive render calls this from its job thread, where editing node trees is unsafe;
    # the depsgraph handler has already synced those.  Scripted and background renders run here.
    if threading.current_thread() is threading.main_thread():
        sync_backends(scene)


@persistent
def imfit_sync_on_load(*_):
    # groups are shared by every scene: follow the one the file opens with
    sync_backends(getattr(bpy.context, "scene", None) or next(iter(bpy.data.scenes), None))


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
)


def register_handlers() -> None:
    for handler_list, function in HANDLERS:
        if function not in handler_list:
            handler_list.append(function)


def unregister_handlers() -> None:
    for handler_list, function in HANDLERS:
        while function in handler_list:
            handler_list.remove(function)
