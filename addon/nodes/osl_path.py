"""The OSL path inside a wavelet group (Cycles on the CPU or OptiX): one Script node walks the point's tile list.

The script is ``shaders/gabor_tiles.osl`` with the values and tile lists inlined (``export.osl_tiles_source``)
in an internal text ``.<group>.osl``; the group's Vector and per-wavelet controls are its inputs, so the
controls and the top group's gain and bias act as on the node path without recompiling.  New values or lists
(edits, keyframes) rewrite the text and recompile the script (about a second for 4096 wavelets).

A Script node compiles only in a Cycles scene with Open Shading Language on: ``use_osl`` turns it on and
remembers that it did (``OSL_KEY``), so ``release_osl`` can turn it off again when no group needs it.
"""

from __future__ import annotations

import bpy

from ..engine import ImfitError

OSL_KEY = "imfit_turned_osl_on"  # scene custom property: the add-on switched this scene to OSL
SCRIPT_NODE = "ImFit OSL"
# script input <- top-group input (the per-wavelet controls; gain and bias stay in the group)
CONTROL_INPUTS = {
    "PhaseShift": "Phase Shift",
    "RotationOffset": "Rotation Offset",
    "Scale": "Scale",
    "FrequencyMultiplier": "Frequency Multiplier",
}


def text_name(tree) -> str:
    return f".{tree.name}.osl"


_compile_failed = []  # a script that did not compile once: this Blender's Cycles is taken to lack OSL


def osl_available(scene) -> bool:
    """Cycles renders OSL on the CPU and with OptiX, in builds with OSL (some Linux distributions' are not)."""
    if not getattr(bpy.app.build_options, "cycles_osl", True) or _compile_failed:
        return False
    if scene is None or scene.render.engine != "CYCLES":
        return True
    if scene.cycles.device == "CPU":
        return True
    prefs = bpy.context.preferences.addons.get("cycles")
    return prefs is not None and prefs.preferences.compute_device_type == "OPTIX"


def use_osl(scene) -> None:
    if scene is not None and not scene.cycles.shading_system:
        scene.cycles.shading_system = True
        scene[OSL_KEY] = True


def release_osl(scene) -> None:
    """Turn OSL off again where the add-on turned it on."""
    if scene is not None and scene.get(OSL_KEY):
        scene.cycles.shading_system = False
        del scene[OSL_KEY]


def write_source(tree, source: str) -> bool:
    """Put ``source`` in the group's text; True when it changed (the script then needs compiling)."""
    text = bpy.data.texts.get(text_name(tree)) or bpy.data.texts.new(text_name(tree))
    if text.as_string() == source:
        return False
    text.from_string(source)
    return True


def compile_script(tree, scene) -> None:
    """(Re)compile the group's Script node from its text (needs a Cycles OSL scene)."""
    node = tree.nodes.get(SCRIPT_NODE)
    text = bpy.data.texts.get(text_name(tree))
    if node is None or text is None:
        return
    scene = scene if scene is not None else bpy.context.scene
    use_osl(scene)
    # assigning the text runs the scene's engine's script compiler: Cycles', so Cycles for that moment
    engine = scene.render.engine
    if engine != "CYCLES":
        scene.render.engine = "CYCLES"
    try:
        with bpy.context.temp_override(scene=scene):
            node.script = text
    finally:
        if scene.render.engine != engine:
            scene.render.engine = engine
    if "Raw" not in node.outputs:
        _compile_failed.append(text.name)
        raise ImfitError(
            f"the OSL shader {text.name} did not compile (this Blender may lack OSL): see the console, "
            "or choose the Node Group path"
        )


def script_sum(b, uv, group_inputs, tree, scene):
    """The raw signed sum from the Script node fed with ``uv`` and the controls; compiles it."""
    node = b.node("ShaderNodeScript")
    node.name = node.label = SCRIPT_NODE
    node.mode = "INTERNAL"
    compile_script(tree, scene)
    b.links.new(uv, node.inputs["UV"])
    for script_input, group_input in CONTROL_INPUTS.items():
        b.links.new(group_inputs[group_input], node.inputs[script_input])
    return node.outputs["Raw"]
