"""What a killed git leaves in a clone is repaired by the next Repository, and only when stale."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repository import GitCommandError, Repository
from repository.recovery import REWRITE_MARKER
from repository.testing import Faults
from tests.support.killing import kill_group, kill_midway, start_held, wait_for


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=check, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def clone(remote_repo, tmp_path) -> Path:
    """A clone with one pushed commit and a new file waiting to be added."""
    path = tmp_path / "c"
    repo = Repository(path, clone_from=remote_repo.url)
    with repo.commit("first"):
        Path("first.txt").write_text("first")
    (path / "new.txt").write_text("new")
    return path


def commit_and_push_works(path: Path, remote_repo) -> None:
    repo = Repository(path)
    with repo.commit("after the kill"):
        Path("after.txt").write_text("after")
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()
    assert git(path, "fsck", "--no-progress", "--no-dangling") == ""


KILLED_COMMANDS = {
    "index.lock": ["git", "add", "new.txt"],
    "config.lock": ["git", "config", "user.name", "Killed Midway"],
    "HEAD.lock": ["git", "symbolic-ref", "HEAD", "refs/heads/main"],
    "refs/heads/main.lock": ["git", "commit", "--allow-empty", "-qm", "killed"],
    "packed-refs.lock": ["git", "pack-refs", "--all"],
    "refs/remotes/origin/main.lock": ["git", "fetch", "origin"],
    # What `git commit` runs after itself, in the foreground (gc.autoDetach=false).
    "objects/maintenance.lock": ["git", "maintenance", "run", "--task=gc"],
}


@pytest.mark.parametrize("lock", sorted(KILLED_COMMANDS))
def test_a_lock_left_by_a_killed_git_is_removed_and_work_goes_on(lock, clone, remote_repo, caplog):
    if lock.startswith("refs/remotes"):  # a fetch only writes the ref when the remote moved
        other = Repository(clone.parent / "other", clone_from=remote_repo.url)
        with other.commit("moved"):
            Path("moved.txt").write_text("moved")
    kill_midway(KILLED_COMMANDS[lock], clone, clone / ".git" / lock)
    failing = subprocess.run(
        ["git", "commit", "--allow-empty", "-m", "x"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    if lock in ("index.lock", "HEAD.lock", "refs/heads/main.lock"):
        assert failing.returncode == 128 and "File exists" in failing.stderr  # git alone: stuck
    with caplog.at_level(logging.WARNING, logger="repository"):
        commit_and_push_works(clone, remote_repo)
    assert not (clone / ".git" / lock).exists()
    assert any(
        lock in record.getMessage() and "killed" in record.getMessage() for record in caplog.records
    ), caplog.text


def test_a_shallow_lock_left_by_a_killed_fetch_is_removed(remote_repo, tmp_path, caplog):
    writer = Repository(tmp_path / "writer", clone_from=remote_repo.url)
    for step in range(2):
        with writer.commit(f"step {step}"):
            Path(f"{step}.txt").write_text(str(step))
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", remote_repo.url, str(shallow))
    with writer.commit("step 2"):
        Path("2.txt").write_text("2")
    kill_midway(["git", "fetch", "--depth=1", "origin"], shallow, shallow / ".git" / "shallow.lock")
    with caplog.at_level(logging.WARNING, logger="repository"):
        commit_and_push_works(shallow, remote_repo)
    assert "shallow.lock" in caplog.text and not (shallow / ".git" / "shallow.lock").exists()


def test_the_lock_of_a_live_git_is_left_alone(clone):
    process = start_held(["git", "add", "new.txt"], clone, hold_us=3_000_000)
    lock = clone / ".git" / "index.lock"
    try:
        wait_for(lock, process)
        repo = Repository(clone)
        with pytest.raises(GitCommandError, match=r"index\.lock"):
            repo.git_add("first.txt")  # git refuses, as it should: the lock is not ours to take
        assert lock.exists() and process.poll() is None
        assert process.wait(timeout=30) == 0  # the live git finishes its own work
    finally:
        kill_group(process)
    assert "new.txt" in git(clone, "diff", "--cached", "--name-only")


def test_a_rebase_of_ours_left_halfway_is_aborted_a_users_own_is_not(clone, remote_repo):
    git_dir = clone / ".git"
    other = Repository(clone.parent / "other", clone_from=remote_repo.url)
    with other.commit("remote moved"):
        Path("first.txt").write_text("changed on the remote")
    (clone / "first.txt").write_text("changed here")
    git(clone, "commit", "-qam", "local work")
    local = git(clone, "rev-parse", "HEAD")
    git(clone, "fetch", "-q", "origin")
    # A rebase that stopped halfway (here on a conflict) leaves what a killed one leaves; the
    # mark lfsrepo puts on its own pull --rebase stays, as the process that set it died.
    marker = git_dir / REWRITE_MARKER
    marker.parent.mkdir(exist_ok=True)
    marker.touch()
    git(clone, "rebase", "origin/main", check=False)
    assert (git_dir / "rebase-merge").exists()
    Repository(clone).git_add("new.txt")
    assert not (git_dir / "rebase-merge").exists()
    assert (
        git(clone, "rev-parse", "HEAD") == local
        and git(clone, "branch", "--show-current") == "main"
    )
    # A rebase the user started by hand (no marker) is theirs to finish.
    git(clone, "commit", "-qm", "new")
    git(clone, "rebase", "origin/main", check=False)
    assert (git_dir / "rebase-merge").exists()
    Repository(clone)  # attaching repairs what is stale
    assert (git_dir / "rebase-merge").exists()


def test_a_rebase_of_ours_killed_while_checking_out_leaves_nothing_in_the_way(clone, remote_repo):
    other = Repository(clone.parent / "other", clone_from=remote_repo.url)
    with other.commit("remote moved"):
        Path("theirs.txt").write_text("from the remote")
    git(clone, "add", "new.txt")
    git(clone, "commit", "-qm", "local work")
    git(clone, "fetch", "-q", "origin")
    marker = clone / ".git" / REWRITE_MARKER
    marker.parent.mkdir(exist_ok=True)
    marker.touch()  # what lfsrepo's pull --rebase marks; the kill leaves it
    # Killed after writing the remote's new file into the working tree, before the index. (A
    # racily clean index would be rewritten first, and held there: refresh it a second later.)
    time.sleep(1.1)
    git(clone, "status", "--porcelain")
    index_lock = clone / ".git" / "index.lock"
    kill_midway(["git", "rebase", "origin/main"], clone, clone / "theirs.txt", only=index_lock)
    (clone / "mine.txt").write_text("untracked work of the user's")
    repo = Repository(clone)
    assert not (clone / ".git" / "rebase-merge").exists() and not (clone / "theirs.txt").exists()
    assert (clone / "mine.txt").read_text() == "untracked work of the user's"
    with repo.commit("after the kill"):  # pull --rebase no longer trips over theirs.txt
        pass
    assert (clone / "theirs.txt").read_text() == "from the remote"
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()


def test_a_temporary_rebase_worktree_of_a_killed_push_is_removed(clone):
    leftover = clone / ".git" / "lfsrepo" / "rebase-killed" / "worktree"
    git(clone, "worktree", "add", "-q", "--detach", str(leftover), "HEAD")
    Repository(clone).git_add("new.txt")
    assert not leftover.parent.exists()
    assert git(clone, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_damaged_index_is_rebuilt_and_the_working_tree_kept(clone, remote_repo):
    index = clone / ".git" / "index"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])  # a write cut short
    assert (
        subprocess.run(["git", "status"], cwd=clone, capture_output=True, check=False).returncode
        != 0
    )
    commit_and_push_works(clone, remote_repo)
    assert (clone / "new.txt").read_text() == "new"
    assert "new.txt" in git(clone, "ls-tree", "--name-only", "HEAD")


def test_a_clone_killed_midway_is_cloned_again(remote_repo, tmp_path):
    writer = Repository(tmp_path / "writer", clone_from=remote_repo.url)
    data = os.urandom(2_000_000)
    with writer.commit("data"):
        Path("data.bin").write_bytes(data)
    target = tmp_path / "target"
    target.mkdir()
    # git clone is killed at its first rename, long before it has checked anything out.
    staging = target / ".lfsrepo-clone"
    process = start_held(["git", "clone", "-q", remote_repo.url, str(staging)], target)
    wait_for(staging / ".git" / "HEAD.lock", process)
    kill_group(process)
    repo = Repository(target, clone_from=remote_repo.url)
    assert (target / "data.bin").read_bytes() == data and not staging.exists()
    assert repo.git_head_hash() == writer.git_head_hash()


def test_lfs_content_a_killed_clone_did_not_fetch_is_fetched_by_the_next_run(remote_repo, tmp_path):
    writer = Repository(tmp_path / "writer", clone_from=remote_repo.url)
    data = os.urandom(2_000_000)
    with writer.commit("data"):
        Path("data.bin").write_bytes(data)
    remote_repo.server.faults = Faults(bandwidth_bytes_per_s=200_000)  # a 10 s download
    script = (
        "import sys; from repository import Repository; "
        "Repository(sys.argv[1], clone_from=sys.argv[2])"
    )
    target = tmp_path / "target"
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(target), remote_repo.url], start_new_session=True
    )
    # In place, LFS content still coming: killed.
    wait_for(target / ".git" / "lfsrepo" / "clone-unfinished", process)
    time.sleep(0.5)
    kill_group(process)
    assert (target / "data.bin").read_bytes().startswith(b"version https://git-lfs")
    remote_repo.server.faults = Faults()
    Repository(target)
    assert (target / "data.bin").read_bytes() == data
    assert not (target / ".git" / "lfsrepo" / "clone-unfinished").exists()
