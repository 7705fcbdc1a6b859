"""Fast staging of large LFS files: exactly what git-lfs would stage, never a wrong pointer."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from repository import Repository, staging
from tests.support.git import git

MiB = 1024**2


@pytest.fixture
def clone(remote_repo, tmp_path) -> Path:
    path = tmp_path / "c"
    Repository(path, clone_from=remote_repo.url).lfs_track("*.bin")
    return path


def write(path: Path, data: bytes, age_s: float = 5.0) -> None:
    """Write a file as a finished checkpoint: last written ``age_s`` ago (no quiet-time wait)."""
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))


def lfs_clean(clone: Path, name: str) -> bytes:
    """What git-lfs's own clean filter makes of the file's current content."""
    return subprocess.run(
        ["git", "lfs", "clean", "--", name],
        cwd=clone,
        input=(clone / name).read_bytes(),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def staged_pointer(clone: Path, name: str) -> bytes:
    return git(clone, "cat-file", "-p", f":{name}").stdout.encode()


def object_bytes(clone: Path, data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return (clone / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes()


@pytest.fixture
def fast_stores(monkeypatch) -> list[str]:
    """The files the fast path stored (the rest went through git-lfs's filter)."""
    stored: list[str] = []
    original = staging.store

    def recording(workdir: str, git_dir: str, temp: str, path: str) -> staging.Stored | None:
        result = original(workdir, git_dir, temp, path)
        if result is not None:
            stored.append(path)
        return result

    monkeypatch.setattr(staging, "store", recording)
    return stored


SIZES = [0, 1, MiB - 1, MiB, MiB + 1, 8 * MiB, 8 * MiB + 1]


def test_pointers_and_objects_are_git_lfs_s_byte_for_byte(clone, fast_stores):
    contents = {f"f{size}.bin": os.urandom(size) for size in SIZES}
    for name, data in contents.items():
        write(clone / name, data)
    repo = Repository(clone)
    repo.git_add()
    assert sorted(fast_stores) == sorted(n for n, d in contents.items() if len(d) >= MiB)
    for name, data in contents.items():
        assert staged_pointer(clone, name) == lfs_clean(clone, name), name
        if data:
            assert object_bytes(clone, data) == data, name
    repo.git_commit("all sizes")
    assert "ok" in git(clone, "lfs", "fsck").stdout.lower()


def count_filter_runs(clone: Path, command: str) -> int:
    """Run ``git <command>`` with git-lfs's filters wrapped to count how often git starts one."""
    counter = clone.parent / "filter-runs"
    counter.write_text("")
    wrap = f'sh -c \'echo x >> {counter}; exec "$0" "$@"\''
    env = {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "filter.lfs.process",
        "GIT_CONFIG_VALUE_0": f"{wrap} git-lfs filter-process",
        "GIT_CONFIG_KEY_1": "filter.lfs.clean",
        "GIT_CONFIG_VALUE_1": f"{wrap} git-lfs clean -- %f",
    }
    git(clone, *command.split(), env=env)
    return counter.read_text().count("x")


def test_after_staging_git_status_cleans_nothing(clone, fast_stores):
    for index in range(3):
        write(clone / f"w{index}.bin", os.urandom(2 * MiB + index))
    Repository(clone).git_add()
    assert len(fast_stores) == 3
    assert count_filter_runs(clone, "status --porcelain") == 0
    assert count_filter_runs(clone, "diff --stat") == 0


def test_a_file_changed_between_hash_and_stage_gets_the_pointer_of_its_final_content(
    clone, fast_stores, monkeypatch
):
    write(clone / "w.bin", os.urandom(3 * MiB))
    final = os.urandom(3 * MiB)
    original = staging.clean_filter

    def changing_first(git_dir, stored):  # the hash is taken; the file changes before git reads
        (clone / "w.bin").write_bytes(final)
        return original(git_dir, stored)

    monkeypatch.setattr(staging, "clean_filter", changing_first)
    Repository(clone).git_add()
    assert fast_stores == ["w.bin"]  # the stale hash was made...
    assert staged_pointer(clone, "w.bin") == lfs_clean(clone, "w.bin")  # ...and not used
    assert hashlib.sha256(final).hexdigest() in staged_pointer(clone, "w.bin").decode()


@pytest.mark.parametrize("change", ["append", "replace"])
def test_a_file_changed_while_being_hashed_is_left_to_git_lfs(
    clone, fast_stores, monkeypatch, change
):
    path = clone / "w.bin"
    write(path, os.urandom(3 * MiB))
    original = staging._copy_and_hash

    def changing_midway(source, target):
        digest = original(source, target)
        if change == "append":
            with open(path, "ab") as handle:
                handle.write(b"more")
        else:  # a new file renamed over it: another inode
            (clone / "new.tmp").write_bytes(os.urandom(3 * MiB))
            os.replace(clone / "new.tmp", path)
        return digest

    monkeypatch.setattr(staging, "_copy_and_hash", changing_midway)
    Repository(clone).git_add()
    assert fast_stores == []
    assert staged_pointer(clone, "w.bin") == lfs_clean(clone, "w.bin")


def test_a_file_still_being_written_waits_for_quiet_or_goes_to_git_lfs(clone, fast_stores):
    (clone / "fresh.bin").write_bytes(os.urandom(2 * MiB))  # written just now
    started = time.monotonic()
    Repository(clone).git_add()
    assert fast_stores == ["fresh.bin"] and time.monotonic() - started >= staging.QUIET_S * 0.9
    assert staged_pointer(clone, "fresh.bin") == lfs_clean(clone, "fresh.bin")


def test_an_object_already_stored_is_not_written_again(clone):
    data = os.urandom(2 * MiB)
    write(clone / "w.bin", data)
    repo = Repository(clone)
    repo.git_add()
    repo.git_commit("first")
    stored = clone / ".git" / "lfs" / "objects"
    oid = hashlib.sha256(data).hexdigest()
    before = (stored / oid[:2] / oid[2:4] / oid).stat()
    write(clone / "w.bin", data, age_s=3)  # same bytes, new mtime: modified in git's eyes
    repo.git_add()
    after = (stored / oid[:2] / oid[2:4] / oid).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_lfs_extensions_turn_the_fast_path_off(clone, fast_stores):
    git(clone, "config", "lfs.extension.noop.clean", "cat")
    git(clone, "config", "lfs.extension.noop.smudge", "cat")
    git(clone, "config", "lfs.extension.noop.priority", "0")
    write(clone / "w.bin", os.urandom(2 * MiB))
    Repository(clone).git_add()
    assert fast_stores == []
    assert staged_pointer(clone, "w.bin") == lfs_clean(clone, "w.bin")


def test_the_filter_a_killed_staging_left_in_info_attributes_is_removed(clone, caplog):
    attributes = clone / ".git" / "info" / "attributes"
    attributes.parent.mkdir(exist_ok=True)
    mine = "*.keep diff\n"
    attributes.write_text(
        mine + f"{staging.ATTRIBUTES_BEGIN}\n/w.bin filter={staging.FILTER_DRIVER}\n"
        f"{staging.ATTRIBUTES_END}\n"
    )
    Repository(clone)
    assert attributes.read_text() == mine
    assert "info/attributes" in caplog.text


def test_the_workflow_pushes_what_it_staged_fast(clone, remote_repo, fast_stores):
    data = os.urandom(5 * MiB)
    repo = Repository(clone)
    write(clone / "model.bin", data)
    with repo.commit("checkpoint"):
        pass
    assert fast_stores == ["model.bin"]
    oid = hashlib.sha256(data).hexdigest()
    assert remote_repo.server.lfs_object_path(oid).read_bytes() == data


def test_a_checkpoint_saved_again_at_the_same_size_is_never_run_through_git_lfs(
    clone, fast_stores, monkeypatch
):
    repo = Repository(clone)
    write(clone / "model.bin", os.urandom(4 * MiB))
    repo.git_add()
    repo.git_commit("step 1")
    write(clone / "model.bin", os.urandom(4 * MiB), age_s=3)  # step 2: same size, new bytes
    counter = clone.parent / "filter-runs"
    counter.write_text("")
    wrap = f'sh -c \'echo x >> {counter}; exec "$0" "$@"\''
    for key, value in {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "filter.lfs.process",
        "GIT_CONFIG_VALUE_0": f"{wrap} git-lfs filter-process",
        "GIT_CONFIG_KEY_1": "filter.lfs.clean",
        "GIT_CONFIG_VALUE_1": f"{wrap} git-lfs clean -- %f",
    }.items():
        monkeypatch.setenv(key, value)
    repo.git_add()  # finding out that it changed reads nothing either (stat data only)
    assert counter.read_text() == ""
    assert fast_stores == ["model.bin", "model.bin"]
    assert staged_pointer(clone, "model.bin") == lfs_clean(clone, "model.bin")
