"""tools.die_with_parent: a child spawned through it gets its signal when the spawning thread ends, and keeps
its pid (it execs in place), so process-group kills and pid checks still work."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from tools.die_with_parent import wrap

SLEEPER = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(30)"]


def test_the_child_dies_with_the_thread_that_spawned_it_and_keeps_its_pid():
    spawned: dict[str, subprocess.Popen] = {}

    def spawn() -> None:
        spawned["child"] = subprocess.Popen(wrap(SLEEPER, signal.SIGKILL), stdout=subprocess.PIPE, text=True)
        spawned["child"].stdout.readline()  # running the command, past prctl and exec

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    child = spawned["child"]
    assert child.wait(10) == -signal.SIGKILL


def test_the_command_runs_in_place_under_the_spawned_pid():
    child = subprocess.Popen(
        wrap([sys.executable, "-c", "import os; print(os.getpid())"]), stdout=subprocess.PIPE, text=True
    )
    printed, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert int(printed) == child.pid
