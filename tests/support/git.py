"""git run as a user's shell runs it (not through GitRunner, whose environment is lfsrepo's)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(
    cwd: Path | str,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args`` in ``cwd``; with ``check``, a failure is an AssertionError quoting git.

    ``timeout`` only keeps a hung git from hanging the test.
    """
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} in {cwd} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result
