"""Sequence and folder fits on a real Ray cluster: 3 nodes on this machine (ray.cluster_utils), 1 CPU each.

What is checked: the shipped 12-frame clip (keyframes every 4: three tasks) gives the one machine's files
(every byte of each JSON but its ``metrics.seconds`` line, previews byte for byte); a worker node removed
mid-run still gives every frame, identical, its task retried on another node resuming from the frames on
disk; a driver killed with SIGKILL and started again fits only the frames missing, leaving the finished
files untouched (same inode and mtime); a folder of 6 images spreads over all three nodes, each node's
share in the run summary.  Fits are tiny (16 wavelets, 32 px); every test stops its Ray processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from imfit_engine import cli, cluster
from imfit_engine.cli import main
from imfit_engine.cli.fit import config_from
from support import DATA, REPO

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the test clusters report nothing
CLIP = DATA / "clip"
TINY = ["--num-gabors", "16", "--size", "32", "--iterations", "40", "--rescales", "1", "--device", "cpu"]
VIDEO = ["--mode", "video", "--keyframes", "4", *TINY]
NAMES = [f"realshort_{k:04d}" for k in range(1, 13)]
SEGMENTS = [NAMES[0:4], NAMES[4:8], NAMES[8:12]]


def one_thread_run(argv):
    """The one-machine run at one torch thread: the thread count of a task with 1 CPU (a parallel sum
    adds in another order with another thread count, so bit-for-bit needs the same count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        assert main(argv) == 0
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory):
    out = tmp_path_factory.mktemp("one_machine")
    wall = one_thread_run(["fit", str(CLIP), *VIDEO, "--output-dir", str(out)])
    return out, wall


@pytest.fixture
def three_nodes():
    """A head and two worker nodes of 1 CPU each; every Ray process stopped afterwards, pass or fail."""
    nodes = Cluster()
    try:
        head = nodes.add_node(num_cpus=1)
        workers = [nodes.add_node(num_cpus=1) for _ in range(2)]
        nodes.wait_for_nodes()
        yield nodes, head, workers
    finally:
        ray.shutdown()
        nodes.shutdown()


def fit_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def without_timing(path):
    """A fit file's text without its one timing line (``"seconds": ...`` in metrics)."""
    lines = path.read_text().splitlines()
    timing = [line for line in lines if line.strip().startswith('"seconds":')]
    assert len(timing) == 1, path
    return [line for line in lines if line not in timing]


def assert_same_files(expected_dir, got_dir):
    """Same files; JSON equal byte for byte but the timing line, previews equal byte for byte."""
    assert fit_files(got_dir) == fit_files(expected_dir)
    for name in fit_files(expected_dir):
        expected, got = expected_dir / name, got_dir / name
        if name.endswith(".json"):
            assert without_timing(got) == without_timing(expected), name
            a, b = json.loads(expected.read_text()), json.loads(got.read_text())
            a["metrics"].pop("seconds"), b["metrics"].pop("seconds")
            assert a == b, name
        else:
            assert got.read_bytes() == expected.read_bytes(), name


def summaries(out):
    return [json.loads(p.read_text()) for p in sorted((out / cluster.SUMMARY_DIR).glob("*.json"))]


def file_ids(out, names):
    return {n: (os.stat(out / f"{n}.json").st_ino, os.stat(out / f"{n}.json").st_mtime_ns) for n in names}


def video_config():
    return config_from(cli.build_parser().parse_args(["fit", str(CLIP), *VIDEO]))


def test_clip_on_three_nodes_equals_one_machine(one_machine, three_nodes, tmp_path, capsys):
    nodes, _, _ = three_nodes
    reference, single_wall = one_machine
    out = tmp_path / "ray"
    capsys.readouterr()
    start = time.perf_counter()
    assert main(["fit", str(CLIP), *VIDEO, "--output-dir", str(out), "--ray", nodes.address]) == 0
    wall = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert_same_files(reference, out)

    (summary,) = summaries(out)
    assert summary["status"] == "finished" and summary["cluster"]["nodes"] == 3
    assert summary["task_resources"]["torch_threads"] == 1
    assert sorted(t["task"] for t in summary["tasks"]) == ["clip frames 1-4", "clip frames 5-8", "clip frames 9-12"]
    assert all(t["torch_threads"] == 1 for t in summary["tasks"])
    assert sorted(summary["frames"]["fitted"]) == NAMES and summary["frames"]["missing"] == []
    assert len(summary["nodes"]) == 3  # one keyframe interval per node
    assert sorted(n for node in summary["nodes"].values() for n in node["fitted"]) == NAMES
    for node in summary["nodes"].values():
        assert node["fitted"] in SEGMENTS
    # the closing line (mean PSNR, flicker) is one machine's
    closing = [line for line in printed.splitlines() if line.startswith(f"{CLIP}: 12 frames")]
    assert len(closing) == 1 and "(12 fitted now)" in closing[0] and "flicker" in closing[0]
    assert "fitted per node" in printed and all(f"{n} (" in printed for n in NAMES)
    print(
        f"\n12-frame clip: one machine (1 thread) {single_wall:.1f} s; 3 nodes x 1 CPU {wall:.1f} s "
        f"including connecting and worker start; tasks {[t['seconds'] for t in summary['tasks']]} s"
    )

    # started again: everything is found finished, no cluster needed (an address nobody listens on)
    assert main(["fit", str(CLIP), *VIDEO, "--output-dir", str(out), "--ray", "127.0.0.1:1"]) == 0
    assert "(0 fitted now)" in capsys.readouterr().out
    assert summaries(out)[-1]["frames"]["kept"] == NAMES


def test_a_node_lost_mid_run_is_retried_elsewhere(one_machine, three_nodes, tmp_path, monkeypatch):
    nodes, head, workers = three_nodes
    victim = workers[0]
    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.1)
    ray.init(address=nodes.address)
    # a warm worker (torch imported) on every node, so the three tasks start together and are mid-run together
    node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    warm = ray.remote(num_cpus=1)(
        lambda: __import__("imfit_engine.core.fit") and ray.get_runtime_context().get_node_id()
    )
    assert sorted(
        ray.get(
            [warm.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote() for n in node_ids]
        )
    ) == sorted(node_ids)

    out = tmp_path / "ray"
    plan = cluster.plan_sequences([(CLIP, None, out)], video_config(), 4, None, out)
    killed = {}

    def kill_when_every_task_is_mid_segment(finished):
        per_segment = [len(finished & set(s)) for s in SEGMENTS]
        if not killed and all(1 <= k < 4 for k in per_segment):
            killed["on_disk"] = file_ids(out, sorted(finished))
            nodes.remove_node(victim, allow_graceful=False)
            killed["per_segment"] = per_segment

    summary = cluster.run(plan, video_config(), address=nodes.address, on_poll=kill_when_every_task_is_mid_segment)
    assert killed, "the run ended before every task was mid-segment: nothing was killed"
    assert (
        summary["status"] == "finished" and sorted(summary["frames"]["fitted"] + summary["frames"]["resumed"]) == NAMES
    )
    assert_same_files(one_machine[0], out)
    # the lost node's task ran again elsewhere and kept the frames it had finished before the node died
    assert victim.unique_id not in summary["nodes"] and len(summary["tasks"]) == 3
    # (the lost node's worker may still finish a frame before it notices: the retry keeps that one too)
    retried = [t for t in summary["tasks"] if t["resumed"]]
    assert len(retried) == 1
    segment = next(s for s in SEGMENTS if set(retried[0]["resumed"]) <= set(s))
    assert set(killed["on_disk"]) & set(segment) <= set(retried[0]["resumed"])
    assert file_ids(out, killed["on_disk"]) == killed["on_disk"]  # not fitted again: same inode, same mtime
    print(
        f"\nnode removed with {killed['per_segment']} frames per segment on disk; the retry resumed "
        f"{retried[0]['resumed']}"
    )


def test_a_killed_driver_started_again_fits_only_what_is_missing(one_machine, three_nodes, tmp_path):
    nodes, _, _ = three_nodes
    out = tmp_path / "ray"
    argv = [
        sys.executable,
        "-m",
        "imfit_engine",
        "fit",
        str(CLIP),
        *VIDEO,
        "--output-dir",
        str(out),
        "--ray",
        nodes.address,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    log = tmp_path / "driver.log"
    with open(log, "wb") as stderr:
        driver = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            if len([n for n in NAMES if (out / f"{n}.json").is_file()]) >= 2:
                break
            time.sleep(0.05)
        assert driver.poll() is None, log.read_text()
        driver.send_signal(signal.SIGKILL)  # no clean-up of any kind
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    time.sleep(2)  # Ray ends the dead driver's tasks; a frame it was writing is either whole or absent
    before = file_ids(out, [n for n in NAMES if (out / f"{n}.json").is_file()])
    assert 2 <= len(before) < 12
    assert summaries(out) == []  # the killed driver wrote no summary

    assert main(["fit", str(CLIP), *VIDEO, "--output-dir", str(out), "--ray", nodes.address]) == 0
    (summary,) = summaries(out)
    frames = summary["frames"]
    assert summary["status"] == "finished" and frames["missing"] == []
    assert not set(frames["fitted"]) & set(before)  # nothing finished was fitted again
    assert set(before) <= set(frames["kept"]) | set(frames["resumed"])
    assert sorted(frames["kept"] + frames["resumed"] + frames["fitted"]) == NAMES
    assert file_ids(out, before) == before
    assert_same_files(one_machine[0], out)
    print(
        f"\ndriver killed with {len(before)} frames finished; the second run kept {len(frames['kept'])}, "
        f"resumed {len(frames['resumed'])} in tasks and fitted {len(frames['fitted'])}"
    )


def six_images(folder):
    """Six small real pictures: crops of the test photos, a different window each."""
    folder.mkdir()
    crops = [
        ("astronaut.png", (120, 40)),
        ("coffee.png", (200, 120)),
        ("chelsea.png", (140, 60)),
        ("brick.png", (10, 10)),
        ("grass.png", (60, 90)),
        ("astronaut.png", (300, 260)),
    ]
    for k, (name, (x, y)) in enumerate(crops):
        with Image.open(DATA / name) as im:
            im.convert("RGB").crop((x, y, x + 96, y + 72)).resize((32, 24), Image.LANCZOS).save(
                folder / f"tile_{k + 1}.png"
            )
    return folder


def test_a_folder_spreads_over_all_nodes(three_nodes, tmp_path, capsys):
    nodes, _, _ = three_nodes
    images = six_images(tmp_path / "tiles")
    reference, out = tmp_path / "one_machine", tmp_path / "ray"
    one_thread_run(["fit", str(images), "--mode", "folder", *TINY, "--output-dir", str(reference)])
    assert main(["fit", str(images), "--mode", "folder", *TINY, "--output-dir", str(out), "--ray", nodes.address]) == 0
    assert_same_files(reference, out)
    (summary,) = summaries(out)
    assert summary["mode"] == "folder" and summary["status"] == "finished" and len(summary["tasks"]) == 6
    shares = {node: sorted(n["fitted"]) for node, n in summary["nodes"].items()}
    assert len(shares) == 3 and all(shares.values())  # every node fitted some
    assert sorted(n for s in shares.values() for n in s) == [f"tile_{k}" for k in range(1, 7)]
    assert "(6 fitted now)" in capsys.readouterr().out
    print(f"\nfolder of 6 on 3 nodes: {sorted(len(s) for s in shares.values())} images per node")


# ----------------------------------------------------------------------------------------
# no cluster needed


def test_without_ray_installed_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["fit", str(CLIP), *VIDEO, "--output-dir", str(tmp_path / "out"), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("imfit: error: --ray needs Ray")
    assert "pip install 'gabor-imfit[ray]'" in err and cluster.RAY_VERSION in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ray-cpus", "2"], "give --ray [ADDRESS] too"),
        (["--ray", "--ray-cpus", "0"], "--ray-cpus must be positive"),
        (["--ray", "--ray-gpus", "-1"], "--ray-gpus must be 0 or more"),
        (["--ray", "--device", "cuda"], "--device cuda on Ray needs GPUs for its tasks"),
        (["--ray", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
        (["--ray", "--frames", "40-50"], "select none"),
        pytest.param(
            ["--ray", "ray://127.0.0.1:10001"],
            "connects through Ray Client, which is not installed",
            marks=pytest.mark.skipif(importlib.util.find_spec("grpc") is not None, reason="ray[client] is here"),
        ),
    ],
)
def test_option_errors_are_one_line(args, message, tmp_path, capsys):
    assert main(["fit", str(CLIP), *VIDEO, "--output-dir", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_image_mode_and_foreign_frames_are_refused(one_machine, tmp_path, capsys):
    assert main(["fit", str(CLIP / "realshort_0001.png"), *TINY, "--ray"]) == 2
    out = tmp_path / "out"
    out.mkdir()
    (out / "realshort_0005.json").write_bytes((one_machine[0] / "realshort_0005.json").read_bytes())
    # keyframes every 3 make frame 5 a warm frame: the file is another run's, refused before Ray starts
    assert (
        main(
            [
                "fit",
                str(CLIP),
                *TINY,
                "--mode",
                "video",
                "--keyframes",
                "3",
                "--output-dir",
                str(out),
                "--ray",
                "127.0.0.1:1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert "--mode folder, video or vm" in err[0] and "made by another run" in err[1]


def test_plan_cuts_at_keyframes_and_skips_finished_segments(one_machine, tmp_path):
    config = video_config()
    plan = cluster.plan_sequences([(CLIP, None, tmp_path)], config, 4, "3-10", tmp_path)
    assert [j.select for j in plan.jobs] == [(3, 4), (5, 8), (9, 10)]  # frames 1-2 are re-fitted, not written
    assert [o.name for o in plan.outputs] == NAMES[2:10] and plan.kept == []
    for name in NAMES[4:8] + NAMES[8:9]:  # segment 5-8 finished, 9 of 9-10 finished
        (tmp_path / f"{name}.json").write_bytes((one_machine[0] / f"{name}.json").read_bytes())
    plan = cluster.plan_sequences([(CLIP, None, tmp_path)], config, 4, "3-10", tmp_path)
    assert [j.select for j in plan.jobs] == [(3, 4), (9, 10)]
    assert [o.name for o in plan.kept] == NAMES[4:9]
    assert [o.name for o in plan.jobs[1].outputs] == NAMES[8:10]


class _Nodes:
    """Stands in for the ray module where only ray.nodes() is read."""

    def __init__(self, *sizes):
        self.sizes = sizes

    def nodes(self):
        return [{"Alive": True, "Resources": {"CPU": c, **({"GPU": g} if g else {})}} for c, g in self.sizes] + [
            {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}
        ]  # a dead node holds nothing


def test_tasks_no_node_can_hold_are_refused_on_a_local_ray_and_warned_about_on_a_cluster(caplog):
    two_nodes = _Nodes((2.0, 0.0), (8.0, 1.0))
    cluster._check_resources(two_nodes, 8.0, 1.0, local=True)  # the second node holds it
    with pytest.raises(
        cluster.ImfitError,
        match=r"has 4 CPUs and 2 GPUs for one task \(its nodes have at most 8 "
        r"CPUs and 1 GPUs\)",
    ):
        cluster._check_resources(two_nodes, 4.0, 2.0, local=True)
    with caplog.at_level("WARNING", logger="imfit"):
        cluster._check_resources(two_nodes, 16.0, 0.0, local=False)  # an autoscaler may add one: wait
    assert "no node of the Ray cluster has 16 CPUs" in caplog.text


def test_a_stopped_run_cancels_its_tasks_and_keeps_the_finished_frames(one_machine, tmp_path, capsys):
    """Ctrl-C (the CLI's stop flag) on a Ray started here: exit 130, finished frames kept, the rest cancelled."""
    out = tmp_path / "ray"
    argv = ["fit", str(CLIP), *VIDEO, "--output-dir", str(out), "--ray", "--ray-cpus", "1"]
    args = cli.build_parser().parse_args(argv)
    try:
        assert cluster.fit(args, config_from(args), stop=lambda: any(out.glob("realshort_*.json"))) == 130
    finally:
        ray.shutdown()
    printed = capsys.readouterr().out
    (stopped,) = summaries(out)
    done = stopped["frames"]["finished"]
    assert stopped["status"] == "stopped" and 1 <= done < 12 and len(stopped["frames"]["missing"]) == 12 - done
    assert f"of 12 frames are finished in {out}. Run the same command again to resume" in printed

    # the next run keeps the finished frames: only intervals with frames missing become tasks
    plan = cluster.plan_sequences([(CLIP, None, out)], video_config(), 4, None, out)
    # (a frame may have landed between the last look and the cancel: kept too, and whole)
    assert {o.name for o in plan.kept} >= set(NAMES) - set(stopped["frames"]["missing"])
    assert {o.name for o in plan.kept} | {o.name for j in plan.jobs for o in j.outputs} == set(NAMES)
    for name in (o.name for o in plan.kept):
        assert without_timing(out / f"{name}.json") == without_timing(one_machine[0] / f"{name}.json"), name
