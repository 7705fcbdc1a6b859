"""The git CLI as a client of the local server in its tests: plain ``git`` processes, as a user
would run them (not the project's GitRunner, so that the runner is not tested with itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Only keeps a broken test from hanging: every command here takes seconds at most.
GIT_TIMEOUT_S = 120


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args``; with ``check``, a failure is an AssertionError that shows git's stderr."""
    result = subprocess.run(
        ["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S
    )
    if check and result.returncode:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
    return result


def commit_file(clone: Path, name: str, data: bytes, message: str = "change") -> None:
    """Write ``name`` in ``clone``, then add and commit it."""
    (clone / name).write_bytes(data)
    git("add", name, cwd=clone)
    git("commit", "-qm", message, cwd=clone)
