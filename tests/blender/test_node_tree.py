"""The generated shader node group, rendered by real Blender against the engine's reference.

Cycles (CPU, emission, Standard view transform) must match ``to_image(render_reference())``
within 2/255 in display space.  EEVEE is checked at 1024 wavelets (the culled data-texture loop) and,
marked slow because software GL compiles the big shader for over a minute, at 256 (unrolled).
The other paths (OSL, baked, culled against unculled) are in test_paths.py.
"""

import math

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_util import (
    addon_module,
    fresh_scene,
    max_error_255,
    package_module,
    preview_scene,
    realistic_params,
    reference_display,
    reference_signed,
    render_display,
)
from imfit_engine.core import model

nt = addon_module("nodes.group")
keys, anim = addon_module("nodes.keyframes"), addon_module("nodes.animation")
loop_supported = lambda: addon_module("nodes.paths").loop_supported(bpy.app.version)
ImfitError = package_module("imfit_engine.errors").ImfitError  # the class the add-on raises
TOLERANCE = 2.0  # in 1/255 steps, display space
EEVEE = addon_module("nodes.scene").eevee_engine()  # "BLENDER_EEVEE_NEXT" on 4.2-4.5


def _display_from_signed(signed, gain=1.0, bias=0.0):
    return np.clip(signed * gain + bias, -1.0, 1.0) * 0.5 + 0.5


@pytest.mark.parametrize(
    "count, width, height",
    [(16, 96, 64), (256, 64, 64), (1024, 64, 48)],
)
def test_cycles_render_matches_engine(count, width, height):
    choice = addon_module("nodes.paths").choose("CYCLES", count, bpy.app.version, override="NODES")
    if choice.path != "NODES":  # 4.2-4.5 past ~129: the culled OSL path instead (test_paths.py)
        pytest.skip(f"Blender {bpy.app.version_string} refuses the node group here: {choice.note}")
    params = realistic_params(count, width / height, height, seed=count)
    scene, group, _, build_s = preview_scene(nt, params, width, height, "CYCLES", path="NODES")
    assert nt.get_backend(group) == "CYCLES"
    image, render_s = render_display(scene)
    reference = reference_display(params, width / height, width, height)
    error = max_error_255(image, reference)
    clipped = float(((reference <= 0) | (reference >= 1)).mean())
    print(
        f"\nCycles N={count} {width}x{height}: build {build_s:.2f} s, render {render_s:.2f} s, "
        f"max error {error:.3f}/255, clipped {clipped:.1%}"
    )
    assert error <= TOLERANCE
    assert image.std() > 0.05  # a real picture, not a flat or black one (build time: bench/nodes_bench.py)


def test_global_controls_act_on_every_wavelet():
    """Each global control changes the render exactly as its definition on the parameters says."""
    width, height = 72, 48
    aspect = width / height
    params = realistic_params(16, aspect, height, seed=7)
    scene, group, plane, _ = preview_scene(nt, params, width, height)
    node = plane.data.materials[0].node_tree.nodes["ImFit"]
    controls = {
        "Phase Shift": 0.7,
        "Rotation Offset": -0.4,
        "Scale": 1.3,
        "Frequency Multiplier": 0.8,
        "Amplitude Multiplier": 1.5,
        "Offset": 0.1,
    }
    for name, value in controls.items():
        node.inputs[name].default_value = value
    changed = params.astype(np.float64).copy()
    changed[:, model.PHASE] += controls["Phase Shift"]
    changed[:, model.THETA] += controls["Rotation Offset"]
    changed[:, model.LENGTHS] *= controls["Scale"]
    changed[:, model.WAVELENGTH] /= controls["Frequency Multiplier"]
    signed = reference_signed(changed, aspect, width, height)
    reference = _display_from_signed(signed, controls["Amplitude Multiplier"], controls["Offset"])
    image, _ = render_display(scene)
    assert max_error_255(image, reference) <= TOLERANCE
    assert max_error_255(image, reference_display(params, aspect, width, height)) > 20


def test_keyframes_on_a_wavelet_and_a_global_control_animate_the_render():
    width, height = 64, 64
    params = realistic_params(16, 1.0, height, seed=3)
    params[5, model.AMP] = 0.4
    scene, group, plane, _ = preview_scene(nt, params, width, height)
    # an explicit UV link this time (the other tests use the unlinked default)
    material = plane.data.materials[0].node_tree
    uv = material.nodes.new("ShaderNodeTexCoord")
    material.links.new(uv.outputs["UV"], material.nodes["ImFit"].inputs["Vector"])

    chunk, node_name = nt.wavelet_location(group, 5)
    amplitude = chunk.nodes[node_name].inputs["Amplitude"]
    for frame, value in ((1, (0.4, 0.4, 0.4)), (2, (-0.4, 0.1, 0.0))):
        amplitude.default_value = value
        amplitude.keyframe_insert("default_value", frame=frame)
    images = {frame: render_display(scene, frame)[0] for frame in (1, 2)}
    wavelet_change = max_error_255(images[1], images[2])

    shift = material.nodes["ImFit"].inputs["Phase Shift"]
    for frame, value in ((2, 0.0), (3, math.pi / 2)):
        shift.default_value = value
        shift.keyframe_insert("default_value", frame=frame)
    image3, _ = render_display(scene, 3)
    global_change = max_error_255(images[2], image3)
    print(f"\nkeyframe changes: wavelet {wavelet_change:.1f}/255, global {global_change:.1f}/255")

    # the F-curves sit on the chunk group that holds the wavelet, and on the material
    paths = {fc.data_path for fc in anim.fcurves_of(chunk)}
    assert f'nodes["{node_name}"].inputs[{list(chunk.nodes[node_name].inputs).index(amplitude)}].default_value' in paths
    expected = params.astype(np.float64).copy()
    expected[5, model.AMP] = (-0.4, 0.1, 0.0)
    assert max_error_255(images[2], reference_display(expected, 1.0, width, height)) <= TOLERANCE
    assert wavelet_change > 10
    assert global_change > 10


def test_keyframe_wavelets_keys_a_sequence():
    width, height = 48, 32
    aspect = width / height
    first = realistic_params(8, aspect, height, seed=11)
    second = realistic_params(8, aspect, height, seed=12)
    scene, group, _, _ = preview_scene(nt, first, width, height)
    keys.keyframe_wavelets(group, first, 1, "CONSTANT")
    keys.keyframe_wavelets(group, second, 5, "CONSTANT")
    chunk, _ = nt.wavelet_location(group, 0)
    fcurves = anim.fcurves_of(chunk)
    assert len(fcurves) == 8 * len(model.COLUMNS)
    assert all(len(fc.keyframe_points) == 2 for fc in fcurves)
    assert {kp.interpolation for fc in fcurves for kp in fc.keyframe_points} == {"CONSTANT"}
    for frame, params in ((4, first), (5, second)):
        image, _ = render_display(scene, frame)
        assert max_error_255(image, reference_display(params, aspect, width, height)) <= TOLERANCE


def test_values_round_trip_and_rebuild_keeps_materials_linked():
    width, height = 40, 40
    params = realistic_params(70, 1.0, height, seed=5)  # two chunks, the second partial
    scene, group, plane, _ = preview_scene(nt, params, width, height)
    assert np.allclose(nt.read_wavelet_values(group), params.astype(np.float32), atol=0)
    smaller = realistic_params(9, 1.0, height, seed=6)
    trees_before = len(bpy.data.node_groups)
    rebuilt = nt.build_wavelet_group("test", smaller, 1.0)
    assert rebuilt == group and plane.data.materials[0].node_tree.nodes["ImFit"].node_tree == group
    assert len(bpy.data.node_groups) == trees_before - 1  # one chunk fewer, nothing left behind
    refined = smaller.copy()
    refined[:, model.AMP] *= -1.0
    nt.update_wavelet_values(group, refined)
    image, _ = render_display(scene)
    assert max_error_255(image, reference_display(refined, 1.0, width, height)) <= TOLERANCE


def test_backend_swap_keeps_sockets_values_and_keys():
    width, height = 32, 32
    params = realistic_params(10, 1.0, height, seed=9)
    scene, group, _, _ = preview_scene(nt, params, width, height)
    keys.keyframe_wavelets(group, params, 1)
    chunk, _ = nt.wavelet_location(group, 0)
    keys_before = sorted((fc.data_path, fc.array_index) for fc in anim.fcurves_of(chunk))
    atom = chunk.nodes["W00"].node_tree
    sockets_before = [(s.name, s.in_out) for s in atom.interface.items_tree]
    separates = lambda: sum(n.bl_idname == "ShaderNodeSeparateXYZ" for n in atom.nodes)
    assert separates() == 0  # Cycles' SVM leaks a stack slot per unused Separate XYZ output
    assert nt.set_backend(group, "EEVEE") and nt.get_backend(group) == "EEVEE"
    assert separates() > 0
    assert not nt.set_backend(group, "EEVEE")
    assert nt.set_backend(group, "CYCLES")
    assert [(s.name, s.in_out) for s in atom.interface.items_tree] == sockets_before
    assert sorted((fc.data_path, fc.array_index) for fc in anim.fcurves_of(chunk)) == keys_before
    assert np.allclose(nt.read_wavelet_values(group), params.astype(np.float32), atol=0)
    image, _ = render_display(scene)
    assert max_error_255(image, reference_display(params, 1.0, width, height)) <= TOLERANCE


def test_engine_mapping_and_limit_notes():
    assert nt.backend_for_engine("CYCLES") == "CYCLES"
    assert nt.backend_for_engine("BLENDER_EEVEE") == "EEVEE"
    assert nt.backend_for_engine("BLENDER_EEVEE_NEXT") == "EEVEE"  # Blender 4.2's name
    assert nt.limits_note(16, "BLENDER_EEVEE") is None  # the plain node group: nothing to say
    assert nt.limits_note(16, "CYCLES") is None
    assert "OSL" in nt.limits_note(1024, "CYCLES")
    eevee = nt.limits_note(1024, "BLENDER_EEVEE")
    assert ("loop" in eevee) if loop_supported() else ("baked" in eevee)


def test_bad_input_is_a_user_error():
    fresh_scene()
    with pytest.raises(ImfitError):
        nt.build_wavelet_group("bad", np.zeros((4, 11)), 1.0)
    with pytest.raises(ImfitError):
        nt.build_wavelet_group("bad", np.full((4, 12), np.nan), 1.0)
    with pytest.raises(ImfitError):
        nt.build_wavelet_group("bad", np.ones((4, 12)), 0.0)
    group = nt.build_wavelet_group("ok", np.ones((4, 12)), 1.0)
    with pytest.raises(ImfitError):
        nt.update_wavelet_values(group, np.ones((5, 12)))
    long_name = "x" * 200
    assert len(nt.build_wavelet_group(long_name, np.ones((2, 12)), 1.0).name.encode()) <= 63


def _eevee_check(count, width, height, backend, path=None):
    params = realistic_params(count, width / height, height, seed=count + 1)
    scene, group, _, build_s = preview_scene(nt, params, width, height, EEVEE, path=path)
    assert nt.get_backend(group) == backend
    image, render_s = render_display(scene)
    error = max_error_255(image, reference_display(params, width / height, width, height))
    print(
        f"\nEEVEE ({backend}) N={count} {width}x{height}: build {build_s:.2f} s, render {render_s:.1f} s, "
        f"max error {error:.3f}/255"
    )
    assert error <= TOLERANCE
    return scene, group, params


def test_eevee_unrolled_matches_engine_64():
    """The unrolled EEVEE body, small enough for software GL to compile in seconds on every Blender version."""
    _eevee_check(64, 48, 32, "EEVEE", path="NODES")  # the automatic choice past 32 is the loop on 5.0


@pytest.mark.slow
def test_eevee_unrolled_matches_engine_256():
    """Unrolled: ~80 s here, nearly all of it software GL compiling one shader of 256 wavelets."""
    _eevee_check(256, 64, 48, "EEVEE", path="NODES")


def test_eevee_loop_matches_engine_1024_and_follows_keys():
    """Past the uniform limit EEVEE reads the wavelets from a data texture in a loop (5.0+)."""
    if not loop_supported():
        pytest.skip("shader repeat zones need Blender 5.0")
    scene, group, params = _eevee_check(1024, 64, 64, "EEVEE_LOOP")
    chunk, node_name = nt.wavelet_location(group, 700)
    amplitude = chunk.nodes[node_name].inputs["Amplitude"]
    amplitude.keyframe_insert("default_value", frame=1)
    amplitude.default_value = (0.9, -0.9, 0.9)
    amplitude.keyframe_insert("default_value", frame=2)
    changed = params.astype(np.float64).copy()
    changed[700, model.AMP] = (0.9, -0.9, 0.9)
    assert np.allclose(nt.animated_values(group, 1), params, atol=1e-6)
    assert np.allclose(nt.animated_values(group, 2), changed, atol=1e-6)
    scene.frame_set(2)
    nt.on_frame_change(scene)  # what the add-on's frame-change handler runs
    image, _ = render_display(scene)
    assert max_error_255(image, reference_display(changed, 1.0, 64, 64)) <= TOLERANCE
    assert max_error_255(image, reference_display(params, 1.0, 64, 64)) > 10


def test_loop_texture_follows_socket_edits():
    """An edit in the UI reaches the loop's list texture through the depsgraph handler."""
    if not loop_supported():
        pytest.skip("shader repeat zones need Blender 5.0")
    params = realistic_params(100, 1.0, 32, seed=4)
    scene, group, _, _ = preview_scene(nt, params, 32, 32, "BLENDER_EEVEE")
    image = nt.data_texture(group)
    entries = lambda: np.array(image.pixels[:], np.float32).reshape(-1, 3, 4)  # 3 RGBA texels per list entry
    assert not (entries()[:, 0, model.SIGMA] == np.float32(0.0123)).any()
    handler = nt.on_depsgraph_update
    bpy.app.handlers.depsgraph_update_post.append(handler)
    try:
        chunk, node_name = nt.wavelet_location(group, 3)
        chunk.nodes[node_name].inputs["Sigma"].default_value = 0.0123
        bpy.context.view_layer.update()
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(handler)
    # wavelet 3's entries (in every tile its support reaches) hold the new sigma: texel 0, 4th channel
    at = entries()[:, 0, :2] == params[3, :2].astype(np.float32)
    assert at.all(axis=1).any()
    assert (entries()[at.all(axis=1), 0, model.SIGMA] == np.float32(0.0123)).all()


def test_frame_handler_off_the_main_thread_waits_for_lock_interface(monkeypatch):
    """An animation render from the window calls the frame handler on its render thread, where writing images
    and node trees the window may be drawing can crash Blender: there it rewrites nothing unless Lock Interface
    is on, and the panel says so (``needs_lock``); on the main thread (playback, background renders) it always
    follows the keys."""
    import threading

    if not loop_supported():
        pytest.skip("shader repeat zones need Blender 5.0")
    scene, group, _, _ = preview_scene(nt, realistic_params(60, 1.0, 32, seed=7), 32, 32, "BLENDER_EEVEE", "keyed")
    chunk, node_name = nt.wavelet_location(group, 3)
    chunk.nodes[node_name].inputs["Sigma"].keyframe_insert("default_value", frame=1)
    refreshed = []
    monkeypatch.setattr(nt, "refresh", lambda tree, *a, **k: refreshed.append(tree.name))

    def from_a_render_thread():
        worker = threading.Thread(target=nt.on_frame_change, args=(scene,))
        worker.start()
        worker.join()

    scene.render.use_lock_interface = False
    assert nt.needs_lock(group, scene)
    from_a_render_thread()
    assert refreshed == []
    nt.on_frame_change(scene)
    assert refreshed == [group.name]
    scene.render.use_lock_interface = True
    assert not nt.needs_lock(group, scene)
    from_a_render_thread()
    assert refreshed == [group.name] * 2


def test_depsgraph_handler_refreshes_only_the_groups_an_edit_touches(monkeypatch):
    """Editing an unrelated material leaves the ImFit groups alone (finding that a 4096-wavelet group did not
    change reads all its sockets, longer than a slider's redraw); a control on a group's user refreshes that
    group and not the other one."""
    if not loop_supported():
        pytest.skip("shader repeat zones need Blender 5.0")
    scene, group, _, _ = preview_scene(nt, realistic_params(60, 1.0, 32, seed=5), 32, 32, "BLENDER_EEVEE", "near")
    bystander = nt.build_wavelet_group(
        "far", realistic_params(60, 1.0, 32, seed=6), 1.0, backend="EEVEE", size=(32, 32), scene=scene
    )
    assert {group.get("imfit_path"), bystander.get("imfit_path")} == {"LOOP"}
    other = bpy.data.materials.new("Unrelated")
    if bpy.app.version < (5, 0, 0):  # always on from 5.0 (and deprecated)
        other.use_nodes = True
    bpy.ops.mesh.primitive_plane_add()
    bpy.context.active_object.data.materials.append(other)
    bpy.context.view_layer.update()
    refreshed, real = [], nt.refresh
    monkeypatch.setattr(nt, "refresh", lambda tree, *a, **k: refreshed.append(tree.name) or real(tree, *a, **k))
    bpy.app.handlers.depsgraph_update_post.append(nt.on_depsgraph_update)
    try:
        other.node_tree.nodes["Principled BSDF"].inputs["Roughness"].default_value = 0.3
        bpy.context.view_layer.update()
        assert refreshed == []
        user = next(node for _, node in nt.instances.users(group))
        user.inputs["Scale"].default_value = 1.5
        bpy.context.view_layer.update()
        assert set(refreshed) == {group.name}
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(nt.on_depsgraph_update)
