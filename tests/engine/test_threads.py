"""The engine's CPU-sharing environment (imfit_engine/threads.py): passive OpenMP waiting and a core left free,
as torch sees them when it is imported in a process started with it (the add-on's fit worker)."""

from __future__ import annotations

import subprocess
import sys

from imfit_engine import threads
from support import REPO

PROBE = "import os, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"


def test_leaves_a_core_and_waits_passively():
    env = threads.shared_cpu_environment({"PATH": "/bin"}, reserve=1)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["OMP_NUM_THREADS"] == str(max(1, threads.usable_cores() - 1))
    assert threads.shared_cpu_environment({}, reserve=64)["OMP_NUM_THREADS"] == "1"  # never none
    assert threads.shared_cpu_environment({}, reserve=0)["OMP_NUM_THREADS"] == str(threads.usable_cores())


def test_a_users_own_settings_win():
    env = threads.shared_cpu_environment({"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"})
    assert env["OMP_NUM_THREADS"] == "3" and env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert threads.shared_cpu_environment({"OMP_NUM_THREADS": " "})["OMP_NUM_THREADS"].isdigit()  # blank: unset


def test_torch_in_a_process_started_with_it_uses_those_threads():
    env = threads.shared_cpu_environment({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, reserve=1)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [env["OMP_NUM_THREADS"], "PASSIVE"]
