"""The worker process: its protocol channel, stop requests, job dispatch, errors in words; probe and install.

Only the standard library at the top: ``probe`` must run (and report) in a Python without numpy or torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from .. import threads
from .protocol import STOP_LINE, TORCH_REQUIREMENTS, encode_message


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
    from .. import limits
    from ..errors import ImfitError

    def bad(what: str):
        return ImfitError(f"the worker job file {path} {what}. This is a bug in the add-on; please report it")

    limits.regular_file(path, "the worker job file")
    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(f"cannot be read ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(job, dict) or not (job.get("image") or job.get("sequence") or job.get("bake")):
        raise bad("names no image, sequence or bake")
    if not job.get("output_dir"):
        raise bad("names no output folder")
    for key in ("image", "weight", "init", "style", "source_name", "output_dir", "kind"):
        if job.get(key) is not None and not isinstance(job[key], str):
            raise bad(f"has {key} = {job[key]!r:.60}, not a text")
    for key, kind in (("config", dict), ("sequence", dict), ("style_config", dict), ("expand", dict), ("bake", dict)):
        if job.get(key) is not None and not isinstance(job[key], kind):
            raise bad(f"has {key} = {job[key]!r:.60}, not an object")
    seconds = job.get("preview_seconds", 1.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e6:
        raise bad(f"has preview_seconds = {seconds!r:.40}, not a number of seconds")
    out = Path(job["output_dir"])
    if out.exists() and not out.is_dir():
        raise ImfitError(f"the output folder {out} is a file: choose a folder for the results")
    return job


def error_for(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of an exception, in words for the user."""
    from ..errors import ImfitError

    if isinstance(exc, ImfitError):
        return "user", str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in ("torch", "numpy", "PIL"):
        package = {"PIL": "pillow"}.get(exc.name.split(".")[0], exc.name.split(".")[0])
        return "no_torch", (
            f"the Python at {sys.executable} has no {package} (it needs torch, numpy and "
            "pillow). Install PyTorch from the add-on preferences, or choose a Python that has them"
        )
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        return "out_of_memory", (
            "the device ran out of memory. Use fewer wavelets or a smaller size, "
            f"or the CPU device ({text.splitlines()[0][:200]})"
        )
    return "internal", f"the fit failed: {text.splitlines()[0][:300]} (details in the console)"


def run(job_path: str) -> int:
    threads.lower_priority()  # a worker beside Blender's UI yields the CPU to it
    channel = _Channel()
    should_stop = _StopRequest()
    try:
        from . import jobs

        jobs.run_job(_read_job(job_path), channel.send, should_stop)
        return 0
    except BaseException as exc:  # everything becomes one error message; the details go to stderr
        kind, message = error_for(exc)
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
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        for line in proc.stdout:
            if line.strip():
                channel.send("log", line=line.rstrip()[:300])
        return proc.wait()

    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        if stream([sys.executable, "-m", "ensurepip", "--upgrade"]) != 0:
            channel.send(
                "error",
                kind="user",
                message=f"{sys.executable} has no pip and ensurepip failed; "
                "install PyTorch into an external Python and choose it in the preferences",
            )
            return 1
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--upgrade",
        "--target",
        target,
        *TORCH_REQUIREMENTS,
    ]
    if index_url:
        argv += ["--index-url", index_url, "--extra-index-url", "https://pypi.org/simple"]
    if stream(argv) != 0:
        channel.send(
            "error",
            kind="user",
            message=f"pip could not install {' '.join(TORCH_REQUIREMENTS)} into "
            f"{target} (see the console for pip's output). Check the network, or use an external Python",
        )
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
