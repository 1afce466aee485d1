"""Which Python runs the engine, with what on its path, and what it offers (the probe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import bpy

from ..engine import ADDON_ID, ENGINE_ROOT, EXTENSION_PACKAGE, ImfitError, protocol, threads

PROBE_TIMEOUT = 120.0  # importing torch and initialising CUDA can take a while on a cold disk


def site_folder(create: bool = False) -> str | None:
    """The extension's own folder for an installed PyTorch; None when not running as an extension."""
    if not EXTENSION_PACKAGE.startswith("bl_ext."):
        return None
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="site", create=create)
    except (ValueError, RuntimeError):
        return None


def engine_python(prefs) -> tuple[str, dict]:
    """(interpreter, environment) for the worker, or an ImfitError saying what to fix."""
    extra_paths = []
    if prefs.python_source == "EXTERNAL":
        python = bpy.path.abspath(prefs.python_path.strip()) if prefs.python_path.strip() else ""
        if not python:
            raise ImfitError(
                "no external Python is set: enter its path in Preferences > Add-ons > Gabor ImFit, "
                "or switch the engine back to Blender's Python"
            )
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise ImfitError(
                f"the external Python {python} does not exist or is not executable: fix its path in "
                "Preferences > Add-ons > Gabor ImFit"
            )
    else:
        python = sys.executable
        site = site_folder()
        if site and os.path.isdir(site):
            extra_paths.append(site)
    return python, worker_environment(extra_paths)


def worker_environment(extra_paths: list[str]) -> dict:
    """This process's environment with the engine (and ``extra_paths``) first on PYTHONPATH, and torch's
    threads set to share the CPU: passive waiting, and a core left for Blender's UI (none in background mode)."""
    env = dict(os.environ)
    paths = [str(ENGINE_ROOT), *extra_paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return threads.shared_cpu_environment(env, reserve=0 if bpy.app.background else 1)


def probe(prefs) -> dict:
    """Run the engine's probe in the chosen Python; a dict with ``error`` when that fails."""
    try:
        python, env = engine_python(prefs)
    except ImfitError as e:
        return {"error": str(e)}
    return run_probe(python, env)


def run_probe(python: str, env: dict) -> dict:
    """The probe itself: no bpy, so it may run on a thread while the UI stays responsive."""
    try:
        done = subprocess.run(
            protocol.module_command(python, "probe"),
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"python": python, "error": f"cannot run {python}: {e}"}
    for line in done.stdout.splitlines():
        message = protocol.decode_line(line)
        if message and message["type"] == "probe":
            return message
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"python": python, "error": f"{python} could not run the engine probe (exit code {done.returncode}): {tail}"}


def probe_key(prefs) -> str:
    """What a cached probe was run for: it is stale once this changes."""
    if prefs.python_source == "EXTERNAL":
        return json.dumps(["EXTERNAL", prefs.python_path])
    site = site_folder()
    return json.dumps(["BLENDER", sys.executable, bool(site and os.path.isdir(site))])


def status_line(info: dict | None) -> str:
    if not info:
        return "Not checked yet: press Check"
    if info.get("error"):
        return info["error"]
    if not info.get("torch"):
        missing = "PyTorch" if info.get("numpy") else "PyTorch and numpy"
        return f"No {missing} in Python {info.get('python_version', '?')} ({info.get('python')})"
    device = f"CUDA: {info['gpu']}" if info.get("cuda") else ("Apple GPU (MPS)" if info.get("mps") else "CPU only")
    extra = "" if info.get("pillow") else " - pillow missing"
    return f"PyTorch {info['torch']}, {device}, Python {info.get('python_version', '?')}{extra}"


def engine_ready(info: dict | None) -> bool:
    return bool(info and not info.get("error") and info.get("torch") and info.get("pillow") and info.get("numpy"))


class InstallStatus:
    """What the installer is doing, shown in the preferences; one install at a time."""

    def __init__(self):
        self.text = ""
        self.running = False
        self.failed = False
        self.process = None  # the installer's WorkerProcess while it runs


install_status = InstallStatus()
