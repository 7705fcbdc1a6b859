"""Ctrl-C during a blocking git command stops git and every process git started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BLOCKING_SCRIPT = """
import signal, sys
from repository.git import GitRunner
# A shell may start us with SIGINT ignored; Ctrl-C must raise KeyboardInterrupt as in a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)
GitRunner(sys.argv[1]).run(["-c", "alias.linger=!sleep 60", "linger"])
"""


def processes() -> list[tuple[int, int, int, str, str]]:
    """``(pid, ppid, pgrp, state, name)`` of every process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            state, ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
            found.append((int(stat.parent.name), int(ppid), int(pgrp), state, name))
    return found


def live_members(pgrp: int) -> list[str]:
    """Names of the processes of group ``pgrp`` still running (zombies excluded)."""
    return [name for _, _, group, state, name in processes() if group == pgrp and state != "Z"]


def test_ctrl_c_during_a_blocking_command_stops_git_and_its_children(tmp_path):
    script = tmp_path / "blocking.py"
    script.write_text(BLOCKING_SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    group = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            gits = [pid for pid, ppid, _, _, _ in processes() if ppid == child.pid]
            # git runs in its own session, so its group's id is its pid.
            if gits and "sleep" in live_members(gits[0]):
                group = gits[0]
                break
            time.sleep(0.05)
        assert group is not None, "git never started its child"
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
        assert "KeyboardInterrupt" in stderr
        deadline = time.monotonic() + 3
        while live_members(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_members(group) == []
    finally:
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        child.kill()
        child.wait()
