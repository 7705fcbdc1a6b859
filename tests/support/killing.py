"""Killing a real git in the middle of a command, at a chosen point, the way a preemption would.

strace holds every rename(2) of the command for half a minute: git takes its lock files, writes
them, and then waits to rename them into place. The whole process group is SIGKILLed once the
expected file exists, so what git leaves behind is exactly what a kill at that instant leaves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

HOLD_RENAMES_US = 30_000_000


def start_held(
    argv: Sequence[str],
    cwd: Path | str,
    env: dict[str, str] | None = None,
    hold_us: int = HOLD_RENAMES_US,
    only: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` under strace, every rename (or, with ``only``, the renames of that one
    path) held for ``hold_us`` microseconds."""
    return subprocess.Popen(
        [
            "strace",
            "-f",
            "-qq",
            *(["-P", str(only)] if only is not None else []),
            "-o",
            "/dev/null",
            "-e",
            "trace=rename,renameat,renameat2",
            "-e",
            f"inject=rename,renameat,renameat2:delay_enter={hold_us}",
            *argv,
        ],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            kill_group(process)
            raise AssertionError(f"{path} never appeared (exit {process.returncode})")
        time.sleep(0.005)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started, as a preemption does; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_midway(
    argv: Sequence[str],
    cwd: Path | str,
    leaves: Path,
    env: dict[str, str] | None = None,
    only: Path | None = None,
) -> None:
    """Run ``argv`` and SIGKILL it, whole group, once ``leaves`` exists (renames held: all, or
    those of ``only``)."""
    process = start_held(argv, cwd, env, only=only)
    wait_for(leaves, process)
    kill_group(process)
    assert leaves.exists(), f"{leaves} went away with the kill"
