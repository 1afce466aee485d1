"""The pytest side of the GUI tier: the Blender 4.3.2 root, the extension zip, and one Blender GUI session per
driver script (``drive_*.py``), whose ``results.json`` and screenshots land in ``out/ui/<session>/``.

Run a session by hand (as root): ``.venv/bin/python tests/ui/ui_session.py basics`` (the tests' parameters).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TOOLS = REPO / "tools" / "blender_ui"
OUT = REPO / "out" / "ui"
DATA = REPO / "tests" / "data"
ROOT = Path(os.environ.get("IMFIT_UI_ROOT", "/var/tmp/blender-ui-root"))
SETUP_TIMEOUT = 1800  # debootstrap and Blender's packages: ~90 s on a good mirror


class Unavailable(Exception):
    """This machine cannot run the tier (the reason is the message): the tests skip."""


def engine_python() -> Path:
    """The Python whose torch runs the engine: the repository's .venv (the tests' own interpreter else)."""
    venv = REPO / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def python_tree(python: Path) -> Path:
    """The folder that holds the real interpreter behind ``python`` (a venv's python is a link to it)."""
    base = subprocess.run(
        [str(python), "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = Path(base).resolve()
    if str(tree) in ("/", "/usr"):
        raise Unavailable(
            f"the engine's Python {python} is the system's ({tree}); the GUI tier binds the Python's "
            "folder into Blender's Debian 13 root and cannot bind /usr: use a Python installed "
            "elsewhere (pyenv, python.org, /opt)"
        )
    return tree


def ensure_root() -> Path:
    if os.environ.get("IMFIT_UI", "1") == "0":
        raise Unavailable("IMFIT_UI=0: the GUI tier is turned off")
    if os.geteuid() != 0:
        raise Unavailable("the GUI tier runs Blender 4.3.2 in a Debian 13 root (chroot, mounts): run the tests as root")
    done = subprocess.run(
        ["bash", str(TOOLS / "setup_root.sh"), str(ROOT)], capture_output=True, text=True, timeout=SETUP_TIMEOUT
    )
    if done.returncode == 77:
        raise Unavailable(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "setup_root.sh: 77")
    if done.returncode != 0:
        raise RuntimeError(f"building the Blender UI root failed:\n{done.stderr[-2000:]}")
    return ROOT


def build_zip() -> Path:
    out = OUT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_extension.py"), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the extension zip failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (zip_path,) = out.glob("gabor_imfit-*.zip")
    return zip_path


class SessionFailed(AssertionError):
    pass


class OtherLoad:
    """How much CPU other processes (not this test's children) used while a block ran, in cores: timings are
    only meaningful on a machine that is not busy with other work.  Niced processes are left out (they give
    way to ours)."""

    def __enter__(self):
        self._start = self._sample()
        return self

    @staticmethod
    def _sample():
        import resource

        with open("/proc/stat", encoding="utf-8") as f:
            user, _nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        tick = os.sysconf("SC_CLK_TCK")
        return (
            time.monotonic(),
            (user + system + irq + softirq + steal) / tick,
            children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime,
        )

    def __exit__(self, *exc):
        (t0, busy0, ours0), (t1, busy1, ours1) = self._start, self._sample()
        wall = max(t1 - t0, 1e-6)
        self.cores = max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / wall)
        self.ours = (ours1 - ours0) / wall
        return False

    def as_dict(self) -> dict:
        return {"other_cores": round(self.cores, 2), "our_cores": round(self.ours, 2)}


BUSY_CORES = 0.5  # other processes using more than this: the machine is busy, timings are not checked


def check_timing(ok: bool, measured: str, *loads: dict) -> None:
    """Assert a timing (``ok``, described by ``measured``), unless other work competed for the CPU while it was
    measured: then skip, saying what was measured."""
    import pytest

    busiest = max(m["other_cores"] for m in loads)
    if busiest > BUSY_CORES:
        pytest.skip(
            f"the machine was busy with other work ({busiest:.1f} cores used by other processes): timing "
            f"not checked; measured {measured}"
        )
    assert ok, measured


def run_session(
    name: str, params: dict, *, event_simulate: bool = False, timeout: float = 600, driver: str | None = None
) -> dict:
    """Run ``drive_<driver or name>.py`` in a Blender window, its output in ``out/ui/<name>``; its results
    (``results.json``) with ``log`` (Blender's output), ``wall`` (seconds, start-up included) and ``load`` (what
    other processes used of the CPU meanwhile) added."""
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    python = engine_python()
    params = dict(params, out=str(out), python=str(python), timeout=timeout - 30)
    (out / "params.json").write_text(json.dumps(params, indent=1))
    env = dict(
        os.environ,
        UI_PARAMS=str(out / "params.json"),
        UI_TIMEOUT=str(int(timeout)),
        BLENDER_ARGS="--enable-event-simulate" if event_simulate else "",
    )
    t = time.monotonic()
    with OtherLoad() as load:
        done = subprocess.run(
            [
                "bash",
                str(TOOLS / "run_session.sh"),
                str(ROOT),
                str(HERE / f"drive_{driver or name}.py"),
                str(out),
                str(REPO),
                str(python_tree(python)),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
    wall = time.monotonic() - t
    log = (out / "blender.log").read_text(errors="replace") if (out / "blender.log").exists() else ""
    results_path = out / "results.json"
    if not results_path.exists():
        raise SessionFailed(
            f"GUI session {name} wrote no results (exit {done.returncode}, {wall:.0f} s): "
            f"{done.stderr[-1500:]}\n--- blender.log (end) ---\n{log[-4000:]}"
        )
    results = json.loads(results_path.read_text())
    results.update(log=log, wall=round(wall, 1), returncode=done.returncode, out=str(out), load=load.as_dict())
    return results


STATUS_BAR = 23  # Blender's status bar: the window's bottom rows, in pixels (UI scale 1)


def need(results: dict, *keys):
    """results[key] for each key, or a failure that says where the driver stopped."""
    missing = [k for k in keys if k not in results]
    assert not missing, f"the driver did not get to {missing}: {results.get('errors')}\n{results.get('traceback', '')}"
    return [results[k] for k in keys] if len(keys) > 1 else results[keys[0]]


def shot(results: dict, name: str) -> Path:
    path = Path(results["out"]) / f"{name}.png"
    assert path.exists(), f"screenshot {name} missing in {results['out']}"
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import sessions

    ensure_root()
    which = sys.argv[1]
    results = sessions.run(which, build_zip())
    print(json.dumps({k: v for k, v in results.items() if k != "log"}, indent=1)[:20000])
