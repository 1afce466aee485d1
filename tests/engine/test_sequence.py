"""Image sequences in the engine: warm start against flicker, resume after a real kill, shards, identity.

The clip is 12 frames of a real hand-held shot (tests/data/clip, from imageio's realshort.mp4);
fits are tiny (16 wavelets, 40 px) so the whole file takes seconds.
"""

import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from imfit_engine import sequence
from imfit_engine.core.fit import FitConfig
from imfit_engine.core.model import PHASE, THETA
from imfit_engine.core.render import render_reference
from imfit_engine.errors import ImfitError
from imfit_engine.io import formats
from support import DATA, REPO

CLIP = DATA / "clip"
CONFIG = FitConfig(num_wavelets=16, size=40, iterations=10, device="cpu")
K = 4  # keyframes at frames 1, 5, 9


def run(out, keyframes=K, **kwargs):
    return sequence.fit_sequence(sequence.folder_frames(CLIP), CONFIG, out, keyframes, preview=False, **kwargs)


def params_by_frame(folders):
    return {f.number: formats.load_json(f.path).params for f in sequence.collect(folders)}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One uninterrupted run over the clip: the reference for resume and shards."""
    out = tmp_path_factory.mktemp("whole")
    return out, run(out)


def test_frames_are_numbered_by_their_file_names(tmp_path):
    frames = sequence.folder_frames(CLIP)
    assert [f.number for f in frames] == list(range(1, 13))
    assert frames[0].name == "realshort_0001"
    assert sequence.parse_range("3-7") == (3, 7) and sequence.parse_range(" 5 ") == (5, 5)
    for bad in ("7-3", "a-b", "", "1-2-3"):
        with pytest.raises(ImfitError):
            sequence.parse_range(bad)
    with pytest.raises(ImfitError, match="select none"):
        run(tmp_path, select=(40, 50))


def test_keyframes_warm_frames_and_records(whole):
    out, result = whole
    assert [f.number for f in result.frames] == list(range(1, 13))
    assert [f.keyframe for f in result.frames] == [k % K == 0 for k in range(12)]
    record = formats.load_json(out / "realshort_0006.json").meta["metrics"][sequence.META_KEY]
    assert record == {
        "frame": 6,
        "position": 5,
        "keyframe": False,
        "segment": 4,
        "keyframe_interval": K,
        "warm_from": 5,
    }
    settings = formats.load_json(out / "realshort_0006.json").meta["settings"]
    assert settings["seed"] == CONFIG.seed + 6 and settings["rescales"] == 0  # warm frames continue at full size
    assert all(f.psnr > 18 for f in result.frames)


def test_warm_start_lowers_flicker_against_independent_fits(whole, tmp_path):
    warm = whole[1].flicker
    independent = run(tmp_path, keyframes=1).flicker  # every frame a cold keyframe
    print(f"\nwarm start (keyframe every {K}): {warm.describe()}\nindependent fits: {independent.describe()}")
    assert warm.pairs == independent.pairs == 11
    assert math.isclose(warm.source_change, independent.source_change)
    assert warm.flicker < 0.6 * independent.flicker
    assert warm.fit_change < independent.fit_change


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from imfit_engine import sequence
    from imfit_engine.core.fit import FitConfig

    def die_in_frame_6(frame, progress):
        if frame.number == 6 and progress.iteration >= 3:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind: a real kill

    sequence.fit_sequence(sequence.folder_frames(sys.argv[1]),
                          FitConfig(num_wavelets=16, size=40, iterations=10, device="cpu"), sys.argv[2], 4,
                          preview=False, on_progress=die_in_frame_6)
""")


def test_resume_after_a_kill_matches_an_uninterrupted_run(whole, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(CLIP), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [f"realshort_{k:04d}.json" for k in range(1, 6)]

    resumed = run(tmp_path)
    assert [f.resumed for f in resumed.frames] == [True] * 5 + [False] * 7
    expected, got = params_by_frame([whole[0]]), params_by_frame([tmp_path])
    assert sorted(got) == list(range(1, 13))
    for number in expected:
        np.testing.assert_array_equal(got[number], expected[number], err_msg=f"frame {number}")


def test_two_shards_merged_equal_one_run(whole, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    run(first, select=(1, 6))
    shard = run(second, select=(7, 12))  # 7 is inside the segment 5-8: 5 and 6 are fitted again, not written
    assert [f.number for f in shard.frames] == list(range(7, 13))
    assert not (second / "realshort_0006.json").exists()
    expected, merged = params_by_frame([whole[0]]), params_by_frame([first, second])
    assert sorted(merged) == list(range(1, 13))
    for number in expected:
        np.testing.assert_array_equal(merged[number], expected[number], err_msg=f"frame {number}")
    assert [n for n, _ in sequence.aligned_frames(sequence.collect([second, first]))] == list(range(1, 13))


def test_resume_refuses_frames_of_another_run(whole, tmp_path):
    (tmp_path / "realshort_0001.json").write_text((whole[0] / "realshort_0001.json").read_text())
    with pytest.raises(ImfitError, match="another run"):
        run(tmp_path, keyframes=3)


def test_merge_refuses_different_runs(whole, tmp_path):
    run(tmp_path, select=(1, 2), keyframes=2)
    with pytest.raises(ImfitError, match="different runs"):
        sequence.collect([whole[0], tmp_path])


def _image(params, aspect=4 / 3):
    with torch.no_grad():
        return render_reference(torch.as_tensor(params, dtype=torch.float64), aspect, 32, 24).numpy()


def test_alignment_recovers_identity_and_keeps_every_frame_the_same_picture(whole):
    p = formats.load_json(whole[0] / "realshort_0004.json").params.astype(np.float64)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(p))
    nudged = p[shuffled].copy()
    nudged[:, :2] += rng.normal(0, 0.002, (len(p), 2))
    order = sequence.match_rows(p, nudged, 4 / 3)
    assert np.array_equal(shuffled[order], np.arange(len(p)))

    # half a turn with the phases negated, and phases moved by whole turns, are the same picture
    k = rng.integers(-2, 3, len(p)).astype(float)
    turned = sequence._half_turn(p, k)
    turned[:, PHASE] = sequence._unwrap(turned[:, PHASE] + 2 * np.pi * 3, p[:, PHASE] + 0.1)
    assert np.abs(_image(turned) - _image(p)).max() < 1e-9

    frames = list(sequence.aligned_frames(sequence.collect([whole[0]])))
    for number, ws in frames:
        raw = formats.load_json(whole[0] / f"realshort_{number:04d}.json").params
        assert np.abs(_image(ws.params) - _image(raw)).max() < 1e-4, number
    # across the cold keyframe at frame 5 the matched wavelets continue: rotations within a quarter turn
    before, after = frames[3][1].params, frames[4][1].params
    assert np.abs(after[:, THETA] - before[:, THETA]).max() <= np.pi / 2 + 1e-6
    assert np.abs(after[:, PHASE] - before[:, PHASE]).max() <= np.pi + 1e-6


def test_cli_frames_option_errors(tmp_path, capsys):
    from imfit_engine.cli import main

    fast = ["--num-gabors", "4", "--size", "16", "--iterations", "2", "--output-dir", str(tmp_path)]
    assert main(["fit", str(CLIP / "realshort_0001.png"), "--frames", "1-2", *fast]) == 2
    assert main(["fit", str(CLIP), "--mode", "video", "--frames", "9-3", *fast]) == 2
    assert main(["fit", str(CLIP), "--mode", "video", "--frames", "40-50", *fast]) == 2
    err = capsys.readouterr().err
    assert "use it with --mode video or vm" in err and "ends before it starts" in err and "select none" in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())
