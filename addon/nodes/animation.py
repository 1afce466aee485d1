"""Keyframes on node sockets through Blender's animation API (legacy actions before 4.4, slotted ones after)."""

from __future__ import annotations

import re

import bpy
import numpy as np

KEYED_PATH = re.compile(r'nodes\["(W\d+)"\]\.inputs\[(\d+)\]\.default_value')


def fcurves_of(tree_id):
    """The F-curve collection of an ID's action (a chunk group's: its wavelets' keys), created
    if needed: Blender 4.2-4.3's legacy actions, 4.4-4.5's layered ones and 5.0's."""
    adt = tree_id.animation_data or tree_id.animation_data_create()
    if adt.action is None:
        adt.action = bpy.data.actions.new(f"{tree_id.name} keys")
    action = adt.action
    if hasattr(action, "fcurves") and not hasattr(action, "slots"):
        return action.fcurves  # Blender < 4.4: legacy actions
    from bpy_extras import anim_utils

    if adt.action_slot is None:
        slot = action.slots.new(id_type="NODETREE", name=tree_id.name)
        adt.action_slot = slot
    ensure = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)  # Blender 5.0+
    if ensure is not None:
        return ensure(action, adt.action_slot).fcurves
    # Blender 4.4-4.5: a layered action's keys live in a keyframe strip's channel bag for the slot
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(adt.action_slot, ensure=True).fcurves


def add_keys(points, frames, values, interpolation: str) -> None:
    if len(points):  # keys there already: insert merges keys on the same frame
        for f, v in zip(frames.tolist(), values.tolist()):
            points.insert(f, v, options={"FAST"}).interpolation = interpolation
        return
    points.add(len(frames))
    points.foreach_set("co", np.column_stack((frames, values)).astype(np.float32).ravel())
    points.foreach_set("interpolation", [_INTERPOLATION_VALUES[interpolation]] * len(frames))
    for handle in ("handle_left_type", "handle_right_type"):  # what insert gives, so update() computes handles
        points.foreach_set(handle, [_AUTO_CLAMPED] * len(frames))


_KEY_PROPERTIES = bpy.types.Keyframe.bl_rna.properties
_INTERPOLATION_VALUES = {e.identifier: e.value for e in _KEY_PROPERTIES["interpolation"].enum_items}
_AUTO_CLAMPED = _KEY_PROPERTIES["handle_left_type"].enum_items["AUTO_CLAMPED"].value


def existing_fcurves(tree_id) -> list:
    """The F-curves of an ID's action, or [] (nothing is created: a read for the handlers)."""
    adt = tree_id.animation_data
    action = adt.action if adt is not None else None
    if action is None:
        return []
    if hasattr(action, "fcurves") and not hasattr(action, "slots"):
        return list(action.fcurves)
    from bpy_extras import anim_utils

    if adt.action_slot is None:
        return []
    channelbag = anim_utils.action_get_channelbag_for_slot(action, adt.action_slot)
    return list(channelbag.fcurves) if channelbag is not None else []
