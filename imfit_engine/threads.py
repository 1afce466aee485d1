"""CPU threads for an engine process that shares the machine (with Blender's UI, another fit, a render).

torch's OpenMP threads spin while they wait for work by default; next to another busy process they spin
against it, and a fit runs many times slower (a 64-wavelet fit: 2.8 s alone, 85 s beside another fit in
Blender).  Passive waiting and one core left free avoid that.  OpenMP reads these variables once, when torch is
imported, so they go into the environment of the process before it starts.  Standard library only: Blender's
Python uses this.
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


def shared_cpu_environment(env: dict, reserve: int = 1) -> dict:
    """``env`` for an engine process: OpenMP waits passively, and uses all cores but ``reserve`` (at least one).
    Values already set in ``env`` are kept: a user's own choice wins."""
    out = dict(env)
    prefer_passive_waiting(out)
    if not out.get("OMP_NUM_THREADS", "").strip():
        out["OMP_NUM_THREADS"] = str(max(1, usable_cores() - max(0, reserve)))
    return out
