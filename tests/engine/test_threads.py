"""The engine's CPU-sharing environment (imfit_engine/threads.py): passive OpenMP waiting, a core left free and a
lower priority, as torch and the OS see them in a process started with it (the add-on's fit worker)."""

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


def test_beside_the_ui_a_core_is_left_only_on_four_or_more(monkeypatch):
    for cores, reserved in ((1, 0), (2, 0), (3, 0), (4, 1), (16, 1)):
        monkeypatch.setattr(threads, "usable_cores", lambda cores=cores: cores)
        assert threads.ui_reserve() == reserved, cores


NICE_PROBE = (
    "import os; from imfit_engine import threads; before = os.nice(0); threads.lower_priority(); "
    "print(os.nice(0) - before)"
)


def test_a_worker_beside_the_ui_lowers_its_priority():
    env = threads.shared_cpu_environment(
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, nice=threads.BACKGROUND_NICE
    )
    done = subprocess.run([sys.executable, "-c", NICE_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == threads.BACKGROUND_NICE
    plain = threads.shared_cpu_environment({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-c", NICE_PROBE], env=plain, capture_output=True, text=True, timeout=120)
    assert int(done.stdout) == 0  # the command line and background Blender keep their priority
