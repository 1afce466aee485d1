"""The worker's jobs: ``JOBS`` maps a job file's kind to the function that runs it.

Every job file has ``output_dir`` and ``preview_seconds``; a fitting job also ``image`` (or ``sequence``),
``source_name`` and ``config`` (``FitConfig.to_dict()`` fields, the rest default), a bake ``bake``; each kind
adds its own fields:

``fit``        ``weight``, ``init`` (a canonical JSON to warm-start from, or null)
``sequence``   ``sequence``: ``{"frames": [{"number", "image", "weight", "stem"}, ...], "keyframe_interval": K,
               "select": [A, B] or null}``
``fit_style``  ``style`` (the style image), ``style_config`` (``StyleConfig`` fields), ``init``
``stylize``    ``style``, ``style_config``
``expand``     ``expand``: ``{"preset", "scale", "overrides": {ExpandConfig fields}, "checkpoint": path or null,
               "match": bool}``; ``config`` is null, or the settings of a wavelet fit of the expansion
``bake``       ``bake``: ``{"fit": canonical JSON (size, aspect, the values of frames without their own),
               "width", "height", "folder", "stem", "frames": [{"number": scene frame or null (a still),
               "params": an (N, 12) float32 .npy or null, "controls": {Controls fields}, "key": field key}]}``;
               no ``image`` and no ``config``

Results (the ``result`` message):

* a fit (``fit``, ``fit_style``): ``path`` of the canonical JSON, ``preview``, ``psnr``, ``seconds``,
  ``iterations``, ``stopped``, ``message``, ``wavelets``;
* ``sequence``: ``path`` (the frames folder), ``frames``, the mean ``psnr``, the summed ``seconds``,
  ``stopped``, ``message``, ``wavelets``, ``flicker`` (``Flicker`` fields, or null); each finished frame
  sends ``frame`` (number, index, count, path, psnr, seconds, keyframe, resumed) and progress carries ``frame``;
* ``stylize``: ``kind``, ``path`` of the PNG, ``preview``, ``width``, ``height``, ``seconds``, ``iterations``,
  ``stopped``, ``message``, ``psnr``;
* ``bake``: ``manifest`` (``<stem>.bake.json``: size and each frame's key and file), ``files`` ({frame or
  "still": PNG}), ``frames`` (baked or resumed), ``resumed``, ``width``, ``height``, ``seconds``, ``stopped``,
  ``message``; each frame sends ``frame`` (number, index, count, path, seconds, resumed);
* ``expand``: ``path`` (the expanded PNG), ``width``, ``height``, ``scale``, ``reused`` (a cached generator),
  ``iterations`` (the generator's), ``seconds``, ``stopped``, ``message``, and for a wavelet fit ``fit`` (its
  JSON), ``preview``, ``psnr``, ``wavelets``.  Its progress adds ``phase`` ("train" or "fit") and, while
  training, ``losses`` (adv, style, l1, g, d).

The engine is imported inside each job: the worker's start-up stays cheap and a missing package becomes an
error message, not a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import ImfitError
from .protocol import (
    BAKE_FORMAT,
    DEFAULT_PREVIEW_SECONDS,
    PREVIEW_NAME,
    RESULT_STEM,
    bake_file,
    bake_manifest,
    read_bake_manifest,
)

STYLIZED_NAME = "stylized.png"
EXPANDED_NAME = "expanded.png"

Send = Callable[..., None]


class _Previews:
    """Writes the live preview PNG (atomically) at most every ``preview_seconds`` and tells Blender."""

    def __init__(self, job: dict, send: Send):
        self.path = Path(job["output_dir"]) / PREVIEW_NAME
        self.every = float(job.get("preview_seconds", DEFAULT_PREVIEW_SECONDS))
        self.send = send
        self.last = time.perf_counter()

    def maybe(self, make: Callable) -> None:
        if time.perf_counter() - self.last >= self.every:
            from ..io import images

            images.save_png(self.path, make())
            self.last = time.perf_counter()
            self.send("preview", path=str(self.path))


def _progress_sender(job: dict, send: Send):
    """on_progress(p, **extra) for a fit's ``Progress``: a progress message, and now and then a preview."""
    previews = _Previews(job, send)

    def on_progress(p, **extra) -> None:
        send(
            "progress",
            iteration=p.iteration,
            total=p.total,
            level=p.level,
            levels=p.levels,
            loss=p.loss,
            psnr=p.psnr,
            elapsed=p.elapsed,
            **extra,
        )
        previews.maybe(p.preview)

    return on_progress


def _fit_config(job: dict):
    from ..core.config import FitConfig, check_config
    from ..core.device import check_device

    config = FitConfig.from_dict(job.get("config") or {})
    check_config(config)  # a job file's values are typed by the add-on: strings for numbers are a user error
    check_device(config.device)
    return config


def _init(job: dict):
    from ..io import formats

    return formats.load_json(job["init"]) if job.get("init") else None


def _send_fit_result(result, job: dict, send: Send) -> None:
    from ..api import write_result

    if job.get("source_name"):
        result.wavelets.meta.setdefault("source", {})["name"] = job["source_name"]
    fit_json, fit_png = write_result(result, job["output_dir"], RESULT_STEM, "json", preview=True)
    send(
        "result",
        path=str(fit_json),
        preview=str(fit_png),
        psnr=result.psnr,
        seconds=result.seconds,
        iterations=result.iterations,
        stopped=result.stopped,
        message=result.message,
        wavelets=len(result.wavelets),
    )


def run_fit(job: dict, send: Send, should_stop) -> None:
    from ..api import fit_file

    result = fit_file(
        job["image"],
        job.get("weight"),
        _fit_config(job),
        init=_init(job),
        on_progress=_progress_sender(job, send),
        should_stop=should_stop,
    )
    _send_fit_result(result, job, send)


def run_sequence(job: dict, send: Send, should_stop) -> None:
    from .. import sequence

    config = _fit_config(job)
    on_progress = _progress_sender(job, send)
    spec = job["sequence"]
    try:
        frames = [
            sequence.Frame(int(f["number"]), f.get("image"), f.get("weight"), f.get("stem") or "")
            for f in spec["frames"]
        ]
        interval, select = int(spec.get("keyframe_interval", 10)), spec.get("select")
        select = (int(select[0]), int(select[1])) if select else None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ImfitError(
            f"the sequence job has bad frames ({type(e).__name__}: {str(e)[:100]}). This is a bug in the add-on; "
            "please report it"
        ) from None

    def on_frame(done) -> None:
        send(
            "frame",
            number=done.number,
            index=done.index,
            count=done.count,
            path=str(done.path),
            psnr=done.psnr,
            seconds=done.seconds,
            keyframe=done.keyframe,
            resumed=done.resumed,
        )

    out = Path(job["output_dir"]) / "frames"
    run = sequence.fit_sequence(
        frames,
        config,
        out,
        interval,
        select=select,
        preview=False,
        on_frame=on_frame,
        on_progress=lambda f, p: on_progress(p, frame=f.number),
        should_stop=should_stop,
    )
    message = "stopped on request; the finished frames are kept" if run.stopped else ""
    send(
        "result",
        path=str(out),
        frames=len(run.frames),
        psnr=run.psnr,
        seconds=sum(f.seconds for f in run.frames),
        stopped=run.stopped,
        message=message,
        wavelets=config.num_wavelets,
        flicker=asdict(run.flicker) if run.flicker else None,
    )


def _style_config(job: dict, device: str):
    from ..style.config import StyleConfig

    if not job.get("style"):
        raise ImfitError("no style image was given: choose one in the Style panel")
    given = job.get("style_config") or {}
    config = StyleConfig.from_dict(given)
    return config if "device" in given else replace(config, device=device)


def run_fit_style(job: dict, send: Send, should_stop) -> None:
    from ..style.fit import fit_style_file

    config = _fit_config(job)
    result = fit_style_file(
        job["image"],
        job.get("style"),
        config,
        _style_config(job, config.device),
        init=_init(job),
        on_progress=_progress_sender(job, send),
        should_stop=should_stop,
    )
    _send_fit_result(result, job, send)


def run_stylize(job: dict, send: Send, should_stop) -> None:
    from ..style.fit import stylize_file

    config = _fit_config(job)
    path = Path(job["output_dir"]) / STYLIZED_NAME
    r = stylize_file(
        job["image"],
        job.get("style"),
        path,
        _style_config(job, config.device),
        on_progress=_progress_sender(job, send),
        should_stop=should_stop,
    )
    send(
        "result",
        kind="stylize",
        path=str(path),
        preview=str(path),
        width=int(r.image.shape[1]),
        height=int(r.image.shape[0]),
        seconds=r.seconds,
        iterations=r.steps,
        stopped=r.stopped,
        message=r.message,
        psnr=r.psnr,
    )


def run_expand(job: dict, send: Send, should_stop) -> None:
    from ..core.device import check_device
    from ..expand import apply, train
    from ..expand import config as expand_config
    from ..io import images

    spec = job.get("expand") or {}
    try:
        scale = int(spec.get("scale", 2))
        overrides = dict(spec.get("overrides") or {})
        config = expand_config.preset_config(str(spec.get("preset", "cpu-quick")), **overrides)
    except (TypeError, ValueError) as e:
        raise ImfitError(
            f"the expansion job has bad settings ({e}). This is a bug in the add-on; please report it"
        ) from None
    if scale not in expand_config.SCALES:
        raise ImfitError(f"expansion scale must be 2, 4 or 8, got {scale}")
    check_device(config.device)
    out_dir = Path(job["output_dir"])
    fit_dict = job.get("config")
    levels = 2 if fit_dict else 1
    rgb = images.load_image(job["image"]).rgb
    previews = _Previews(job, send)

    def on_train(p) -> None:
        send(
            "progress",
            iteration=p.iteration,
            total=p.total,
            level=0,
            levels=levels,
            loss=p.losses["g"],
            psnr=0.0,
            elapsed=p.elapsed,
            phase="train",
            losses=p.losses,
        )
        previews.maybe(p.preview)

    start = time.perf_counter()
    trained = train.train(
        rgb,
        config,
        checkpoint=spec.get("checkpoint"),
        on_mismatch="retrain",
        on_progress=on_train,
        should_stop=should_stop,
    )
    expanded = apply.expand(trained.generator, rgb, scale, match=bool(spec.get("match", False)))
    expanded_path = out_dir / EXPANDED_NAME
    images.save_png(expanded_path, expanded)
    result = dict(
        path=str(expanded_path),
        width=int(expanded.shape[1]),
        height=int(expanded.shape[0]),
        scale=scale,
        reused=trained.reused,
        iterations=trained.iterations,
        stopped=trained.stopped,
        message=trained.message,
        fit=None,
        preview=None,
        psnr=None,
        wavelets=0,
    )
    if fit_dict and not trained.stopped:
        result.update(_fit_expansion(expanded, job, send, previews, should_stop))
    result["seconds"] = time.perf_counter() - start
    send("result", **result)


def _fit_expansion(expanded, job: dict, send: Send, previews: _Previews, should_stop) -> dict:
    from ..api import fit, write_result

    def on_fit(p) -> None:
        send(
            "progress",
            iteration=p.iteration,
            total=p.total,
            level=1,
            levels=2,
            loss=p.loss,
            psnr=p.psnr,
            elapsed=p.elapsed,
            phase="fit",
        )
        previews.maybe(p.preview)

    name = f"{job.get('source_name') or Path(job['image']).name} expanded"
    fitted = fit(expanded, None, _fit_config(job), on_progress=on_fit, should_stop=should_stop, source_name=name)
    fit_json, fit_png = write_result(fitted, job["output_dir"], RESULT_STEM, "json", preview=True)
    out = dict(fit=str(fit_json), preview=str(fit_png), psnr=fitted.psnr, wavelets=len(fitted.wavelets))
    if fitted.stopped:
        out.update(stopped=True, message=fitted.message)
    return out


def run_bake(job: dict, send: Send, should_stop) -> None:
    """Render a field (a still, or one frame per entry with its own values and controls) to 16-bit PNGs of
    the stored values, each written atomically; frames whose file and key are in the manifest are kept."""
    import json

    import numpy as np
    import torch

    from .. import limits
    from ..core import resynth
    from ..core.render import pair_count, render
    from ..io import atomic, formats, png

    spec = job.get("bake") or {}
    try:
        width, height = int(spec["width"]), int(spec["height"])
        folder, stem, frames = Path(spec["folder"]), str(spec["stem"]), list(spec["frames"])
    except (KeyError, TypeError, ValueError) as e:
        raise ImfitError(
            f"the bake job has bad settings ({e}). This is a bug in the add-on; please report it"
        ) from None
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ImfitError(f"bake size must be 1..16384 pixels per side, got {width}x{height}")
    fit = formats.load_json(spec["fit"])
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / bake_manifest(stem)
    done = read_bake_manifest(manifest_path, width, height)
    start = time.perf_counter()
    files, resumed, stopped = {}, 0, False
    for index, frame in enumerate(frames):
        if should_stop():
            stopped = True
            break
        number = frame.get("number")
        label = "still" if number is None else str(int(number))
        path = folder / bake_file(stem, number)
        t0 = time.perf_counter()
        entry = done.get(label)
        kept = bool(entry and entry.get("key") == frame.get("key") and path.is_file())
        if kept:
            resumed += 1
        else:
            if frame.get("params"):
                params = np.load(frame["params"], allow_pickle=False)
            else:
                params = fit.params
            if params.ndim != 2 or params.shape[1] != 12:
                raise ImfitError(f"frame {label}: the values have shape {params.shape}, not (N, 12)")
            controls = resynth.Controls.from_dict(frame.get("controls"))
            p = torch.as_tensor(resynth.controlled(params, controls), dtype=torch.float32)
            limits.check_memory(  # as imfit render does: a bake past the machine's memory is refused in words
                limits.render_bytes(width * height, pair_count(p, fit.aspect, width, height)),
                f"baking {len(p)} wavelets at {width}x{height}",
                "Bake at a smaller Size",
            )
            with torch.no_grad():
                signed = render(p, fit.aspect, width, height).numpy()
            png.write_png16(path, resynth.to_display(resynth.apply_gain(signed, controls)))
            done[label] = {"key": frame.get("key"), "file": path.name}
            doc = {"format": BAKE_FORMAT, "version": 1, "width": width, "height": height, "frames": done}
            atomic.write_atomic(manifest_path, json.dumps(doc, indent=1, sort_keys=True))
        files[label] = str(path)
        seconds = time.perf_counter() - t0
        send(
            "frame",
            number=number,
            index=index + 1,
            count=len(frames),
            path=str(path),
            seconds=seconds,
            resumed=kept,
        )
        send(
            "progress",
            iteration=index + 1,
            total=len(frames),
            level=0,
            levels=1,
            loss=0.0,
            psnr=0.0,
            elapsed=time.perf_counter() - start,
        )
    send(
        "result",
        manifest=str(manifest_path),
        files=files,
        frames=len(files),
        resumed=resumed,
        width=width,
        height=height,
        seconds=time.perf_counter() - start,
        stopped=stopped,
        message=f"stopped on request after {len(files)} of {len(frames)} frames; Bake again resumes" if stopped else "",
    )


JOBS = {
    "bake": run_bake,
    "fit": run_fit,
    "sequence": run_sequence,
    "fit_style": run_fit_style,
    "stylize": run_stylize,
    "expand": run_expand,
}


def job_kind(job: dict) -> str:
    """A job file's kind; a plain fit job with a sequence or a style is that kind of job."""
    kind = job.get("kind") or "fit"
    if kind == "fit" and job.get("sequence"):
        return "sequence"
    if kind == "fit" and job.get("style"):
        return "fit_style"
    return kind


def run_job(job: dict, send: Send, should_stop) -> None:
    kind = job_kind(job)
    if kind not in JOBS:
        raise ImfitError(f"unknown job kind {kind!r}. This is a bug in the add-on; please report it")
    JOBS[kind](job, send, should_stop)
