"""Helpers for the CommitScheduler tests: git commands counted, a push hook the test controls,
and what the remote holds."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from repository.testing import LocalGitServer
from tests.support.git import git


def count_git_commands(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a ``git`` first on PATH that logs its arguments (one line per command started, by
    lfsrepo, hooks or git-lfs alike) and runs the real git; return the log."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "git-commands.log"
    log.touch()
    wrapper = folder / "git"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


@dataclass(frozen=True)
class PushHook:
    """A pre-push hook in a clone that records when each push reaches it, refuses pushes while
    ``refuse`` exists, and holds them while ``gate`` is missing; then runs git-lfs's hook."""

    starts: Path
    gate: Path
    refuse: Path

    @classmethod
    def install(cls, clone: Path) -> PushHook:
        folder = clone.parent / f"{clone.name}-hook"
        folder.mkdir()
        hook = cls(folder / "starts.log", folder / "gate-open", folder / "refuse")
        hook.gate.touch()
        hook.starts.touch()
        script = clone / ".git" / "hooks" / "pre-push"
        script.write_text(
            textwrap.dedent(f"""\
            #!/bin/sh
            date +%s.%N >> '{hook.starts}'
            if [ -e '{hook.refuse}' ]; then echo "push refused by the test's hook" >&2; exit 1; fi
            while [ ! -e '{hook.gate}' ]; do sleep 0.02; done
            exec git lfs pre-push "$@"
            """)
        )
        script.chmod(0o755)
        return hook

    def times(self) -> list[float]:
        """When each push reached the hook (seconds since the epoch), in order."""
        return [float(line) for line in self.starts.read_text().split()]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds; the timeout only keeps a hang from hanging the test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def remote_head(server: LocalGitServer, name: str) -> str | None:
    return server.list_refs(name).get("refs/heads/main")


def remote_file(server: LocalGitServer, name: str, path: str, rev: str = "main") -> str:
    return git(server.repo_path(name), "show", f"{rev}:{path}").stdout


def remote_files(server: LocalGitServer, name: str) -> set[str]:
    listing = git(server.repo_path(name), "ls-tree", "-r", "--name-only", "main").stdout
    return set(listing.split())


def remote_versions(server: LocalGitServer, name: str, path: str) -> list[str]:
    """Every version of ``path`` committed on the remote's main branch, oldest first."""
    bare = server.repo_path(name)
    shas = git(bare, "log", "--reverse", "--format=%H", "main", "--", path).stdout.split()
    return [remote_file(server, name, path, sha) for sha in shas]


def remote_commits(server: LocalGitServer, name: str) -> list[str]:
    """Subjects of the commits on the remote's main branch, oldest first."""
    bare = server.repo_path(name)
    return git(bare, "log", "--reverse", "--format=%s", "main").stdout.splitlines()
