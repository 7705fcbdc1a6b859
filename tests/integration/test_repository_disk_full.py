"""A full disk is an error that says what to free, never damage: on a real, small filesystem."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from repository import DiskFullError, Repository, staging

MiB = 1024**2


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 32 MiB tmpfs: a real filesystem that fills up."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def state(clone: Path) -> tuple[str, str, list[str]]:
    """HEAD, what is staged, and git-lfs's temporary files."""
    temp = clone / ".git" / "lfs" / "tmp"
    return (
        git(clone, "rev-parse", "HEAD"),
        git(clone, "diff", "--cached", "--name-only"),
        sorted(os.listdir(temp)) if temp.exists() else [],
    )


def test_staging_more_than_the_disk_holds_is_refused_before_anything_is_staged(
    small_disk, remote_repo
):
    clone = small_disk / "clone"
    repo = Repository(clone, clone_from=remote_repo.url)
    with repo.commit("seed"):
        Path("seed.txt").write_text("seed")
    before = state(clone)
    (clone / "checkpoint.bin").write_bytes(os.urandom(16 * MiB))  # its LFS copy will not fit
    with pytest.raises(DiskFullError) as refused:
        repo.git_add(auto_lfs_track=True)
    message = str(refused.value)
    assert "not enough disk space" in message and "MiB" in message and "lfs_prune" in message
    assert state(clone) == before


@pytest.mark.parametrize("path", ["fast", "git-lfs"])
def test_a_disk_that_fills_up_during_the_add_leaves_everything_as_it_was(
    small_disk, remote_repo, monkeypatch, path
):
    clone = small_disk / "clone"
    repo = Repository(clone, clone_from=remote_repo.url)
    first = os.urandom(2 * MiB)
    with repo.commit("first"):
        Path("first.bin").write_bytes(first)
    before = state(clone)
    # 4 MiB goes the fast way (lfsrepo copies it); 512 KiB through git-lfs's filter.
    (clone / "second.bin").write_bytes(os.urandom(4 * MiB if path == "fast" else MiB // 2))
    # Something else fills the disk the moment staging starts (after the space check).
    filler = small_disk / "filler"
    fill = f"dd if=/dev/zero of={filler} bs=1M 2>/dev/null"
    if path == "fast":
        original = staging.store_all

        def filling_first(*args):
            subprocess.run(["sh", "-c", fill], check=False)
            return original(*args)

        monkeypatch.setattr(staging, "store_all", filling_first)
    else:
        git(clone, "config", "filter.lfs.process", f"sh -c '{fill}; exec git-lfs filter-process'")
    with pytest.raises(DiskFullError) as full:
        repo.git_add(auto_lfs_track=True)
    assert "filled up while staging" in str(full.value)
    assert state(clone) == before
    oid = hashlib.sha256(first).hexdigest()
    stored = clone / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == oid
    assert git(clone, "fsck", "--no-progress", "--no-dangling") == ""
    # Once there is room again, the same call works.
    filler.unlink()
    monkeypatch.undo()
    git(clone, "config", "filter.lfs.process", "git-lfs filter-process")
    repo.git_add(auto_lfs_track=True)
    repo.git_commit("second")
    repo.git_push()
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()


def test_a_clone_whose_lfs_content_does_not_fit_says_so_and_resumes_once_it_does(
    small_disk, remote_repo, tmp_path
):
    writer = Repository(tmp_path / "writer", clone_from=remote_repo.url)
    big = os.urandom(40 * MiB)
    with writer.commit("big"):
        Path("big.bin").write_bytes(big)
    target = small_disk / "clone"
    with pytest.raises(DiskFullError) as full:
        Repository(target, clone_from=remote_repo.url)
    assert "filled up while fetching LFS content" in str(full.value)
    assert os.listdir(target / ".git" / "lfs" / "incomplete") == []  # the partial download went
    subprocess.run(["mount", "-o", "remount,size=96m", str(small_disk)], check=True)
    Repository(target)
    assert (
        hashlib.sha256((target / "big.bin").read_bytes()).digest() == hashlib.sha256(big).digest()
    )
