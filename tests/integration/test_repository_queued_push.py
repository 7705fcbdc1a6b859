"""A queued push sends the commit HEAD was at when it was queued, to the branch chosen then."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from repository import Repository
from tests.support.clones import make_commit, slow_chatty_hook


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def queue_behind_a_slow_push(repo: Repository, clone: Path) -> tuple[str, object]:
    """Queue a push of a new commit behind one that takes a second; return (sha, command)."""
    make_commit(repo, "first.txt", b"first")
    slow_chatty_hook(clone, seconds=1.0)
    repo.git_push(blocking=False)
    make_commit(repo, "queued.bin", os.urandom(50_000))
    _, command = repo.git_push(blocking=False)
    return repo.git_head_hash(), command


def test_queued_push_ignores_a_later_checkout_and_commit_on_another_branch(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    queued, command = queue_behind_a_slow_push(repo, clone)
    repo.git_checkout("experiment", create_branch_ok=True)
    make_commit(repo, "experiment.txt", b"not for main")
    assert command.wait(timeout=60) and command.status == 0, command.stderr
    refs = remote_repo.server.list_refs(remote_repo.name)
    assert refs == {"refs/heads/main": queued}  # nothing of "experiment" went anywhere
    assert repo.current_branch == "experiment"
    assert git(clone, "config", "branch.main.merge") == "refs/heads/main"


def test_queued_push_ignores_commits_made_after_it_was_queued(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    queued, command = queue_behind_a_slow_push(repo, clone)
    make_commit(repo, "later.txt", b"later")
    assert command.wait(timeout=60) and command.status == 0, command.stderr
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == queued
    assert repo.git_head_hash() != queued  # the later commit waits for its own push
    repo.git_push()
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()


def test_rejected_queued_push_rebases_that_branch_only(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "base.txt", b"base")
    repo.git_push()
    other = Repository(tmp_path / "other", clone_from=remote_repo.url)
    queued, command = queue_behind_a_slow_push(repo, clone)
    with other.commit("meanwhile"):  # the remote moves on before the queued push runs
        Path("meanwhile.txt").write_text("x")
    repo.git_checkout("experiment", create_branch_ok=True)
    make_commit(repo, "experiment.txt", b"not for main")
    (clone / "untracked.txt").write_text("work in progress")
    assert command.wait(timeout=60) and command.status == 0, command.stderr

    remote_main = remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"]
    remote_files = git(clone, "ls-tree", "--name-only", remote_main).split()
    assert {"queued.bin", "meanwhile.txt", "first.txt"} <= set(remote_files)
    assert "experiment.txt" not in remote_files
    assert git(clone, "log", "-1", "--format=%s", remote_main) == "add queued.bin"
    assert git(clone, "log", "-1", "--format=%P", remote_main) != queued  # rebased
    # The clone's own checkout is untouched; its main follows what was pushed.
    assert repo.current_branch == "experiment"
    assert (clone / "untracked.txt").read_text() == "work in progress"
    assert (clone / "experiment.txt").exists() and git(clone, "status", "--porcelain") == (
        "?? untracked.txt"
    )
    assert git(clone, "rev-parse", "main") == remote_main
    assert git(clone, "worktree", "list", "--porcelain").count("worktree ") == 1
