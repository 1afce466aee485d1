"""Sequences in Blender: the Fit Sequence operator (image sequence and movie) and the headless batch entry.

Real bpy, real worker and engine processes, the shipped 12-frame clip (tests/data/clip) and the
movie it came from (tests/data/realshort.mp4).  Keyed groups are rendered by Cycles at two frames
and compared with the engine's own renders of those frames' parameters.
"""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_util import max_error_255, read_png16, reference_display, render_display
from imfit_engine.io import formats
from support import DATA

CLIP = DATA / "clip"
MOVIE = DATA / "realshort.mp4"
TINY = dict(num_wavelets=16, size=48, iterations=10)
ENGINE_TINY = ["--num-gabors", "16", "--size", "48", "--iterations", "10", "--keyframes", "4", "--device", "cpu"]
TOLERANCE = 2.0  # 1/255 steps, display space
COMPONENTS = 12  # keyed values per wavelet: one per canonical column


def keyed_frames(ext, group) -> tuple[int, set]:
    """(number of F-curves, the set of keyed frames of each) over the group's chunks."""
    chunks = ext.addon.nodes.group.chunk_groups(group)
    fcurves = [fc for chunk in chunks for fc in ext.addon.nodes.animation.fcurves_of(chunk)]
    return len(fcurves), {tuple(round(kp.co[0]) for kp in fc.keyframe_points) for fc in fcurves}


def render_frames(ext, scene, frames, width=64, height=48):
    """Cycles renders of ``scene`` at ``frames``, framed exactly (a camera is added if missing)."""
    setup = ext.addon.nodes.scene
    if scene.camera is None:
        setup.add_camera_framing(scene, width, height, ext.addon.nodes.plane.PLANE_HEIGHT)
    setup.setup_render(scene, "CYCLES", width, height)
    return {f: render_display(scene, f)[0] for f in frames}


def test_fit_sequence_keys_every_frame_and_renders_them(ext):
    image = bpy.data.images.load(str(CLIP / "realshort_0001.png"))
    image.source = "SEQUENCE"
    assert bpy.ops.imfit.fit_sequence(image=image.name, keyframe_interval=4, **TINY) == {"FINISHED"}

    settings = bpy.context.scene.imfit
    assert settings.result_frames == 12 and settings.result_wavelets == 16
    assert 16.0 < settings.result_psnr < 60.0 and 0.0 < settings.result_flicker < 30.0
    group = bpy.data.node_groups["ImFit realshort_0001.png"]
    assert tuple(group["imfit_frames"]) == (1, 12)
    count, keys = keyed_frames(ext, group)
    assert count == 16 * COMPONENTS and keys == {tuple(range(1, 13))}

    nt, scene = ext.addon.nodes.group, bpy.context.scene
    values = {f: nt.animated_values(group, f) for f in (3, 10)}
    assert np.abs(values[3] - values[10]).max() > 1e-3  # the clip moves: so do the wavelets
    images = render_frames(ext, scene, values)
    for frame, params in values.items():
        reference = reference_display(params, 4 / 3, 64, 48)
        error = max_error_255(images[frame], reference)
        print(f"\nframe {frame}: Cycles against the engine, max error {error:.3f}/255")
        assert error <= TOLERANCE
    # linear keys: halfway between two frames is the mean of their values
    half = nt.animated_values(group, 3.5)
    assert np.allclose(half, (nt.animated_values(group, 3) + nt.animated_values(group, 4)) / 2, atol=1e-5)


def test_movie_frames_come_from_its_image_user(ext):
    movie = bpy.data.images.load(str(MOVIE))
    assert movie.source == "MOVIE" and movie.frame_duration == 36
    decoder = ext.addon.jobs.sequence.MovieFrames(movie)
    try:  # the decoded frames are the right ones: each matches its shipped copy best
        shipped = [read_png16(CLIP / f"realshort_{k:04d}.png") for k in range(1, 13)]
        for number in (2, 9):
            rgb = decoder.rgb(number).reshape(48, 5, 64, 5, 3).mean(axis=(1, 3))
            errors = [np.abs(rgb - s).mean() * 255 for s in shipped]
            assert int(np.argmin(errors)) + 1 == number and min(errors) < 3.0, errors
    finally:
        decoder.close()

    material = bpy.data.materials.new("uses the movie")
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = movie
    user = node.image_user
    user.frame_start, user.frame_duration, user.frame_offset = 20, 3, 4  # scene 20..22 show movie frames 5..7
    assert ext.addon.jobs.sequence.image_frames(movie) == [(20, 5), (21, 6), (22, 7)]
    assert bpy.ops.imfit.fit_sequence(image=movie.name, keyframe_interval=2, interpolation="CONSTANT", **TINY) == {
        "FINISHED"
    }
    group = bpy.data.node_groups["ImFit realshort.mp4"]
    count, keys = keyed_frames(ext, group)
    assert count == 16 * COMPONENTS and keys == {(20, 21, 22)}
    nt = ext.addon.nodes.group
    assert np.array_equal(nt.animated_values(group, 20.7), nt.animated_values(group, 20))  # constant keys

    with pytest.raises(RuntimeError, match="select none"):
        bpy.ops.imfit.fit_sequence(image=movie.name, frames="40-50", **TINY)
    still = bpy.data.images.load(str(DATA / "coffee.png"))
    with pytest.raises(RuntimeError, match="not a sequence or movie"):
        bpy.ops.imfit.fit_sequence(image=still.name, **TINY)


def test_cancel_keeps_the_finished_frames_keyed(ext):
    image = bpy.data.images.load(str(CLIP / "realshort_0001.png"))
    image.source = "SEQUENCE"
    addon, scene = ext.addon, bpy.context.scene
    config = scene.imfit.fit_config(bpy.context, num_wavelets=16, size=48, iterations=150, rescales=0)
    job = addon.jobs.sequence.SequenceJob(
        scene,
        image,
        None,
        config,
        keyframe_interval=1,
        interpolation="LINEAR",
        python=sys.executable,
        env=addon.jobs.interpreter.worker_environment([]),
        create_plane=False,
    ).start()
    while job.frames_done < 2:
        assert job.tick(timeout=0.5), job.error
    assert job.status.startswith("Frame ") and "/12: Level" in job.status, job.status
    job.request_stop()
    job.run_to_end()
    assert job.error is None and job.result["stopped"], job.error
    done = job.result["frames"]
    assert 2 <= done < 12 and "finished frames are kept" in job.summary()
    _, keys = keyed_frames(ext, bpy.data.node_groups["ImFit realshort_0001.png"])
    assert keys == {tuple(range(1, done + 1))}


@pytest.mark.parametrize("interpolation", ["BEZIER", "CONSTANT"])
def test_bulk_keys_equal_keys_inserted_one_by_one(ext, interpolation):
    from blender_util import realistic_params

    nt = ext.addon.nodes.group
    stack = np.stack([realistic_params(8, 1.5, 32, seed=s) for s in range(4)])
    frames = [1, 2, 5, 9]
    bulk, single = (nt.build_wavelet_group(name, stack[0], 1.5) for name in ("bulk", "single"))
    ext.addon.nodes.keyframes.keyframe_wavelets(bulk, stack, frames, interpolation)
    for frame, params in zip(frames, stack):
        ext.addon.nodes.keyframes.keyframe_wavelets(single, params, frame, interpolation)
    for t in np.linspace(0, 10, 41):
        assert np.array_equal(nt.animated_values(bulk, t), nt.animated_values(single, t)), t
    assert np.array_equal(nt.animated_values(bulk, 5), stack[2])


# ----------------------------------------------------------------------------------------
# the batch entry


@pytest.fixture(scope="module")
def one_run(imfit_extension, tmp_path_factory):
    """The whole clip through the batch entry, uninterrupted, saved as a .blend."""
    out = tmp_path_factory.mktemp("batch")
    bpy.ops.wm.read_homefile(use_empty=True)
    code = imfit_extension.addon.batch.main(
        [
            "fit",
            str(CLIP),
            *ENGINE_TINY,
            "--output-dir",
            str(out / "frames"),
            "--blend",
            str(out / "clip.blend"),
            "--camera",
        ]
    )
    assert code == 0
    return out


def frame_params(folder, number):
    return formats.load_json(Path(folder) / f"realshort_{number:04d}.json").params


def group_values(ext, name, frames=range(1, 13)):
    group = bpy.data.node_groups[name]
    return {f: ext.addon.nodes.group.animated_values(group, f) for f in frames}


def test_batch_fit_saves_a_keyed_file_that_renders_the_engines_frames(ext, one_run):
    bpy.ops.wm.open_mainfile(filepath=str(one_run / "clip.blend"))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 12)
    group = bpy.data.node_groups["ImFit realshort"]
    count, keys = keyed_frames(ext, group)
    assert count == 16 * COMPONENTS and keys == {tuple(range(1, 13))}
    images = {f: render_display(scene, f)[0] for f in (2, 9)}  # the saved camera and render settings
    for frame, image in images.items():
        reference = reference_display(frame_params(one_run / "frames", frame), 4 / 3, 64, 48)
        assert max_error_255(image, reference) <= TOLERANCE, frame


def test_batch_progress_lines_resume_and_shards(ext, one_run, tmp_path, capsys):
    batch = ext.addon.batch
    bpy.ops.wm.open_mainfile(filepath=str(one_run / "clip.blend"))
    expected = group_values(ext, "ImFit realshort")
    bpy.ops.wm.read_homefile(use_empty=True)

    # resume: a run killed after frame 5 left frames 1-5 and a temp file of frame 6
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for k in range(1, 6):
        shutil.copy(one_run / "frames" / f"realshort_{k:04d}.json", resumed)
    (resumed / ".realshort_0006-k1ll3d.json").write_text('{"half": ')
    capsys.readouterr()
    assert batch.main(["fit", str(CLIP), *ENGINE_TINY, "--output-dir", str(resumed), "--name", "resumed"]) == 0
    out = capsys.readouterr().out
    assert out.count("found finished, kept") == 5 and "frame 12 (12/12, warm)" in out, out
    assert "flicker" in out and "keyed 12 frames (1-12) on node group 'ImFit resumed'" in out
    got = group_values(ext, "ImFit resumed")
    for frame in expected:
        np.testing.assert_array_equal(got[frame], expected[frame], err_msg=f"frame {frame}")

    # two shards, then merge: the same keys as one run
    shards = [tmp_path / "shard1", tmp_path / "shard2"]
    assert batch.main(["fit", str(CLIP), *ENGINE_TINY, "--frames", "1-7", "--output-dir", str(shards[0])]) == 0
    assert batch.main(["fit", str(CLIP), *ENGINE_TINY, "--frames", "8-12", "--output-dir", str(shards[1])]) == 0
    merged_blend = tmp_path / "merged.blend"
    assert batch.main(["merge", *map(str, shards), "--name", "merged", "--blend", str(merged_blend)]) == 0
    got = group_values(ext, "ImFit merged")
    for frame in expected:
        np.testing.assert_array_equal(got[frame], expected[frame], err_msg=f"frame {frame}")
    assert merged_blend.is_file()


def test_batch_script_entry_and_errors(ext, one_run, tmp_path, capsys, monkeypatch):
    batch = ext.addon.batch
    assert batch._handle is not None  # blender -c gabor_imfit is registered
    script = Path(batch.__file__)
    blend = tmp_path / "script.blend"
    monkeypatch.setattr(
        sys,
        "argv",
        ["blender", "-b", "--python", str(script), "--", "merge", str(one_run / "frames"), "--blend", str(blend)],
    )
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0 and blend.is_file()

    capsys.readouterr()
    assert batch.main(["fit", str(tmp_path / "nothing-here")]) == 2
    assert batch.main(["fit", "--size", "32"]) == 2
    assert batch.main(["merge", str(tmp_path)]) == 2
    assert batch.main(["fit", str(CLIP), "--num-gabors", "zero", "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "nothing-here does not exist" in err and "fit PATH [options]" in err
    assert "no sequence frames" in err and "--num-gabors: invalid int value" in err
