"""Measure a fit's iteration rate in Blender's window and on the command line, alone and beside a competing fit,
with the extension of a given commit (e.g. the one before the worker's thread settings) and with this checkout.

Run as root: ``.venv/bin/python tests/ui/measure_rates.py [--before COMMIT]``; prints a table (and writes
out/ui/rates.json).  Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sessions
import ui_session
from ui_session import DATA, OUT, REPO, OtherLoad

IMAGE = DATA / "astronaut.png"


@contextlib.contextmanager
def competing_fit(enabled: bool):
    """Another fit using the CPU meanwhile, started the way a user would (no thread settings)."""
    if not enabled:
        yield
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    out = tempfile.mkdtemp(prefix="imfit-competitor-")
    proc = subprocess.Popen(
        [
            str(ui_session.engine_python()),
            "-m",
            "imfit_engine",
            "fit",
            str(DATA / "coffee.png"),
            "--num-gabors",
            "256",
            "--size",
            "128",
            "--iterations",
            "100000",
            "--rescales",
            "0",
            "--device",
            "cpu",
            "--output-dir",
            out,
        ],
        env=env,
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(8)  # past torch's import: fitting
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def gui_rate(zip_path: Path) -> dict:
    spec = sessions.SESSIONS["basics"]
    params = dict(spec["params"], zip=str(zip_path), stop_after="fit", fit_timeout=150)
    results = ui_session.run_session("rates", params, timeout=300, driver="basics")
    fit = results["fit"]
    running = [s for s in fit["samples"] if s[2]]
    if fit["result"].get("seconds"):
        rate = fit["result"]["iterations"] / fit["result"]["seconds"]
    else:  # unfinished within the timeout: the iterations it got through
        rate = (running[-1][1] - running[0][1]) / max(running[-1][0] - running[0][0], 1e-6) if running else 0.0
    return {
        "rate": rate,
        "finished": bool(fit["result"].get("seconds")),
        "iterations": running[-1][1] if running else 0,
        "load": results["load"],
    }


def cli_rate(shared_threads: bool) -> dict:
    if shared_threads:
        return sessions.cli_fit_rate("rates", IMAGE)
    out = OUT / "cli" / "rates-default"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    argv = [
        str(ui_session.engine_python()),
        "-m",
        "imfit_engine",
        "fit",
        str(IMAGE),
        "--num-gabors",
        "64",
        "--size",
        "64",
        "--iterations",
        "100",
        "--rescales",
        "2",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
    ]
    with OtherLoad() as load:
        subprocess.run(argv, env=env, cwd=str(REPO), capture_output=True, check=True, timeout=900)
    metrics = json.loads((out / "astronaut.json").read_text())["metrics"]
    return {"rate": metrics["iterations"] / metrics["seconds"], "finished": True, "load": load.as_dict()}


def zip_of(commit: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="imfit-before-"))
    subprocess.run(f"git -C {REPO} archive {commit} | tar -x -C {folder}", shell=True, check=True)
    out = OUT / "dist-before"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "build_extension.py"),
            "--source-dir",
            str(folder),
            "--output-dir",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("gabor_imfit-*.zip"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="223f6f1", help="commit of the extension before the change")
    a = parser.parse_args()
    ui_session.ensure_root()
    zips = {"before": zip_of(a.before), "after": ui_session.build_zip()}
    rows = []
    for loaded in (False, True):
        for name, measure in (
            ("CLI, no thread settings", lambda: cli_rate(False)),
            ("CLI, shared-CPU threads", lambda: cli_rate(True)),
            (f"GUI, extension {a.before}", lambda: gui_rate(zips["before"])),
            ("GUI, this checkout", lambda: gui_rate(zips["after"])),
        ):
            with competing_fit(loaded):
                row = dict(measure(), case=name, competing_fit=loaded)
            rows.append(row)
            print(
                f"{name:32} {'beside a fit' if loaded else 'alone':13} {row['rate']:7.1f} it/s"
                f"{'' if row.get('finished', True) else ' (unfinished)'}"
                f"  other load {row['load']['other_cores']:.1f} cores",
                flush=True,
            )
    (OUT / "rates.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
