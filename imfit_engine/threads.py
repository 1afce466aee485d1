"""CPU threads for an engine process that shares the machine (with Blender's UI, another fit, a render).

torch's OpenMP threads spin while they wait for work by default; next to another busy process they spin
against it, and a fit runs many times slower (a 64-wavelet fit: 2.8 s alone, 85 s beside another fit in
Blender).  Passive waiting avoids that; beside Blender's UI the worker also runs at a lower priority, so the UI's timers
and drawing come first, and on four cores or more it leaves one free (on two, leaving one would halve the fit
for ~0.4 core of drawing).  OpenMP reads these variables once, when torch is imported, so they go into the
environment of the process before it starts.  Standard library only: Blender's Python uses this.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def prefer_passive_waiting(env) -> None:
    """Passive OpenMP waiting in ``env`` (a dict, or ``os.environ`` before torch is imported), unless set there."""
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# The niceness a worker started beside Blender's UI gives itself (IMFIT_NICE): below the UI, above nothing else.
BACKGROUND_NICE = 5


def shared_cpu_environment(env: dict, reserve: int = 1, nice: int = 0) -> dict:
    """``env`` for an engine process: OpenMP waits passively, and uses all cores but ``reserve`` (at least one);
    with ``nice`` the process lowers its own priority by that much when it starts (``lower_priority``).
    Values already set in ``env`` are kept: a user's own choice wins."""
    out = dict(env)
    prefer_passive_waiting(out)
    if not out.get("OMP_NUM_THREADS", "").strip():
        out["OMP_NUM_THREADS"] = str(max(1, usable_cores() - max(0, reserve)))
    if nice:
        out.setdefault("IMFIT_NICE", str(nice))
    return out


def ui_reserve() -> int:
    """Cores an engine process leaves to Blender's UI: one on four cores or more, none on fewer (its priority
    is lowered instead, see ``BACKGROUND_NICE``)."""
    return 1 if usable_cores() >= 4 else 0


def lower_priority(env=os.environ) -> None:
    """Lower this process's priority by ``IMFIT_NICE`` (set by ``shared_cpu_environment``), where the OS can."""
    try:
        increment = int(env.get("IMFIT_NICE", "0"))
    except ValueError:
        return
    if increment > 0 and hasattr(os, "nice"):
        try:
            os.nice(increment)
        except OSError:
            pass  # not allowed here: the fit still runs, at normal priority
