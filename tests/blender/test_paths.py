"""Every re-synthesis path of the node group (nodes.paths), rendered by real Blender and held to the engine.

Renders are real (Cycles CPU, EEVEE through software GL) at small sizes; each must match the engine's image
within 2/255 in display space.  Paths and counts (the heavy ones are ``slow``: ``make test-slow``):

====================  ======================================  ==========================
path                  ``make test``                           slow
====================  ======================================  ==========================
OSL (culled, Cycles)  16, 256, 4096; unculled 256             .
EEVEE loop (culled)   16, 256; unculled 256; 4096 and 16384   4096 (fit-like)
                      (automatic path); 1024 (test_node_tree)
baked (auto, numpy)   16, 256, 4096; in EEVEE 4.2-4.5: 256,   .
                      4096, 16384 (make test-matrix)
node group            Cycles 16 / 256 / 1024 (test_node_tree) Cycles 4096, EEVEE 256
====================  ======================================  ==========================

The operator tests run the extension for real: Bake in the worker (a still, an animated group's sequence at
two frames against the engine's render of its animated values, resume and cancel), Import of .json and .txt
against the group a fit built, and the handlers switching paths when the render engine changes.
"""

import math
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_util import (
    addon_module,
    engine_display,
    fit_like_params,
    max_error_255,
    package_module,
    preview_scene,
    quiet_stdout,
    read_png16,
    realistic_params,
    render_display,
    texel_filtered_error_255,
)
from support import DATA

nt = addon_module("nodes.group")
paths = addon_module("nodes.paths")
resynth = package_module("imfit_engine.core.resynth")
TOLERANCE = 2.0  # 1/255 steps, display space
W, H = 64, 48
EEVEE = addon_module("nodes.scene").eevee_engine()  # "BLENDER_EEVEE_NEXT" on 4.2-4.5
LOOP = paths.loop_supported(bpy.app.version)


def _field(count: int, seed: int = 0):
    # fit-like sizes for large counts (a real fit's overlap), the varied test field for small ones
    return fit_like_params(count, W / H, seed) if count >= 1024 else realistic_params(count, W / H, H, seed=seed)


def eevee_error(image, reference, group) -> float:
    """The error of an EEVEE render: EEVEE 4.2-4.5 shows an image texture at 1:1 blended by about a texel
    (measured: the texture itself is within 0.5/255 of the engine, the render up to 17/255 off it with Linear
    interpolation, 0.08 with Closest), so a baked path there is held to the engine's 3x3 neighbourhood."""
    if nt.get_path(group) == "BAKED" and not LOOP:
        return texel_filtered_error_255(image, reference)
    return max_error_255(image, reference)


def _render_path(count, engine, path, seed=0, culled=True):
    params = _field(count, seed)
    scene, group, _, build_s = preview_scene(nt, params, W, H, engine, path=path)
    if not culled:
        nt.set_culling(group, False, scene)
    with quiet_stdout():
        image, render_s = render_display(scene)
    reference = engine_display(params, W / H, W, H)
    error = max_error_255(image, reference)
    print(
        f"\n{path} {engine} N={count} culled={culled}: build {build_s:.2f} s, render {render_s:.2f} s, "
        f"error {error:.3f}/255; {nt.path_note(group)}"
    )
    assert nt.get_path(group) == path
    assert error <= TOLERANCE
    assert image.std() > 0.03  # a picture, not a flat field (magenta or black would fail the error anyway)
    return image, group


@pytest.mark.parametrize("count", [16, 256, 4096])
def test_osl_path_matches_engine(count):
    _render_path(count, "CYCLES", "OSL")


def test_a_refresh_after_the_build_rewrites_nothing():
    """The build keeps the key of what it built (grid included): handlers calling refresh on every update find
    it current, and the lists, textures and OSL source are not rebuilt."""
    for engine, path in [("CYCLES", "OSL"), ("CYCLES", "BAKED")] + ([(EEVEE, "LOOP")] if LOOP else []):
        scene, group, _, _ = preview_scene(nt, _field(256, seed=11), W, H, engine, path=path)
        assert not nt.refresh(group, scene), path


@pytest.mark.parametrize("count", [16, 256, 4096])
def test_auto_baked_path_matches_engine(count):
    """The numpy bake the add-on makes itself (8-bit: within 0.5/255 plus the engine's tails)."""
    _, group = _render_path(count, "CYCLES", "BAKED")
    assert bpy.data.images[f".{group.name} auto"].size[:] == (W, H)


@pytest.mark.parametrize("count", [16, 256])
def test_eevee_loop_matches_engine(count):
    if not LOOP:
        pytest.skip("shader repeat zones need Blender 5.0")
    _render_path(count, EEVEE, "LOOP")


@pytest.mark.parametrize("count", [256, 4096, 16384])
def test_large_fits_render_in_eevee_on_the_automatic_path(count):
    """What a user gets for a large fit in EEVEE, on each Blender of the matrix (make test-matrix): the loop on
    5.0, a baked image on 4.2-4.5 (no shader loops there, and unrolled code past ~160 wavelets may crash
    Blender while compiling), never a material past EEVEE's uniform block, and the engine's image."""
    params = _field(count, seed=count)
    scene, group, _, build_s = preview_scene(nt, params, W, H, EEVEE)
    assert nt.get_path(group) == ("LOOP" if LOOP else "BAKED"), nt.path_note(group)
    with quiet_stdout():
        image, render_s = render_display(scene)
    error = eevee_error(image, engine_display(params, W / H, W, H), group)
    print(f"\nEEVEE {bpy.app.version_string} N={count}: {nt.get_path(group)}, build {build_s:.2f} s, "
          f"render {render_s:.2f} s, error {error:.3f}/255")  # fmt: skip
    assert error <= TOLERANCE and image.std() > 0.03


def test_culled_paths_agree_with_unculled():
    """Per-tile lists change nothing but the cost: OSL and the EEVEE loop, culled against one list of all."""
    culled, group = _render_path(256, "CYCLES", "OSL", seed=3)
    assert "of 256 wavelets per point" in nt.path_note(group)
    unculled, group = _render_path(256, "CYCLES", "OSL", seed=3, culled=False)
    assert "not culled" in nt.path_note(group)
    assert max_error_255(culled, unculled) <= 0.25
    if LOOP:
        culled, _ = _render_path(256, EEVEE, "LOOP", seed=3)
        unculled, _ = _render_path(256, EEVEE, "LOOP", seed=3, culled=False)
        assert max_error_255(culled, unculled) <= 0.25


@pytest.mark.slow
@pytest.mark.parametrize("engine, path", [("CYCLES", "NODES"), (EEVEE, "LOOP")])
def test_paths_at_4096_match_engine(engine, path):
    """4096 fit-like wavelets: the unrolled Cycles group ~1 min, the EEVEE loop ~20 s here (the automatic EEVEE
    path at 4096 and 16384 runs in make test: test_large_fits_render_in_eevee_on_the_automatic_path)."""
    if path == "LOOP" and not LOOP:
        pytest.skip("shader repeat zones need Blender 5.0")
    _render_path(4096, engine, path)


def test_controls_reach_the_culled_paths():
    """Scale and Rotation Offset change the supports: the lists are rebuilt for them (and the loop, OSL and
    the bake follow a socket edit of a control)."""
    params = _field(256, seed=5)
    controls = {"Phase Shift": 0.7, "Rotation Offset": -0.4, "Scale": 1.6, "Frequency Multiplier": 0.8,
                "Amplitude Multiplier": 1.3, "Offset": 0.05}  # fmt: skip
    reference = engine_display(params, W / H, W, H, resynth.Controls.from_sockets(controls))
    for engine, path in [("CYCLES", "OSL"), ("CYCLES", "BAKED")] + ([(EEVEE, "LOOP")] if LOOP else []):
        scene, group, plane, _ = preview_scene(nt, params, W, H, engine, path=path)
        node = plane.data.materials[0].node_tree.nodes["ImFit"]
        for name, value in controls.items():
            node.inputs[name].default_value = value
        nt.refresh(group, scene)  # what the depsgraph handler does after the edit
        with quiet_stdout():
            image, _ = render_display(scene)
        error = max_error_255(image, reference)
        print(f"\n{path} with controls: error {error:.3f}/255")
        assert error <= TOLERANCE, path


# ----------------------------------------------------------------------------------------
# the choice of path, on every version in the support matrix


@pytest.mark.parametrize("version", [(4, 2, 0), (4, 5, 0), (5, 0, 1)])
def test_every_choice_fits_eevee(version):
    """Whatever the engine, size and override, no chosen path gives EEVEE a material past its uniform block
    on 4.2-4.5 (it may crash Blender there); the node path is never chosen past Cycles' checked count."""
    for engine in ("CYCLES", EEVEE, "BLENDER_WORKBENCH"):
        for count in (1, 16, 100, 160, 200, 256, 1000, 4096, 16384):
            for override, _, _ in paths.OVERRIDE_ITEMS:
                for osl in (True, False):
                    choice = paths.choose(engine, count, version, override=override, osl_available=osl)
                    assert choice.path in paths.PATHS and choice.note
                    if choice.path == "NODES" and version < (5, 0, 0):
                        assert count * paths.BYTES_PER_WAVELET["4.x"][choice.body] <= paths.UBO_BUDGET, choice
                    if choice.path == "LOOP":
                        assert version >= (5, 0, 0) and paths.engine_kind(engine) != "CYCLES"
                    if choice.path == "OSL":
                        assert engine == "CYCLES" and osl
    # the automatic choices the README's table gives
    assert paths.choose(EEVEE, 4096, (4, 2, 0)).path == "BAKED"
    assert paths.choose(EEVEE, 4096, (5, 0, 1)).path == "LOOP"
    assert paths.choose("CYCLES", 4096, (4, 2, 0)).path == "OSL"
    assert paths.choose("CYCLES", 4096, (5, 0, 1), osl_available=False).path == "NODES"
    assert paths.choose("CYCLES", 16, (4, 5, 0)).path == "NODES"
    assert "crash" in paths.choose(EEVEE, 512, (4, 2, 0), override="NODES").note


# ----------------------------------------------------------------------------------------
# the extension: handlers, Bake, Import


def _plane_scene(ext, count, engine, seed=0, animated=False):
    """A scene with a fitted-looking group (stored fit, plane, camera) of ``count`` wavelets."""
    addon = ext.addon
    scene = bpy.context.scene
    scene.render.engine = engine
    params = _field(count, seed)
    ws = package_module("imfit_engine.core.model").WaveletSet(params, W, H, {"source": {"name": "field.png"}})
    addon.nodes.stored.store("field.png", package_module("imfit_engine.io.formats").to_json_text(ws))
    group, plane = addon.nodes.stored.build_nodes(scene, "field.png", ws, create_plane=True)
    addon.nodes.scene.add_camera_framing(scene, W, H, addon.nodes.plane.PLANE_HEIGHT)
    addon.nodes.scene.setup_render(scene, engine, W, H)
    return scene, group, plane, params


def test_engine_switch_changes_path_and_stays_exact(ext):
    """300 wavelets: Cycles takes the culled OSL path; switching the scene to EEVEE (the handler) takes the loop
    on 5.0 and the baked image on 4.2-4.5, never an unrolled material past EEVEE's uniform block."""
    scene, group, _, params = _plane_scene(ext, 300, "CYCLES", seed=2)
    assert nt.get_path(group) == "OSL" and scene.cycles.shading_system
    ext.addon.nodes.scene.setup_render(scene, EEVEE, W, H)  # the engine, and EEVEE's exact pixel sampling
    bpy.context.view_layer.update()  # the depsgraph handler runs
    assert ext.addon.nodes.group.get_path(group) == ("LOOP" if LOOP else "BAKED")
    assert not scene.cycles.shading_system  # the add-on turned OSL on, so it turns it off again
    with quiet_stdout():
        image, _ = render_display(scene)
    assert eevee_error(image, engine_display(params, W / H, W, H), group) <= TOLERANCE


def test_only_groups_that_change_with_the_frame_follow_it(ext):
    """Playback refreshes a group only when keyed wavelets or a user's keyed control change its field."""
    _, group, plane, params = _plane_scene(ext, 16, "CYCLES", seed=12)
    assert not nt.follows_frames(group)
    shift = plane.data.materials[0].node_tree.nodes["ImFit"].inputs["Phase Shift"]
    shift.keyframe_insert("default_value", frame=1)
    assert nt.follows_frames(group)  # a keyed control on the plane's material
    plane.data.materials[0].node_tree.animation_data_clear()
    assert not nt.follows_frames(group)
    ext.addon.nodes.keyframes.keyframe_wavelets(group, np.stack([params, _field(16, 14)]), [1, 5], "LINEAR")
    assert nt.follows_frames(group)  # keyed wavelets


def test_bake_still_and_toggle(ext, tmp_path):
    scene, group, _, params = _plane_scene(ext, 64, "CYCLES", seed=4)
    node_tree = ext.addon.nodes.group
    node_tree.set_override(group, "BAKED", scene)  # showing the add-on's own bake (as EEVEE on 4.2-4.5 does)
    shown = group.nodes[ext.addon.nodes.baked.NODE]
    assert shown.image.name == f".{group.name} auto"
    assert bpy.ops.imfit.bake(image="field.png", size=96, folder=str(tmp_path)) == {"FINISHED"}
    assert node_tree.get_path(group) == "BAKED"
    image = bpy.data.images[f"{group.name} baked"]
    assert group.nodes[ext.addon.nodes.baked.NODE].image == image  # the user's bake replaces the auto one
    assert tuple(image.size) == (96, 72) and image.source == "FILE"
    files = sorted(os.listdir(tmp_path / "ImFit_field.png"))
    assert files == ["ImFit_field.png.bake.json", "ImFit_field.png.png"]
    baked = read_png16(tmp_path / "ImFit_field.png" / "ImFit_field.png.png")
    assert max_error_255(baked, engine_display(params, W / H, 96, 72)) <= 0.01  # 16-bit: the engine's image
    assert bpy.ops.imfit.use_baked(image="field.png") == {"FINISHED"}
    assert node_tree.get_path(group) == "NODES"  # back to the automatic path (64 wavelets in Cycles)
    assert bpy.ops.imfit.use_baked(image="field.png") == {"FINISHED"}
    assert node_tree.get_path(group) == "BAKED"
    scene.render.resolution_x, scene.render.resolution_y = 96, 72
    with quiet_stdout():
        shown, _ = render_display(scene)
    assert max_error_255(shown, baked) <= 0.5  # the group shows the bake, texel for pixel


def test_bake_animated_group_follows_keys_and_controls(ext, tmp_path):
    """An animated group bakes a frame per scene frame; frames 1 and 2 (between keys, a keyed control) equal the
    engine's render of the animated values; baking again keeps every frame; the group shows the sequence."""
    scene, group, plane, first = _plane_scene(ext, 32, "CYCLES", seed=6)
    second = _field(32, seed=7)
    ext.addon.nodes.keyframes.keyframe_wavelets(group, np.stack([first, second]), [1, 3], "LINEAR")
    shift = plane.data.materials[0].node_tree.nodes["ImFit"].inputs["Phase Shift"]
    for frame, value in ((1, 0.0), (3, math.pi)):
        shift.default_value = value
        shift.keyframe_insert("default_value", frame=frame)
    scene.frame_start, scene.frame_end = 1, 3
    assert bpy.ops.imfit.bake(image="field.png", size=W, folder=str(tmp_path)) == {"FINISHED"}
    out = tmp_path / "ImFit_field.png"
    middle = 0.5 * (first.astype(np.float64) + second)  # LINEAR keys, halfway at frame 2
    for frame, params, phase in ((1, first, 0.0), (2, middle, 0.5 * math.pi)):
        baked = read_png16(out / f"ImFit_field.png_{frame:04d}.png")
        reference = engine_display(params, W / H, W, H, resynth.Controls(phase_shift=phase))
        error = max_error_255(baked, reference)
        print(f"\nbaked frame {frame}: error {error:.4f}/255")
        assert error <= 0.05
    image = bpy.data.images[f"{group.name} baked"]
    assert image.source == "SEQUENCE" and tuple(image["imfit_frames"]) == (1, 3)
    job = ext.addon.jobs.fit.active_job()
    assert job.resumed == 0
    assert bpy.ops.imfit.bake(image="field.png", size=W, folder=str(tmp_path)) == {"FINISHED"}
    assert ext.addon.jobs.fit.active_job().resumed == 3  # nothing changed: every frame kept
    with quiet_stdout():
        shown, _ = render_display(scene, 2)
    assert max_error_255(shown, read_png16(out / "ImFit_field.png_0002.png")) <= 0.5


def test_bake_cancel_keeps_frames_and_resumes(ext, tmp_path):
    scene, group, _, first = _plane_scene(ext, 16, "CYCLES", seed=8)
    ext.addon.nodes.keyframes.keyframe_wavelets(group, np.stack([first, _field(16, 9)]), [1, 200], "LINEAR")
    scene.frame_start, scene.frame_end = 1, 200
    addon = ext.addon
    python, env = addon.jobs.interpreter.engine_python(addon.ui.pref.get_preferences())
    folder = str(tmp_path / "out")
    job = addon.jobs.bake.BakeJob(
        scene, group, size=(32, 24), frames=list(range(1, 201)), folder=folder, python=python, env=env
    ).start()
    while job.tick(timeout=0.5) and job.frames_done < 2:
        pass
    job.request_stop()
    job.run_to_end()
    assert job.result is not None and job.result["stopped"]
    kept = job.result["frames"]
    assert 2 <= kept < 200
    assert addon.nodes.group.get_path(group) != "BAKED"  # a partial sequence is not shown
    again = addon.jobs.bake.BakeJob(
        scene, group, size=(32, 24), frames=list(range(1, 11)), folder=folder, python=python, env=env
    )
    again.start().run_to_end()
    assert again.error is None and again.resumed == min(kept, 10)


def _group_values(ext, image_name):
    group = ext.addon.nodes.stored.find_group(image_name)
    return group, ext.addon.nodes.group.read_wavelet_values(group)


def test_import_json_and_txt_give_the_group_a_fit_gives(ext, tmp_path):
    name = bpy.data.images.load(str(DATA / "astronaut.png")).name  # the image goes with the file, its name stays
    assert bpy.ops.imfit.fit(image=name, num_wavelets=16, size=32, iterations=10) == {"FINISHED"}
    fitted, values = _group_values(ext, name)
    path_json, path_txt = tmp_path / "fit.json", tmp_path / "fit.txt"
    assert bpy.ops.imfit.export_json(image=name, filepath=str(path_json)) == {"FINISHED"}
    assert bpy.ops.imfit.export_txt(image=name, filepath=str(path_txt)) == {"FINISHED"}
    stored_json = ext.addon.nodes.stored.find_text(name).as_string()
    interface = [(s.name, s.in_out) for s in fitted.interface.items_tree]

    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.imfit.import_fit(filepath=str(path_json)) == {"FINISHED"}
    group, imported = _group_values(ext, name)  # the file records the image's name
    assert group.name == f"ImFit {name}" and int(group["imfit_count"]) == 16
    assert [(s.name, s.in_out) for s in group.interface.items_tree] == interface
    np.testing.assert_array_equal(imported, values)
    assert ext.addon.nodes.stored.find_text(name).as_string() == stored_json
    assert bpy.context.scene.objects.get(group.name) is not None  # the plane, as after Fit
    assert bpy.context.scene.imfit.result_wavelets == 16

    bpy.ops.wm.read_homefile(use_empty=True)
    with pytest.raises(RuntimeError, match="stores no image size: give the width and height"):
        bpy.ops.imfit.import_fit(filepath=str(path_txt))  # a .txt needs its size (a report, the operator cancels)
    metrics = ext.addon.engine.formats.parse_json_text(stored_json, "fit").meta["metrics"]
    size = dict(width=metrics["train_width"], height=metrics["train_height"])
    assert bpy.ops.imfit.import_fit(filepath=str(path_txt), name=name, **size) == {"FINISHED"}
    group, imported = _group_values(ext, name)
    assert [(s.name, s.in_out) for s in group.interface.items_tree] == interface
    # the group holds what the file holds ...
    from_file = ext.addon.engine.formats.load_params(str(path_txt), **size).params
    np.testing.assert_allclose(imported, from_file, atol=1e-6)
    # ... which is the fit, to 6 decimals in torch-imfit units, except values past the ranges torch-imfit clamps
    # to (the export clamps them and warns: a centre a little off the image here and there)
    same = np.isclose(imported[:, :6], values[:, :6], atol=2e-5).all(axis=1)
    same &= np.isclose(np.cos(imported[:, 6:9] - values[:, 6:9]), 1.0, atol=1e-8).all(axis=1)
    same &= np.isclose(imported[:, 9:], values[:, 9:], atol=2e-6).all(axis=1)
    assert same.sum() >= len(same) - 2, np.flatnonzero(~same)
