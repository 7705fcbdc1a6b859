"""A server the tests run as a subprocess (waitress, gunicorn): found listening in its log,
stopped by its process id."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path


def wait_for_log_line(
    process: subprocess.Popen[bytes], log_path: Path, pattern: str, timeout: float
) -> re.Match[str]:
    """The first match of ``pattern`` in the log the process writes; a RuntimeError quoting the
    log if the process exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        found = re.search(pattern, text)
        if found:
            return found
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{process.args!r} did not start:\n{text[-3000:]}")
        time.sleep(0.02)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process by its id, SIGKILL it if still there after ``timeout`` s; reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
