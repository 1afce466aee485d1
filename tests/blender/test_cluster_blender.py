"""The Blender batch command on Ray: ``blender -b -c gabor_imfit fit shot/ --ray ... --blend out.blend``.

The batch entry passes ``--ray`` through to the engine CLI (a local Ray here, started and stopped by the
engine process), then keys the node group in Blender from the frame files; the keys must equal those of a
one-machine batch run of the same clip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from support import DATA

bpy = pytest.importorskip("bpy")
pytest.importorskip("ray")

CLIP = DATA / "clip"
ENGINE = [
    "--num-gabors",
    "16",
    "--size",
    "32",
    "--iterations",
    "20",
    "--rescales",
    "1",
    "--keyframes",
    "4",
    "--device",
    "cpu",
]


def test_batch_fits_on_ray_then_keys_locally(ext, tmp_path, capsys, monkeypatch):
    batch, nt = ext.addon.batch, ext.addon.nodes.group
    # one torch thread in the one-machine engine, as in a Ray task holding 1 CPU: bit-for-bit needs equal counts
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert batch.main(["fit", str(CLIP), *ENGINE, "--output-dir", str(tmp_path / "one"), "--name", "one"]) == 0
    capsys.readouterr()

    blend = tmp_path / "ray.blend"
    assert (
        batch.main(
            [
                "fit",
                str(CLIP),
                *ENGINE,
                "--ray",
                "--ray-cpus",
                "1",
                "--output-dir",
                str(tmp_path / "ray"),
                "--name",
                "ray",
                "--blend",
                str(blend),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "(12 fitted now)" in printed and "fitted per node" in printed and "flicker" in printed
    assert "keyed 12 frames (1-12) on node group 'ImFit ray'" in printed and blend.is_file()
    (summary_path,) = (tmp_path / "ray" / "ray-runs").glob("*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "finished" and len(summary["tasks"]) == 3 and summary["address"] == "local"

    one, on_ray = bpy.data.node_groups["ImFit one"], bpy.data.node_groups["ImFit ray"]
    for frame in range(1, 13):
        np.testing.assert_array_equal(
            nt.animated_values(on_ray, frame), nt.animated_values(one, frame), err_msg=f"frame {frame}"
        )
