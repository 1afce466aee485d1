"""Image sequences: every frame fitted, warm-started from the one before, resumable and shardable.

The one place for sequence logic: the CLI's video mode, the Blender worker's sequence job and the
batch entry (``addon/batch.py``) all run ``fit_sequence``; Blender keys node groups from
``aligned_frames``.  Only numpy and the standard library are imported at the top (Blender's Python
reads sequences through this module to keyframe them); fitting imports torch when it runs.

**Frames.**  A sequence is an ordered list of ``Frame`` s, each with a number: the frame its
keyframe goes to (the last digits of a file name, as Blender numbers image sequences, or a scene
frame).  Positions count from the first frame of the whole sequence; the frame at position p is a
cold keyframe when ``p % keyframe_interval == 0`` (a fresh fit), otherwise it is warm-started from
the frame before and continues at full size only (like Refine).  So the sequence splits into
segments of ``keyframe_interval`` frames that never depend on each other, and each frame uses the
seed ``config.seed + number``: a frame's result depends only on its own segment.

**Files.**  Each frame's result is written as canonical JSON ``<output>/<image stem>.json`` the
moment it is finished (atomically, after its preview), with ``metrics["sequence"]`` recording its
number, position, segment and keyframe interval.  A run skips frames whose file is there and was
made with the same settings, and warm-starts from the last finished one, so a killed run resumes
where it stopped and produces the same files as an uninterrupted one.  A frame stopped on request
is not written (it would not match an uninterrupted run).

**Shards.**  ``select=(first, last)`` fits only the frames numbered first..last; when ``first`` is
inside a segment the frames before it in that segment are fitted again for the warm start, but not
written.  Shards therefore produce exactly the files one run would; ``collect`` joins their folders.

**Identity.**  Inside a segment a wavelet keeps its row.  At a cold keyframe the fresh wavelets are
matched to the previous frame's (greedy matching on position, size and wavelength: the cheapest
pair first, done as rounds of mutual nearest neighbours) and reordered, the whole segment with
them; matched rotations are moved by multiples of pi towards the previous ones (half a turn
with the phases negated is the same wavelet) and phases are unwrapped frame to frame, so
interpolating between keyframes moves wavelets instead of swapping or spinning them.  This happens
when frames are read back (``aligned_frames``), never in the files, so shards stay independent.

**Flicker.**  ``measure_flicker`` compares frame-to-frame change: ``flicker`` is the mean absolute
difference between the re-synthesis' change and the source's change (change the source does not
have), with both mean changes alongside.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .core.model import GAMMA, PHASE, SIGMA, THETA, WAVELENGTH, U, V, WaveletSet
from .errors import ImfitError
from .io import formats

DEFAULT_KEYFRAME_INTERVAL = 10
META_KEY = "sequence"  # metrics[META_KEY] of a frame file
_IGNORED_SETTINGS = ("device", "compile")  # how a frame ran, not what it fits: a GPU shard may resume a CPU run
_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class Frame:
    number: int
    image: Optional[Path]  # None: not needed by this run (a frame outside its shard)
    weight: Optional[Path] = None
    stem: str = ""  # output name; default: the image's stem

    @property
    def name(self) -> str:
        return self.stem or Path(self.image).stem


@dataclass
class FrameDone:
    number: int
    position: int
    count: int  # frames this run writes
    index: int  # 1-based among them
    path: Path
    psnr: float
    seconds: float
    keyframe: bool
    resumed: bool  # found finished on disk, not fitted again
    wavelets: int


@dataclass
class Flicker:
    flicker: float  # mean |(R_t - R_t-1) - (S_t - S_t-1)|, display values in [0, 1]
    fit_change: float  # mean |R_t - R_t-1|
    source_change: float  # mean |S_t - S_t-1|
    pairs: int

    def describe(self) -> str:
        return (
            f"flicker {self.flicker * 255:.2f}/255 (the re-synthesis changes {self.fit_change * 255:.2f}/255 "
            f"per frame, the source {self.source_change * 255:.2f}/255; {self.pairs} frame pairs)"
        )


@dataclass
class SequenceRun:
    frames: list  # FrameDone of every frame this run covers, in order
    stopped: bool
    flicker: Optional[Flicker] = None

    @property
    def psnr(self) -> float:
        values = [f.psnr for f in self.frames]
        return float(np.mean(values)) if values else float("nan")

    @property
    def fitted(self) -> int:
        return sum(not f.resumed for f in self.frames)


# ----------------------------------------------------------------------------------------
# frames and ranges


def frame_number(name: str) -> Optional[int]:
    """The last run of digits in a file stem (Blender's image-sequence numbering), or None."""
    match = _LAST_DIGITS.search(name)
    return int(match.group(1)) if match else None


def folder_frames(folder, weight_arg=None) -> list[Frame]:
    """The images of ``folder`` in name order, numbered by their last digits when every name has
    distinct ones (``shot_0001.png`` is frame 1), else 1, 2, 3..."""
    from .io import images  # pillow: not at the top (Blender's Python reads sequences too)

    paths = images.list_images(folder)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise ImfitError(
            f"folder {folder} holds several images named {twice[0]} (e.g. .png and .jpg): a sequence "
            "needs one file per frame name. Remove the extra files"
        )
    numbers = [frame_number(s) for s in stems]
    if None in numbers or len(set(numbers)) != len(numbers) or numbers != sorted(numbers):
        numbers = list(range(1, len(paths) + 1))
    return [Frame(n, p, images.find_weight(p, weight_arg)) for n, p in zip(numbers, paths)]


def parse_range(text: str) -> tuple[int, int]:
    """``"A-B"`` or ``"A"`` as (A, B); an ImfitError for anything else."""
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", text or "")
    if not match:
        raise ImfitError(f"frame range {text!r} is not A-B or A (e.g. 1-48): give first and last frame numbers")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise ImfitError(f"frame range {text!r} ends before it starts: give the first frame first")
    return first, last


def check_frames(frames: list[Frame], keyframe_interval: int) -> None:
    if not frames:
        raise ImfitError("the sequence has no frames")
    if keyframe_interval < 1:
        raise ImfitError(f"the keyframe interval must be at least 1, got {keyframe_interval}")
    numbers = [f.number for f in frames]
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise ImfitError(
            "the sequence's frame numbers must increase from frame to frame, got "
            f"{numbers[:8]}{'...' if len(numbers) > 8 else ''}"
        )
    names = [f.name for f in frames if f.image is not None or f.stem]
    if len(set(names)) != len(names):
        raise ImfitError("two frames of the sequence have the same file name: each frame needs its own name")


def planned_positions(numbers: list[int], keyframe_interval: int, select=None) -> tuple[range, set]:
    """(positions fitted, positions written) for frames ``numbers`` and an optional (first, last)."""
    wanted = {p for p, n in enumerate(numbers) if select is None or select[0] <= n <= select[1]}
    if not wanted:
        span = f"{numbers[0]}-{numbers[-1]}" if numbers else "none"
        raise ImfitError(
            f"frames {select[0]}-{select[1]} select none of the sequence's frames ({span}): choose a range inside it"
        )
    first = min(wanted)
    return range(first - first % keyframe_interval, max(wanted) + 1), wanted


def frame_config(config, number: int, keyframe: bool):
    """The FitConfig of one frame: its own seed; warm frames continue at full size."""
    return dataclasses.replace(config, seed=config.seed + number, rescales=config.rescales if keyframe else 0)


def frame_record(frame: Frame, position: int, keyframe_interval: int, warm_from) -> dict:
    segment = position - position % keyframe_interval
    return {
        "frame": frame.number,
        "position": position,
        "keyframe": position == segment,
        "segment": segment,
        "keyframe_interval": keyframe_interval,
        "warm_from": warm_from,
    }


def comparable_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in _IGNORED_SETTINGS}


def finished_frame(path: Path, record: dict, settings: dict) -> Optional[WaveletSet]:
    """The frame's file when it exists and was made for this very frame and settings, else None
    (no file) or an ImfitError (a file of another run: resuming over it would mix two runs)."""
    if not path.is_file():
        return None
    ws = formats.load_json(path)
    stored = ws.meta.get("metrics", {}).get(META_KEY)
    if stored != record or comparable_settings(ws.meta.get("settings", {})) != comparable_settings(settings):
        raise ImfitError(
            f"{path} holds a fit made by another run (other settings, keyframe interval or frame "
            "numbering), so this run cannot resume from it. Use another output folder, or delete "
            "the old frame files"
        )
    return ws


# ----------------------------------------------------------------------------------------
# fitting


def fit_sequence(
    frames: Iterable[Frame],
    config,
    out_dir,
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
    *,
    select: Optional[tuple[int, int]] = None,
    fmt: str = "json",
    preview: bool = True,
    on_frame: Optional[Callable[[FrameDone], None]] = None,
    on_progress: Optional[Callable[[Frame, object], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    flicker: bool = True,
) -> SequenceRun:
    """Fit ``frames`` (see the module docstring) into ``out_dir``; frames are read one at a time."""
    from . import api  # torch

    frames = list(frames)
    check_frames(frames, keyframe_interval)
    fitted, wanted = planned_positions([f.number for f in frames], keyframe_interval, select)
    fmt = "both" if fmt in ("txt", "both") else "json"  # the JSON is what resume and merge read
    out_dir = Path(out_dir)
    stop = should_stop or (lambda: False)
    done, previous, stopped = [], None, False
    for position in fitted:
        frame = frames[position]
        if frame.image is None:
            raise ImfitError(
                f"frame {frame.number} has no image file, but fitting frames {select} needs it "
                "(a warm start begins at its segment's keyframe). This is a bug in the caller"
            )
        record = frame_record(
            frame,
            position,
            keyframe_interval,
            None if position % keyframe_interval == 0 else frames[position - 1].number,
        )
        cfg = frame_config(config, frame.number, record["keyframe"])
        path = out_dir / f"{frame.name}.json"
        existing = finished_frame(path, record, cfg.to_dict())
        if existing is not None:
            previous = existing
            if position in wanted:
                m = existing.meta["metrics"]
                done.append(
                    FrameDone(
                        frame.number,
                        position,
                        len(wanted),
                        len(done) + 1,
                        path,
                        m.get("psnr", math.nan),
                        m.get("seconds", 0.0),
                        record["keyframe"],
                        True,
                        len(existing),
                    )
                )
                if on_frame:
                    on_frame(done[-1])
            continue
        if stop():
            stopped = True
            break
        progress = (lambda p, frame=frame: on_progress(frame, p)) if on_progress else None
        init = None if record["keyframe"] else previous
        result = api.fit_file(frame.image, frame.weight, cfg, init=init, on_progress=progress, should_stop=stop)
        if result.stopped and stop():
            stopped = True  # half a frame would not match an uninterrupted run: not written
            break
        result.wavelets.meta["metrics"][META_KEY] = record
        previous = result.wavelets
        if position in wanted:
            written = api.write_result(result, out_dir, frame.name, fmt, preview=preview)
            done.append(
                FrameDone(
                    frame.number,
                    position,
                    len(wanted),
                    len(done) + 1,
                    written[0],
                    result.psnr,
                    result.seconds,
                    record["keyframe"],
                    False,
                    len(result.wavelets),
                )
            )
            if on_frame:
                on_frame(done[-1])
    run = SequenceRun(done, stopped)
    if flicker and len(done) > 1:
        by_number = {f.number: f for f in frames}
        run.flicker = measure_flicker((by_number[d.number].image, d.path) for d in done)
    return run


def measure_flicker(pairs: Iterable[tuple[Path, Path]]) -> Optional[Flicker]:
    """Temporal flicker over consecutive (source image, fit file) pairs, at each fit's training size.

    Streams: two frames are held at a time.
    """
    import torch
    import torch.nn.functional as F

    from . import api
    from .io import images

    sums = np.zeros(3)
    count, prev = 0, None
    for image_path, fit_path in pairs:
        ws = formats.load_json(fit_path)
        fit = api.render_image(ws)
        h, w = fit.shape[:2]
        src = torch.as_tensor(images.load_image(image_path).rgb).permute(2, 0, 1)[None]
        src = F.interpolate(src, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        src = src[0].permute(1, 2, 0).clamp(0, 1).numpy()
        if prev is not None and prev[0].shape == fit.shape:
            d_fit, d_src = fit - prev[0], src - prev[1]
            sums += (np.abs(d_fit - d_src).mean(), np.abs(d_fit).mean(), np.abs(d_src).mean())
            count += 1
        prev = (fit, src)
    if count == 0:
        return None
    return Flicker(*(sums / count), count)


# ----------------------------------------------------------------------------------------
# reading results back: collect, align


@dataclass(frozen=True)
class FrameFile:
    number: int
    segment: int
    path: Path


def collect(folders: Iterable) -> list[FrameFile]:
    """The frame files of one or more output folders (shards), by frame number.

    A frame found in two folders must hold the same fit; numbers, keyframe intervals and sizes
    must agree across folders.
    """
    found: dict[int, tuple[FrameFile, WaveletSet]] = {}
    intervals, shapes = set(), set()
    folders = [Path(f) for f in folders]
    for folder in folders:
        if not folder.is_dir():
            raise ImfitError(
                f"sequence folder {folder} does not exist or is not a folder. Give the --output-dir of a sequence fit"
            )
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue  # an atomic write's temp file
            ws = formats.load_json(path)
            record = ws.meta.get("metrics", {}).get(META_KEY)
            if not isinstance(record, dict):
                continue  # not a frame of a sequence
            number = record["frame"]
            intervals.add(record["keyframe_interval"])
            shapes.add((len(ws), ws.width, ws.height))
            item = FrameFile(number, record["segment"], path)
            if number in found:
                if not np.array_equal(found[number][1].params, ws.params):
                    raise ImfitError(
                        f"frame {number} is in {found[number][0].path} and {path} with different fits: "
                        "those folders come from different runs. Merge the shards of one run only"
                    )
                continue
            found[number] = (item, ws)
    if not found:
        raise ImfitError(
            f"no sequence frames in {', '.join(map(str, folders))}: give the --output-dir of a "
            "sequence fit (its <frame>.json files)"
        )
    if len(intervals) > 1 or len(shapes) > 1:
        raise ImfitError(
            f"the frames in {', '.join(map(str, folders))} come from different runs (keyframe intervals "
            f"{sorted(intervals)}, wavelet counts and sizes {sorted(shapes)}). Merge one run's shards "
            "only"
        )
    files = [found[n][0] for n in sorted(found)]
    segments = [f.segment for f in files]
    if segments != sorted(segments):
        raise ImfitError(
            "the frames' positions do not follow their numbers: the folders come from different "
            "sequences. Merge one run's shards only"
        )
    return files


def missing_frames(files: list[FrameFile]) -> list[int]:
    """Frame numbers absent between the first and last file (a shard not merged yet), when frames
    are consecutive numbers."""
    numbers = [f.number for f in files]
    return sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers)) if numbers else []


def _cost(previous: np.ndarray, current: np.ndarray, aspect: float) -> np.ndarray:
    """(N, N) float32 matching cost: squared centre distance in units of the envelopes' sizes, plus
    squared log ratios of size and wavelength (in place: a 4096-wavelet matrix is 64 MB)."""

    def parts(p):
        p = p.astype(np.float32)
        log_size = 0.5 * (np.log(p[:, SIGMA]) + np.log(p[:, GAMMA]))
        return p[:, U] * np.float32(aspect), p[:, V], log_size, np.exp(log_size), np.log(p[:, WAVELENGTH])

    (xp, yp, lsp, sp, lwp), (xc, yc, lsc, sc, lwc) = parts(previous), parts(current)
    cost = np.zeros((len(xp), len(xc)), np.float32)
    for a, b in ((xp, xc), (yp, yc)):
        term = np.subtract.outer(a, b)
        cost += term * term
    cost /= sp[:, None]
    cost /= sc[None, :]
    for a, b in ((lsp, lsc), (lwp, lwc)):
        term = np.subtract.outer(a, b)
        cost += term * term
    return cost


def match_rows(previous: np.ndarray, current: np.ndarray, aspect: float) -> np.ndarray:
    """order with ``current[order]`` continuing ``previous`` row by row (greedy: cheapest pairs first)."""
    n = len(previous)
    cost = _cost(previous, current, aspect)
    order = np.full(n, -1)
    rows, cols = np.arange(n), np.arange(n)
    while len(rows):
        sub = cost[np.ix_(rows, cols)]
        best_col = sub.argmin(axis=1)
        best_row = sub.argmin(axis=0)
        mutual = best_row[best_col] == np.arange(len(rows))  # each row's best column picks it back
        order[rows[mutual]] = cols[best_col[mutual]]
        rows, cols = rows[~mutual], np.setdiff1d(cols, cols[best_col[mutual]])
    return order


def _turns(theta: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Half turns k making theta + k pi nearest to target."""
    return np.round((target - theta) / math.pi)


def _half_turn(params: np.ndarray, k: np.ndarray) -> np.ndarray:
    p = params.copy()
    p[:, THETA] += k * math.pi
    odd = (k.astype(np.int64) % 2) == 1
    p[odd, PHASE] = -p[odd, PHASE]  # x' -> -x': cos(-a + phase) = cos(a - phase)
    return p


def _unwrap(phases: np.ndarray, previous: np.ndarray) -> np.ndarray:
    return phases + 2 * math.pi * np.round((previous - phases) / (2 * math.pi))


def aligned_frames(files: Iterable[FrameFile]) -> Iterator[tuple[int, WaveletSet]]:
    """(frame number, wavelets) in order with wavelet identity kept across cold keyframes (see the
    module docstring).  Streams: one frame file is read at a time."""
    segment, order, turns, previous = None, None, None, None
    for item in files:
        ws = formats.load_json(item.path)
        p = ws.params.astype(np.float64)
        if previous is not None and len(p) != len(previous):
            raise ImfitError(
                f"{item.path} has {len(p)} wavelets, the frames before it {len(previous)}: "
                "a sequence keeps one count. Merge one run's frames only"
            )
        if item.segment != segment:
            segment = item.segment
            if previous is None:
                order, turns = np.arange(len(p)), np.zeros(len(p))
            else:
                order = match_rows(previous, p, ws.aspect)
                turns = _turns(p[order, THETA], previous[:, THETA])
        p = _half_turn(p[order], turns)
        if previous is not None:
            p[:, PHASE] = _unwrap(p[:, PHASE], previous[:, PHASE])
        previous = p
        yield item.number, WaveletSet(p.astype(np.float32), ws.width, ws.height, ws.meta)
