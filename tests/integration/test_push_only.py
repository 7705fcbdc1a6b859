"""Push-only clones: pushing into a big repository without downloading it."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from repository import Repository
from repository.testing import LocalGitServer

from ..support.big_repo import BigRepo, make_big_repo
from ..support.git import git

MiB = 1024**2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGitServer]:
    """Object transfers on an origin of their own, so every download is recorded."""
    with LocalGitServer(tmp_path_factory.mktemp("server"), separate_storage=True) as server:
        yield server


@pytest.fixture(scope="module")
def big(server: LocalGitServer) -> BigRepo:
    return make_big_repo(server, "ns/big")


def pack_bytes(clone: Path) -> int:
    return sum(path.stat().st_size for path in (clone / ".git" / "objects" / "pack").iterdir())


def remote_show(server: LocalGitServer, name: str, what: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "-p", what],
        cwd=server.repo_path(name),
        capture_output=True,
        check=True,
    ).stdout


def downloads(server: LocalGitServer) -> list[str]:
    return [request.path for request in server.storage_requests if request.method == "GET"]


def test_a_push_only_clone_of_a_big_repository_downloads_almost_nothing_and_its_push_lands(
    server, big, tmp_path
):
    full = tmp_path / "full"
    Repository(full, clone_from=big.url, skip_lfs_files=True, progress_bars=False)
    server.storage_requests.clear()

    clone = tmp_path / "push-only"
    repo = Repository(clone, clone_from=big.url, progress_bars=False, push_only=True)

    assert downloads(server) == []
    assert not (clone / ".git" / "lfs" / "objects").exists()
    assert pack_bytes(clone) < 0.05 * pack_bytes(full), (pack_bytes(clone), pack_bytes(full))
    assert sorted(os.listdir(clone)) == [".git", ".gitattributes"]

    checkpoint = os.urandom(3 * MiB)
    (clone / "models" / "step-1.bin").parent.mkdir()
    (clone / "models" / "step-1.bin").write_bytes(checkpoint)
    (clone / "data" / "000").mkdir(parents=True)
    (clone / "data" / "000" / "extra.txt").write_text("one more row\n")
    with repo.commit("step 1"):
        pass

    head = git(clone, "rev-parse", "HEAD").stdout.strip()
    assert server.list_refs("ns/big")["refs/heads/main"] == head
    changed = git(clone, "diff", "--name-only", "HEAD~1", "HEAD").stdout.split()
    assert changed == ["data/000/extra.txt", "models/step-1.bin"]
    assert remote_show(server, "ns/big", "main:data/000/extra.txt") == b"one more row\n"
    oid = hashlib.sha256(checkpoint).hexdigest()
    stored = server.lfs_object_path(oid)
    assert stored is not None and hashlib.sha256(stored.read_bytes()).hexdigest() == oid
    assert downloads(server) == []
    uploads = [r.path for r in server.storage_requests if r.method == "PUT"]
    assert len(uploads) == 1 and oid in uploads[0]  # only the new object went up


def test_a_file_the_remote_has_is_replaced_without_fetching_the_others(server, big, tmp_path):
    clone = tmp_path / "push-only"
    repo = Repository(clone, clone_from=big.url, progress_bars=False, push_only=True)
    missing_before = missing_objects(clone)
    target = clone / "data" / "001" / "001000.txt"
    target.parent.mkdir(parents=True)
    target.write_text("replaced\n")
    repo.git_add()
    repo.git_commit("replace one file")
    repo.git_push()

    assert remote_show(server, "ns/big", "main:data/001/001000.txt") == b"replaced\n"
    assert git(clone, "diff", "--name-only", "HEAD~1", "HEAD").stdout.split() == [
        "data/001/001000.txt"
    ]
    assert missing_objects(clone) >= missing_before - 1  # at most the replaced file's blob


def missing_objects(clone: Path) -> int:
    listing = git(clone, "rev-list", "--objects", "--all", "--missing=print").stdout
    return sum(line.startswith("?") for line in listing.splitlines())


def test_a_push_only_clone_rebases_when_the_remote_moved_on(server, tmp_path):
    url = server.create_repo("ns/moving", {"a.txt": b"a\n", "weights.bin": os.urandom(1000)})
    other = Repository(tmp_path / "other", clone_from=url, progress_bars=False)
    clone = tmp_path / "push-only"
    repo = Repository(clone, clone_from=url, progress_bars=False, push_only=True)
    (tmp_path / "other" / "b.txt").write_text("b\n")
    other.push_to_hub("someone else")
    server.storage_requests.clear()

    (clone / "c.txt").write_text("c\n")
    with repo.commit("ours"):
        pass

    log = git(clone, "log", "--format=%s", "origin/main").stdout.split("\n")
    assert log[:3] == ["ours", "someone else", "Initial commit"]
    assert remote_show(server, "ns/moving", "main:b.txt") == b"b\n"
    assert remote_show(server, "ns/moving", "main:c.txt") == b"c\n"
    assert not (clone / "weights.bin").exists()
    assert downloads(server) == []


def test_a_server_without_partial_clone_gets_a_normal_clone_and_a_warning(server, tmp_path, caplog):
    url = server.create_repo("ns/no-filter", {"a.txt": b"a\n", "w.bin": os.urandom(1000)})
    git(server.repo_path("ns/no-filter"), "config", "uploadpack.allowFilter", "false")
    with caplog.at_level(logging.WARNING, logger="repository"):
        repo = Repository(tmp_path / "c", clone_from=url, progress_bars=False, push_only=True)
    assert "does not allow partial clones" in caplog.text
    assert missing_objects(tmp_path / "c") == 0
    (tmp_path / "c" / "b.txt").write_text("b\n")
    repo.push_to_hub("b")
    assert remote_show(server, "ns/no-filter", "main:b.txt") == b"b\n"


def test_a_push_only_clone_is_reused_and_an_empty_remote_works(server, tmp_path):
    url = server.create_repo("ns/empty-push-only")
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=url, progress_bars=False, push_only=True)
    (clone / "first.txt").write_text("first\n")
    repo.push_to_hub("first")
    again = Repository(clone, clone_from=url, progress_bars=False, push_only=True)
    (clone / "second.txt").write_text("second\n")
    again.push_to_hub("second")
    assert remote_show(server, "ns/empty-push-only", "main:second.txt") == b"second\n"
    assert remote_show(server, "ns/empty-push-only", "main:first.txt") == b"first\n"


def test_lfs_prune_in_a_push_only_clone_keeps_only_what_is_not_pushed_yet(server, tmp_path):
    url = server.create_repo("ns/prune", {"w.bin": os.urandom(1000)})
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=url, progress_bars=False, push_only=True)
    (clone / "pushed.bin").write_bytes(os.urandom(2 * MiB))
    repo.git_add()
    repo.git_commit("pushed")
    repo.git_push(auto_lfs_prune=True)
    store = clone / ".git" / "lfs" / "objects"
    assert [p for p in store.rglob("*") if p.is_file()] == []

    unpushed, staged = os.urandom(2 * MiB), os.urandom(2 * MiB)
    (clone / "unpushed.bin").write_bytes(unpushed)
    repo.git_add()
    repo.git_commit("not pushed")
    (clone / "staged.bin").write_bytes(staged)
    repo.git_add()
    repo.lfs_prune()
    kept = sorted(p.name for p in store.rglob("*") if p.is_file())
    assert kept == sorted(hashlib.sha256(d).hexdigest() for d in (unpushed, staged))

    repo.git_commit("staged")
    repo.git_push()  # what prune kept is what this push needs
    for data in (unpushed, staged):
        assert server.lfs_object_path(hashlib.sha256(data).hexdigest()) is not None
