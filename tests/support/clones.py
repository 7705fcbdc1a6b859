"""Helpers for tests that drive a clone: commits, and a push that takes its time."""

from __future__ import annotations

import textwrap
from pathlib import Path

from repository import Repository


def slow_chatty_hook(clone: Path, seconds: float, chatter_bytes: int = 0) -> None:
    """Replace the clone's pre-push hook: write ``chatter_bytes`` to stderr, sleep, then run LFS."""
    hook = clone / ".git" / "hooks" / "pre-push"
    hook.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        head -c {chatter_bytes} /dev/zero | tr '\\0' 'x' >&2
        echo hook-marker >&2
        sleep {seconds}
        exec git lfs pre-push "$@"
        """)
    )
    hook.chmod(0o755)


def make_commit(repo: Repository, name: str, data: bytes) -> None:
    (Path(repo.local_dir) / name).write_bytes(data)
    repo.git_add(auto_lfs_track=True)
    repo.git_commit(f"add {name}")
