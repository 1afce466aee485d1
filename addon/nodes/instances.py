"""Where a wavelet group is used, and the values of its global controls there.

The controls (Phase Shift, Scale, ...) are inputs of each group node that uses the group, in materials or in
other node groups; they may be keyed (F-curves on the owner's node tree) or linked.  The culled paths bin
wavelets by their support, which Scale and Rotation Offset change, so their lists are built for the largest
Scale over every user and over the scene's frame range ("conservatively padded"), and with a rotation-proof
bounding circle when the rotation varies; a linked Scale (a per-point value) turns culling off.  A bake
takes the controls of one user (the preview plane's material first) at the frame it renders.
"""

from __future__ import annotations

import re

import bpy

from ..engine import resynth
from .animation import existing_fcurves

SCALE, ROTATION = "Scale", "Rotation Offset"
_INPUT_PATH = re.compile(r'nodes\["((?:[^"\\]|\\.)*)"\]\.inputs\[(\d+)\]\.default_value')


def _owners() -> list:
    """(the ID a depsgraph update names, its node tree) for every material and shader node group."""
    pairs = [(m, m.node_tree) for m in bpy.data.materials if m.node_tree is not None]
    return pairs + [(g, g) for g in bpy.data.node_groups if g.bl_idname == "ShaderNodeTree"]


def _group_nodes(owner, tree) -> list:
    """The group nodes of ``owner`` (a node tree) that use ``tree``."""
    return [node for node in owner.nodes if node.bl_idname == "ShaderNodeGroup" and node.node_tree == tree]


def users(tree) -> list:
    """(owner node tree, group node) for every node that uses ``tree``, the preview material's first."""
    found = [(owner, node) for _, owner in _owners() for node in _group_nodes(owner, tree)]
    preview = bpy.data.materials.get(tree.name)  # the preview plane's material shares the group's name
    first = preview.node_tree if preview is not None else None
    return sorted(found, key=lambda pair: pair[0] != first)


def user_ids(tree) -> set:
    """The materials and node groups whose trees use ``tree`` (what a depsgraph reports as updated)."""
    return {id_ for id_, owner in _owners() if _group_nodes(owner, tree)}


def _curves(owner, node) -> dict:
    """{input index: F-curve} of the keyed inputs of ``node``."""
    curves = {}
    for fc in existing_fcurves(owner):
        match = _INPUT_PATH.fullmatch(fc.data_path)
        if match and match[1] == node.name:
            curves[int(match[2])] = fc
    return curves


def controls_at(owner, node, frame: float | None) -> tuple[resynth.Controls, bool]:
    """(controls of one user at ``frame``, whether any control is linked there: no single value then)."""
    curves = _curves(owner, node)
    values, linked = {}, False
    for index, socket in enumerate(node.inputs):
        if socket.name not in resynth.Controls.SOCKETS:
            continue
        linked |= socket.is_linked
        fc = curves.get(index)
        values[socket.name] = fc.evaluate(frame) if fc is not None and frame is not None else socket.default_value
    return resynth.Controls.from_sockets(values), linked


def bake_controls(tree, frame: float | None) -> tuple[resynth.Controls, str]:
    """(the controls a bake uses at ``frame``, a note when other users differ or a control is linked)."""
    found = users(tree)
    if not found:
        return resynth.DEFAULT_CONTROLS, ""
    controls, linked = controls_at(*found[0], frame)
    note = ""
    if linked:
        note = "a linked global control cannot be baked: its socket value is used"
    elif any(controls_at(owner, node, frame)[0] != controls for owner, node in found[1:]):
        note = f"the group's users set other control values; the bake follows {found[0][0].name!r}"
    return controls, note


def binning(tree, scene) -> tuple[float, float | None, bool]:
    """(largest Scale, the one Rotation Offset or None when it varies, whether culling is possible)."""
    scale, rotations, cull = None, set(), True
    first, last = (scene.frame_start, scene.frame_end) if scene is not None else (1, 1)
    found = users(tree)
    for owner, node in found:
        curves = _curves(owner, node)
        for index, socket in enumerate(node.inputs):
            if socket.name not in (SCALE, ROTATION):
                continue
            if socket.is_linked:
                if socket.name == SCALE:
                    cull = False  # a per-point scale: no list can hold it
                rotations.add(None)
                continue
            fc = curves.get(index)
            samples = [fc.evaluate(f) for f in range(first, last + 1)] if fc is not None else [socket.default_value]
            if socket.name == SCALE:
                scale = max(scale or 0.0, *(abs(s) for s in samples))
            else:
                rotations.update(samples if len(set(samples)) == 1 else [None])
    rotation = rotations.pop() if len(rotations) == 1 else (0.0 if not rotations else None)
    return float(scale if scale else 1.0), rotation, cull


def controls_animated(owner, node) -> bool:
    """Whether any global control of this user is keyed."""
    indices = {i for i, socket in enumerate(node.inputs) if socket.name in resynth.Controls.SOCKETS}
    return bool(indices & set(_curves(owner, node)))
