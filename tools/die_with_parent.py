"""`python -m tools.die_with_parent SIGNAL COMMAND...`: run COMMAND so that it gets SIGNAL when its parent dies.

PR_SET_PDEATHSIG survives exec, so this sets it and execs the command in place. It replaces a `preexec_fn`
in subprocess.Popen on purpose: a preexec_fn forces a plain fork() that runs the parent's at-fork hooks in
the child, and gRPC's hooks there (the parent has live channels) can abort the child before it ever execs
("epoll_wait error: Bad file descriptor", exit -6). Without a preexec_fn, Python spawns with vfork and runs
no hooks. Note the signal fires when the *thread* that spawned the child exits, not the whole process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def wrap(argv: list[str], sig: signal.Signals = signal.SIGTERM) -> list[str]:
    """The argv that runs `argv` with `sig` delivered when the spawning thread dies."""
    return [sys.executable, "-m", "tools.die_with_parent", sig.name, *argv]


def main(args: list[str]) -> None:
    if len(args) < 2:
        raise SystemExit("usage: python -m tools.die_with_parent SIGNAL COMMAND...")
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.Signals[args[0]])
    if os.getppid() == 1:  # the parent died before prctl took effect
        raise SystemExit(1)
    os.execvp(args[1], args[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
