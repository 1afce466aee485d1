"""Fits past one machine: folder, video and vm fits as Ray tasks (``imfit fit PATH --mode video --ray``).

Ray's own task API does the scheduling (resources per task, retries of a task whose node died); nothing
here schedules, it only cuts a run into independent tasks and watches the output folder.

**Tasks.**  A sequence is cut at its keyframes: one task per keyframe interval (segment), which never
depends on another (see ``sequence``).  A task runs exactly the engine code of one machine,
``sequence.fit_sequence`` with ``select`` = the segment's frames and the whole frame list, so positions,
per-frame seeds and warm starts are those of one uninterrupted run.  A folder fit is one task per image.
Tasks write their frame files into the output folder as each frame finishes (atomically), so the output
folder must be shared storage seen at the same path on every node (as on a render farm), and every node
needs the same gabor-imfit, torch and ray.

**Faults.**  A task whose node dies is retried by Ray (``MAX_RETRIES``) on another node and resumes from
the frames already on disk.  A run started again after the driver was killed submits only the segments
(images) with files missing, and their tasks skip the frames already finished.  A lost node's worker may
still write the frame it was on before it notices; with atomic writes and the same result on the CPU, two
writers of one frame are harmless.

**Same results.**  On the CPU the files equal one machine's bit for bit except the ``metrics.seconds``
timing, provided the fits run with the same number of torch threads (a parallel reduction sums in another
order with another thread count): a task uses as many threads as CPUs it holds (``--ray-cpus``, default 1),
so ``--ray-cpus N`` matches a one-machine run with N threads.

**Run summary.**  ``<output-dir>/ray-runs/<UTC time>-<pid>.json`` (a subfolder: sequence tools read the
``*.json`` beside the frames as frames) records the run: status, resources, the cluster, which node fitted
which frames (each node's share), and which frames were found finished: ``kept`` (on disk before the run
started) and ``resumed`` (left by an earlier attempt of a retried task, or by the tasks of a killed driver
that were still finishing).

Only the standard library and torch-free engine modules are imported at the top; ray is imported when a
run starts (it is an optional dependency) and torch inside the tasks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import sequence
from .errors import ImfitError
from .io import formats
from .io.atomic import write_atomic

log = logging.getLogger("imfit")

RAY_VERSION = "2.60.0"  # the pin of the [ray] extra and requirements-dev.txt
INSTALL_HINT = f"pip install 'gabor-imfit[ray]' (or ray=={RAY_VERSION}) into the Python that runs the engine"
LOCAL = "local"  # --ray without an address: start a Ray on this machine (Ray's own name for that)
SUMMARY_DIR = "ray-runs"
SUMMARY_FORMAT = "gabor-imfit-ray-run"
MAX_RETRIES = 3  # per task, for lost nodes and workers (Ray's default, stated)
RETRY_EXCEPTIONS = [OSError]  # shared storage hiccups are worth a retry; user errors (ImfitError) are not
POLL_SECONDS = 0.5
CONNECT_SECONDS = 10.0


class ClusterError(ImfitError):
    """Ray could not finish a task (nodes lost beyond the retries, the cluster gone): not the input's fault."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise ImfitError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# ----------------------------------------------------------------------------------------
# the command line


def add_args(p) -> None:
    """``--ray [ADDRESS]``, ``--ray-cpus``, ``--ray-gpus`` on ``imfit fit``."""
    p.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help="folder, video, vm: fit on a Ray cluster, one task per keyframe interval or image; ADDRESS "
        "as Ray takes it (auto, HOST:PORT, ray://HOST:10001); alone: start Ray on this machine. "
        "The output folder must be shared by all nodes",
    )
    p.add_argument("--ray-cpus", type=float, metavar="N", help="CPUs per Ray task, also its torch threads (default 1)")
    p.add_argument("--ray-gpus", type=float, metavar="N", help="GPUs per Ray task (default 0)")


def check_args(a) -> None:
    """User errors of the --ray options, before anything starts."""
    if a.ray is None:
        for name, value in (("--ray-cpus", a.ray_cpus), ("--ray-gpus", a.ray_gpus)):
            if value is not None:
                raise ImfitError(f"{name} sets the resources of Ray tasks: give --ray [ADDRESS] too")
        return
    if a.mode == "image":
        raise ImfitError("--ray distributes many fits: use it with --mode folder, video or vm (one image is one fit)")
    if a.ray_cpus is not None and not a.ray_cpus > 0:
        raise ImfitError(f"--ray-cpus must be positive, got {a.ray_cpus:g}")
    if a.ray_gpus is not None and not a.ray_gpus >= 0:
        raise ImfitError(f"--ray-gpus must be 0 or more, got {a.ray_gpus:g}")
    if a.device == "cuda" and not (a.ray_gpus or 0) > 0:
        raise ImfitError("--device cuda on Ray needs GPUs for its tasks: give --ray-gpus (e.g. 1), or --device auto")
    if not a.ray.strip():
        raise ImfitError(
            "--ray got an empty address: leave it out to start Ray here, or give auto, HOST:PORT or ray://HOST:10001"
        )


def fit(a, config, stop=None) -> int:
    """``imfit fit ... --ray``: plan, run on the cluster, print the results; the exit status."""
    import_ray()  # not installed: say so first, whatever the folder holds
    out = Path(os.path.abspath(a.output_dir))
    if a.mode == "folder":
        plan = plan_folder(a.path, a.weight, config, out, a.format)
    elif a.mode == "video":
        plan = plan_sequences([(a.path, a.weight, out)], config, a.keyframes, a.frames, out)
    else:
        plan = plan_sequences(_vm_clips(Path(a.path), out), config, a.keyframes, a.frames, out, mode="vm", path=a.path)
    try:
        # nothing left to fit (a finished run started again): no cluster needed
        with connect(a.ray) if plan.jobs else contextlib.nullcontext():
            summary = run(
                plan,
                config,
                fmt=a.format,
                cpus=a.ray_cpus or 1.0,
                gpus=a.ray_gpus or 0.0,
                address=a.ray,
                stop=stop,
                progress=Progress(plan.total, len(plan.kept)),
            )
    except ClusterError as e:
        print(f"imfit: error: {e}", file=sys.stderr)
        return 1
    if summary["status"] == "stopped":
        print(
            f"{a.path}: stopped; {summary['frames']['finished']} of {plan.total} frames are finished in "
            f"{out}. Run the same command again to resume",
            flush=True,
        )
        return 130
    report(plan, summary)
    return 0


def _vm_clips(path: Path, out: Path) -> list:
    if not path.is_dir():
        raise ImfitError(f"{path} is not a folder: --mode vm expects a folder of clip folders")
    clips = sorted(d for d in path.iterdir() if (d / "images").is_dir())
    if not clips:
        raise ImfitError(f"no clip folders in {path}: --mode vm expects subfolders that hold images/")
    return [(c / "images", c / "weights" if (c / "weights").is_dir() else None, out / c.name) for c in clips]


# ----------------------------------------------------------------------------------------
# planning: which tasks a run needs (no Ray, no torch)


@dataclass(frozen=True)
class Output:
    name: str  # relative to the run's output folder, without suffix: "shot_0001", "clipA/shot_0001"
    path: Path  # the file that says "finished": the JSON (api.write_result writes it last), else the .txt
    source: Optional[Path] = None  # the image it fits (flicker is measured against it)


@dataclass(frozen=True)
class Job:
    """One Ray task: a segment of a sequence (``select``) or one image."""

    label: str
    out_dir: Path
    outputs: tuple  # Output of every file it writes, in order
    clip: int = -1  # segment: index of its sequence in Plan.clips
    select: Optional[tuple] = None
    keyframe_interval: int = 0
    image: Optional[Path] = None
    weight: Optional[Path] = None


@dataclass
class Clip:
    folder: Path
    out_dir: Path
    frames: list  # every Frame of the sequence (positions count from its first frame), paths absolute
    keyframe_interval: int
    outputs: list  # Output of the frames this run covers, in order


@dataclass
class Plan:
    mode: str  # "folder", "video" or "vm" (several clips)
    out_dir: Path
    path: str
    jobs: list  # the tasks to submit
    kept: list  # Output found finished before the run: no task needed
    clips: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # every Output the run covers, in order

    @property
    def total(self) -> int:
        return len(self.outputs)


def _absolute(path) -> Optional[Path]:
    # abspath, not resolve: a farm mounts shared storage at one path; symlinks resolved here may differ there
    return None if path is None else Path(os.path.abspath(path))


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).with_suffix("").as_posix()
    except ValueError:
        return path.with_suffix("").as_posix()


def plan_sequences(
    clips, config, keyframe_interval: int, frames_arg: Optional[str], out_root, *, mode="video", path=None
) -> Plan:
    """Tasks for sequences ``clips`` = [(frames folder, weight arg, output folder)]: one per segment with
    frames missing on disk.  Frame files of another run are refused here, before anything starts."""
    out_root = _absolute(out_root)
    select = sequence.parse_range(frames_arg) if frames_arg else None
    plan = Plan(mode, out_root, str(path if path is not None else clips[0][0]), [], [])
    for index, (folder, weight_arg, out_dir) in enumerate(clips):
        out_dir = _absolute(out_dir)
        frames = [
            dataclasses.replace(f, image=_absolute(f.image), weight=_absolute(f.weight))
            for f in sequence.folder_frames(folder, weight_arg)
        ]
        sequence.check_frames(frames, keyframe_interval)
        _, wanted = sequence.planned_positions([f.number for f in frames], keyframe_interval, select)
        wanted = sorted(wanted)
        outputs = {
            p: Output(
                _relative_name(out_dir / frames[p].name, out_root), out_dir / f"{frames[p].name}.json", frames[p].image
            )
            for p in wanted
        }
        plan.clips.append(Clip(Path(folder), out_dir, frames, keyframe_interval, list(outputs.values())))
        plan.outputs += outputs.values()
        for segment in sorted({p - p % keyframe_interval for p in wanted}):
            positions = [p for p in wanted if segment <= p < segment + keyframe_interval]
            done = [p for p in positions if _frame_finished(frames, p, keyframe_interval, config, out_dir)]
            plan.kept += [outputs[p] for p in done]
            if len(done) == len(positions):
                continue  # the whole segment is on disk: no task
            first, last = frames[positions[0]].number, frames[positions[-1]].number
            name = Path(folder).name if len(clips) == 1 else out_dir.name
            frames_label = f"frames {first}-{last}" if last > first else f"frame {first}"
            plan.jobs.append(
                Job(
                    f"{name} {frames_label}",
                    out_dir,
                    tuple(outputs[p] for p in positions),
                    clip=index,
                    select=(first, last),
                    keyframe_interval=keyframe_interval,
                )
            )
    return plan


def _frame_finished(frames, position, keyframe_interval, config, out_dir) -> bool:
    """The frame's file is there and made by this very run's settings (sequence's own resume check,
    which raises for a file of another run)."""
    frame = frames[position]
    warm_from = None if position % keyframe_interval == 0 else frames[position - 1].number
    record = sequence.frame_record(frame, position, keyframe_interval, warm_from)
    cfg = sequence.frame_config(config, frame.number, record["keyframe"])
    return sequence.finished_frame(out_dir / f"{frame.name}.json", record, cfg.to_dict()) is not None


def plan_folder(folder, weight_arg, config, out_dir, fmt: str = "json") -> Plan:
    """One task per image of ``folder`` whose fit is not in ``out_dir`` yet."""
    from .io import images  # pillow

    out_dir = _absolute(out_dir)
    paths = images.list_images(folder)
    stems = [p.stem for p in paths]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:  # one machine overwrites one with the other; parallel tasks would race for the file
        raise ImfitError(
            f"folder {folder} holds several images named {twice[0]} (e.g. .png and .jpg): each writes "
            f"{twice[0]}.json. Remove the extra files"
        )
    plan = Plan("folder", out_dir, str(folder), [], [])
    for image in paths:
        image = _absolute(image)
        output = Output(image.stem, out_dir / f"{image.stem}{'.txt' if fmt == 'txt' else '.json'}", image)
        plan.outputs.append(output)
        if image_finished(output.path, image, config, fmt):
            plan.kept.append(output)
        else:
            plan.jobs.append(
                Job(
                    image.name, out_dir, (output,), image=image, weight=_absolute(images.find_weight(image, weight_arg))
                )
            )
    return plan


def image_finished(path: Path, image: Path, config, fmt: str = "json") -> bool:
    """A folder fit's file made from this image with these settings (one machine would make the same).
    A bare .txt (``--format txt``) has no settings to check: always fitted again, as on one machine."""
    if fmt == "txt" or not path.is_file() or (fmt == "both" and not path.with_suffix(".txt").is_file()):
        return False
    try:
        ws = formats.load_json(path)
    except ImfitError:
        return False  # not a fit: fitted again and replaced, as one machine does
    metrics = ws.meta.get("metrics", {})
    return (
        ws.meta.get("source", {}).get("name") == image.name
        and sequence.META_KEY not in metrics
        and not metrics.get("stopped")
        and sequence.comparable_settings(ws.meta.get("settings", {})) == sequence.comparable_settings(config.to_dict())
    )


# ----------------------------------------------------------------------------------------
# the task (runs on a node)


class _TaskLogFormat(logging.Formatter):
    def format(self, record):
        return f"imfit: {record.levelname.lower()}: {record.getMessage()}"


def _fit_task(job: Job, frames, config, fmt: str, preview: bool, threads: int, gpus: float) -> dict:
    if not gpus:  # Ray leaves the GPUs visible to a task that holds none: --device auto must not take one
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import ray
    import torch

    torch.set_num_threads(threads)  # the task's CPU share: tasks side by side on a node must not oversubscribe it
    if not log.handlers:  # the engine's warnings as the CLI prints them (Ray relays them to the driver)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_TaskLogFormat())
        log.addHandler(handler)
        log.propagate = False
    start = time.time()
    fitted, resumed = [], []
    if job.select is not None:
        run = sequence.fit_sequence(
            frames,
            config,
            job.out_dir,
            job.keyframe_interval,
            select=job.select,
            fmt=fmt,
            preview=preview,
            flicker=False,
        )
        names = {o.path: o.name for o in job.outputs}
        for done in run.frames:
            (resumed if done.resumed else fitted).append(names[Path(done.path)])
    else:
        from . import api

        output = job.outputs[0]
        if image_finished(output.path, job.image, config, fmt):  # an earlier attempt finished it
            resumed.append(output.name)
        else:
            result = api.fit_file(job.image, job.weight, config)
            api.write_result(result, job.out_dir, job.image.stem, fmt, preview=preview)
            fitted.append(output.name)
    context = ray.get_runtime_context()
    return {
        "task": job.label,
        "node": context.get_node_id(),
        "host": socket.gethostname(),
        "ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "fitted": fitted,
        "resumed": resumed,
        "seconds": round(time.time() - start, 3),
    }


# ----------------------------------------------------------------------------------------
# the driver


@contextlib.contextmanager
def connect(address: str):
    """Ray connected for the block: a new local Ray for ``local``, else the cluster at ``address``.
    A caller that connected already (a notebook, a test) keeps its connection."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # the workers' relayed lines without colour codes in pipes
    kwargs = {"address": address, "logging_level": logging.WARNING}
    if address == LOCAL:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a Ray we start on the user's behalf reports nothing
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except Exception as e:  # Ray raises ConnectionError, ValueError, RuntimeError... for an unreachable cluster
        if address.startswith("ray://") and "ray[client]" in str(e):
            raise ImfitError(
                f"--ray {address} connects through Ray Client, which is not installed: pip install "
                f"'ray[client]=={RAY_VERSION}' (the cluster's head needs ray[default]), or run imfit on a "
                "node of the cluster with --ray auto"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImfitError(
            f"cannot reach the Ray cluster at {address!r} ({first}): start it (ray start --head), give "
            "its address (auto, HOST:PORT, ray://HOST:10001), or leave out ADDRESS to start Ray "
            "here"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT nobody listens on is a one-line error now (Ray itself retries it for minutes)."""
    match = re.fullmatch(r"\[?([^/\[\]]+?)\]?:(\d+)", address.strip())
    if not match:
        return  # local, auto, ray://...: Ray resolves and reports those itself
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise ImfitError(
            f"cannot reach the Ray cluster at {address} ({e.strerror or e}): start it (ray start --head "
            "prints its address), check HOST:PORT, or leave out ADDRESS to start Ray here"
        ) from None


class Progress:
    """Frames done out of the run's total: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, done: int = 0, stream=None, quiet: bool = False):
        self.total, self.done, self.quiet = total, done, quiet
        self.stream = stream or sys.stderr
        self.bar = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=done, desc="frames", unit="frame", file=self.stream, dynamic_ncols=True
            )

    def frame(self, output: Output) -> None:
        self.done += 1
        if self.quiet:
            return
        psnr, start = _frame_summary(output.path)
        quality = "" if math.isnan(psnr) else f": PSNR {psnr:.2f} dB"  # a bare .txt does not say
        line = f"{output.name} ({self.done}/{self.total}{start}){quality} -> {output.path}"
        if self.bar is not None:
            self.bar.update(1)
        else:
            print(line, flush=True)

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _frame_summary(path: Path) -> tuple[float, str]:
    try:
        metrics = formats.load_json(path).meta.get("metrics", {})
    except ImfitError:
        return math.nan, ""
    record = metrics.get(sequence.META_KEY)
    start = "" if not isinstance(record, dict) else (", keyframe" if record.get("keyframe") else ", warm")
    psnr = metrics.get("psnr")
    return (math.nan if psnr is None else float(psnr)), start


def _check_resources(ray, cpus: float, gpus: float, local: bool) -> None:
    """A task no node can hold waits forever: an error on a Ray we started, a warning on a cluster (it may
    autoscale)."""
    sizes = [(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive")]
    if any(c >= cpus and g >= gpus for c, g in sizes):
        return
    most_cpus, most_gpus = max((c for c, _ in sizes), default=0.0), max((g for _, g in sizes), default=0.0)
    problem = (
        f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs for one task (its nodes have at most "
        f"{most_cpus:g} CPUs and {most_gpus:g} GPUs): lower --ray-cpus / --ray-gpus"
    )
    if local:
        raise ImfitError(problem)
    log.warning("%s, or add such a node (waiting for one)", problem)


def run(
    plan: Plan,
    config,
    *,
    fmt: str = "json",
    preview: bool = True,
    cpus: float = 1.0,
    gpus: float = 0.0,
    address: str = "",
    stop: Optional[Callable[[], bool]] = None,
    progress: Optional[Progress] = None,
    on_poll: Optional[Callable[[set], None]] = None,
) -> dict:
    """Run ``plan``'s tasks on the connected Ray cluster and wait for them; the run summary (also written
    to ``<out_dir>/ray-runs/``).  ``on_poll(finished output names)`` is called while waiting.  A plan
    without jobs (all found finished) does not touch Ray."""
    ray = import_ray() if plan.jobs else None

    threads = max(1, int(cpus))
    progress = progress or Progress(plan.total, len(plan.kept), quiet=True)
    stop = stop or (lambda: False)
    started, wall = datetime.now(timezone.utc), time.perf_counter()
    summary = {
        "format": SUMMARY_FORMAT,
        "version": 1,
        "mode": plan.mode,
        "path": plan.path,
        "output_dir": str(plan.out_dir),
        "address": address or None,
        "started": started.isoformat(),
        "status": "running",
        "task_resources": {"num_cpus": cpus, "num_gpus": gpus, "torch_threads": threads, "max_retries": MAX_RETRIES},
        "settings": config.to_dict(),
        "keyframe_interval": plan.clips[0].keyframe_interval if plan.clips else None,
        "cluster": {},
        "frames": {},
        "nodes": {},
        "tasks": [],
    }
    finished = {o.name for o in plan.kept}
    results, pending = [], {}
    if plan.jobs:  # a user error here leaves no summary behind
        _check_resources(ray, cpus, gpus, address == LOCAL)
    try:
        if plan.jobs:
            _submit(ray, plan, config, fmt, preview, cpus, gpus, threads, address, summary, pending)
        while pending:
            if stop():
                summary["status"] = "stopped"
                break
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
            # frames a running task has finished: the files say so (a sequence's; an image task is one frame,
            # and a file already there may be another run's that it replaces)
            for job in (j for j in pending.values() if j.select is not None):
                for output in job.outputs:
                    if output.name not in finished and output.path.is_file():
                        finished.add(output.name)
                        progress.frame(output)
            for ref in ready:
                job = pending.pop(ref)
                result = _result(ray, ref, job)
                results.append(result)
                for output in job.outputs:
                    if output.name not in finished:
                        if not output.path.is_file():
                            raise ClusterError(
                                f"{job.label}: the task finished on {result['host']}, but "
                                f"{output.path} is not visible here: the output folder must be "
                                "shared storage at the same path on every node"
                            )
                        finished.add(output.name)
                        progress.frame(output)
                progress.note(
                    f"{job.label}: {len(result['fitted'])} fitted, {len(result['resumed'])} found "
                    f"finished, on {result['host']} ({result['ip']}, node {result['node'][:8]}) in "
                    f"{result['seconds']:.1f} s"
                )
            if on_poll is not None:
                on_poll(set(finished))
        if summary["status"] == "running":
            summary["status"] = "finished"
    except BaseException as e:  # recorded in the summary, then raised
        summary["status"] = "failed"
        summary["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise
    finally:
        for ref in pending:  # a stop, an error or Ctrl-C: the rest stops now; finished frames stay
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        progress.close()
        summary["finished"] = datetime.now(timezone.utc).isoformat()
        summary["wall_seconds"] = round(time.perf_counter() - wall, 3)
        _fill(summary, plan, results, finished)
        summary["summary_path"] = str(_write_summary(plan.out_dir, summary, started))
    return summary


def _submit(ray, plan, config, fmt, preview, cpus, gpus, threads, address, summary, pending) -> None:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    summary["cluster"] = {
        "nodes": len(alive),
        "cpus": sum(n["Resources"].get("CPU", 0) for n in alive),
        "gpus": sum(n["Resources"].get("GPU", 0) for n in alive),
    }
    # SPREAD: a farm's tasks are long, so spreading them over the nodes beats packing the first one
    task = ray.remote(_fit_task).options(
        num_cpus=cpus,
        num_gpus=gpus,
        max_retries=MAX_RETRIES,
        retry_exceptions=RETRY_EXCEPTIONS,
        scheduling_strategy="SPREAD",
    )
    frames = [ray.put(c.frames) for c in plan.clips]  # once per sequence, not once per task
    for job in plan.jobs:
        pending[task.remote(job, frames[job.clip] if job.clip >= 0 else None, config, fmt, preview, threads, gpus)] = (
            job
        )


def _result(ray, ref, job: Job) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:  # the task raised (after its retries, for RETRY_EXCEPTIONS)
        cause = e.cause
        if isinstance(cause, ClusterError) or not isinstance(cause, ImfitError):
            raise ClusterError(
                f"{job.label} failed on the cluster: {type(cause).__name__}: {cause}. The finished "
                "frames are kept: run the same command again to resume"
            ) from None
        raise ImfitError(f"{job.label}: {cause}") from None
    except ray.exceptions.RayError as e:  # nodes or workers lost more often than MAX_RETRIES, object lost...
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ClusterError(
            f"{job.label}: Ray gave up on the task ({type(e).__name__}: {first}). The finished frames "
            "are kept: run the same command again to resume"
        ) from None


def _fill(summary: dict, plan: Plan, results: list, finished: set) -> None:
    kept = {o.name for o in plan.kept}
    nodes = {}
    for r in results:
        # a task also finds the kept frames of its segment; "resumed" is what an earlier attempt left
        r["resumed"] = [n for n in r["resumed"] if n not in kept]
        node = nodes.setdefault(
            r["node"], {"host": r["host"], "ip": r["ip"], "tasks": 0, "fitted": [], "resumed": [], "seconds": 0.0}
        )
        node["tasks"] += 1
        node["fitted"] += r["fitted"]
        node["resumed"] += r["resumed"]
        node["seconds"] = round(node["seconds"] + r["seconds"], 3)
    summary["nodes"] = nodes
    summary["tasks"] = results
    summary["frames"] = {
        "total": plan.total,
        "finished": len(finished),
        "kept": sorted(kept),
        "fitted": [n for r in results for n in r["fitted"]],
        "resumed": [n for r in results for n in r["resumed"]],
        "missing": [o.name for o in plan.outputs if o.name not in finished],
    }


def _write_summary(out_dir: Path, summary: dict, started: datetime) -> Path:
    path = out_dir / SUMMARY_DIR / f"{started.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}.json"
    write_atomic(path, json.dumps(summary, indent=1) + "\n")
    return path


def report(plan: Plan, summary: dict) -> None:
    """The closing lines, as one machine prints them (mean PSNR, flicker), plus where the frames ran."""
    fitted = set(summary["frames"]["fitted"])
    if plan.mode == "folder":
        groups = [(plan.path, plan.outputs, False)]
    else:
        groups = [(str(c.folder), c.outputs, True) for c in plan.clips]
    for label, outputs, is_sequence in groups:
        psnrs = [p for p in (_frame_summary(o.path)[0] for o in outputs) if not math.isnan(p)]
        line = (
            f"{label}: {len(outputs)} {'frames' if is_sequence else 'images'} "
            f"({sum(o.name in fitted for o in outputs)} fitted now)"
            + (f", mean PSNR {sum(psnrs) / len(psnrs):.2f} dB" if psnrs else "")
        )
        if is_sequence and len(outputs) > 1:
            flicker = sequence.measure_flicker((o.source, o.path) for o in outputs)
            if flicker:
                line += f", {flicker.describe()}"
        print(line, flush=True)
    shares = ", ".join(
        f"{n['host']} ({n['ip']}, node {node[:8]}): {len(n['fitted'])}"
        for node, n in sorted(summary["nodes"].items(), key=lambda kv: -len(kv[1]["fitted"]))
    )
    print(
        f"ray: {summary['frames']['finished']} of {plan.total} done in {summary['wall_seconds']:.1f} s on "
        f"{summary['cluster'].get('nodes', 0)} node(s); fitted per node: {shares or 'none (all found finished)'}; "
        f"run summary -> {summary['summary_path']}",
        flush=True,
    )
