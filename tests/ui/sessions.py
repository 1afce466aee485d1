"""The GUI sessions' parameters: small fits (tens of wavelets, tens of pixels), so each session takes seconds."""

from __future__ import annotations

from ui_session import DATA, OUT, run_session

# one fit's settings, used in Blender and on the command line for the iteration-rate comparison
# (290 full-size iterations: 551 in all with the default iter_multiple 0.3, long enough for a rate)
RATE_FIT = {"num_wavelets": 64, "size": 64, "iterations": 290, "rescales": 2}

SESSIONS = {
    "basics": dict(
        params=dict(
            image=str(DATA / "astronaut.png"),
            fit=RATE_FIT,
            fit_timeout=120,
            refine_iterations=40,
            clip=str(DATA / "clip" / "realshort_0001.png"),
            clip_frames=3,
            sequence={"num_wavelets": 16, "size": 32, "iterations": 20, "rescales": 1, "keyframe_interval": 2},
        ),
        event_simulate=False,
        timeout=420,
    ),
    "interrupts": dict(
        params=dict(
            image=str(DATA / "coffee.png"),
            fit={"num_wavelets": 64, "size": 64, "iterations": 400, "rescales": 2},
            stop_at=60,
            fit_timeout=120,
            stop_timeout=10,
            style_content=str(DATA / "chelsea.png"),
            style_image=str(DATA / "brick.png"),
            style={"levels": 1, "base": 32, "steps": 4, "noise": True},
            expand_image=str(DATA / "grass.png"),
            expand={"preset": "cpu-quick", "scale": "2", "train_iterations": 6, "as_wavelets": False},
            other_blend=None,
            undo_image=str(DATA / "brick.png"),
            undo_fit={"num_wavelets": 16, "size": 32, "iterations": 20, "rescales": 1},
        ),
        event_simulate=True,
        timeout=480,
    ),
    "eevee": dict(
        params=dict(
            image=str(DATA / "astronaut.png"),
            fit={"num_wavelets": 16, "size": 32, "iterations": 60, "rescales": 1},
            fit_timeout=120,
            compile_timeout=240,
        ),
        event_simulate=False,
        timeout=720,
    ),
}

# the large fits the eevee session imports (EEVEE before 5.0 holds ~160 unrolled wavelets; 512 crashed 4.3.2)
LARGE_COUNTS = (256, 4096, 16384)


def large_fits(counts=LARGE_COUNTS, image=DATA / "astronaut.png") -> list[list]:
    """Real fits of a bundled photo with each count of wavelets (a short fit: seeded from the image's
    structure, a few steps), saved as the engine's JSON: [[count, path], ...]."""
    import sys

    from ui_session import REPO

    sys.path.insert(0, str(REPO))
    import imfit_engine
    from support import load_rgb

    photo = load_rgb(image.name)
    out = OUT / "large_fits"
    out.mkdir(parents=True, exist_ok=True)
    fits = []
    for n in counts:
        config = imfit_engine.FitConfig(num_wavelets=n, size=max(photo.shape[:2]), iterations=20, rescales=0)
        result = imfit_engine.fit(photo, config=config, source_name=image.name)
        path = out / f"astronaut_{n}.json"
        imfit_engine.save(result.wavelets, path)
        fits.append([n, str(path)])
    return fits


def run(name: str, zip_path, **extra) -> dict:
    spec = SESSIONS[name]
    params = dict(spec["params"], zip=str(zip_path), **extra)
    if "other_blend" in params:  # a file of the session's own, opened during a fit
        params["other_blend"] = str(OUT / name / "other.blend")
    return run_session(name, params, event_simulate=spec["event_simulate"], timeout=spec["timeout"])


def cli_fit_rate(name: str, image) -> dict:
    """RATE_FIT on the command line (``imfit fit``), with the engine's shared-CPU threads on all cores (passive
    waiting, nothing reserved): iterations per second of the fit itself, as the engine reports it."""
    import json
    import os
    import subprocess
    import sys

    from ui_session import REPO, OtherLoad, engine_python

    sys.path.insert(0, str(REPO))
    from imfit_engine import threads

    out = OUT / "cli" / name
    python = engine_python()
    imfit = python.parent / "imfit"
    argv = [str(imfit)] if imfit.exists() else [str(python), "-m", "imfit_engine"]
    argv += [
        "fit",
        str(image),
        "--num-gabors",
        str(RATE_FIT["num_wavelets"]),
        "--size",
        str(RATE_FIT["size"]),
        "--iterations",
        str(RATE_FIT["iterations"]),
        "--rescales",
        str(RATE_FIT["rescales"]),
        "--device",
        "cpu",
        "--output-dir",
        str(out),
    ]
    env = threads.shared_cpu_environment({k: v for k, v in os.environ.items() if not k.startswith("OMP_")}, reserve=0)
    with OtherLoad() as load:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"imfit fit failed ({done.returncode}): {done.stderr[-1500:]}")
    metrics = json.loads((out / f"{image.stem}.json").read_text())["metrics"]
    return {
        "iterations": metrics["iterations"],
        "seconds": metrics["seconds"],
        "threads": env["OMP_NUM_THREADS"],
        "rate": metrics["iterations"] / metrics["seconds"],
        "load": load.as_dict(),
    }
