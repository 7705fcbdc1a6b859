"""commit(): cwd restored, nothing committed when the block raises; odd names; the clone lock."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from repository import AuthenticationError, PushRejectedError, Repository
from repository.testing import LocalGitServer


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_block_that_raises_commits_and_pushes_nothing(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-raise", files={"a.txt": b"a"})
    repo = Repository(tmp_path / "c", clone_from=url)
    head = repo.git_head_hash()
    cwd = os.getcwd()
    with pytest.raises(ZeroDivisionError), repo.commit("half-written"):
        Path("half.bin").write_bytes(b"\0" * 10)
        raise ZeroDivisionError("the block failed halfway")
    assert os.getcwd() == cwd
    assert (tmp_path / "c" / "half.bin").exists()
    assert repo.git_head_hash() == head
    assert git_server.list_refs(f"{remote_repo.name}-raise")["refs/heads/main"] == head


def test_cwd_restored_when_the_push_fails(tmp_path):
    with LocalGitServer(token="right") as server:
        url = server.create_repo("ns/fail", files={"a.txt": b"a"})
        Repository(tmp_path / "c", clone_from=url, token="right")
        repo = Repository(tmp_path / "c", token="wrong")
        cwd = os.getcwd()
        with pytest.raises(AuthenticationError), repo.commit("will not push"):
            Path("b.txt").write_text("b")
        assert os.getcwd() == cwd


def test_threads_cannot_interleave_the_working_directory(git_server, remote_repo, tmp_path):
    urls = [
        git_server.create_repo(f"{remote_repo.name}-t{i}", files={"a.txt": b"a"}) for i in range(2)
    ]
    repos = [Repository(tmp_path / f"c{i}", clone_from=url) for i, url in enumerate(urls)]
    wrong: list[str] = []

    def work(repo: Repository) -> None:
        with repo.commit("thread"):
            for _ in range(5):
                if os.path.realpath(os.getcwd()) != os.path.realpath(repo.local_dir):
                    wrong.append(os.getcwd())
                time.sleep(0.02)
            Path("t.txt").write_text(repo.local_dir)

    threads = [threading.Thread(target=work, args=(repo,)) for repo in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    for i, repo in enumerate(repos):
        assert git(repo.local_dir, "show", "HEAD:t.txt") == repo.local_dir
        assert (
            git_server.list_refs(f"{remote_repo.name}-t{i}")["refs/heads/main"]
            == repo.git_head_hash()
        )


ODD_NAMES = [
    "with space.bin",
    "quote\"s and 'apostrophes'.bin",
    "ünïcödé 模型.bin",
    "new\nline.txt",
    "[brackets]*star?.bin",
    "#hash.bin",
    "dir with space/inner file.txt",
]


def test_odd_file_names_are_tracked_committed_and_pushed(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    repo.git_config_username_and_email("Ada King Lovelace", "ada.lovelace@example.com")
    contents = {
        name: (os.urandom(3000) if name.endswith(".bin") else b"text\n") for name in ODD_NAMES
    }
    with repo.commit("odd names"):
        for name, data in contents.items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_bytes(data)
    tree = git(tmp_path / "c", "ls-tree", "-r", "-z", "--name-only", "origin/main").split("\0")
    assert set(ODD_NAMES) <= set(tree)
    for name, data in contents.items():
        if name.endswith(".bin"):
            oid = hashlib.sha256(data).hexdigest()
            assert remote_repo.server.lfs_object_size(oid) == len(data), name
    assert repo.is_repo_clean()
    (tmp_path / "c" / ODD_NAMES[0]).unlink()
    (tmp_path / "c" / ODD_NAMES[3]).unlink()
    assert sorted(repo.list_deleted_files()) == sorted([ODD_NAMES[0], ODD_NAMES[3]])


def test_mutations_wait_for_the_clone_lock_but_reads_do_not(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    (tmp_path / "c" / "a.txt").write_text("a")
    git_dir = tmp_path / "c" / ".git"
    other_process_lock = FileLock(str(git_dir / "lfsrepo.lock"))
    done = threading.Event()

    def add_and_commit() -> None:
        repo.git_add()
        repo.git_commit("after the lock")
        done.set()

    with other_process_lock:
        worker = threading.Thread(target=add_and_commit)
        worker.start()
        assert not done.wait(0.5)
        # Read-only queries take no lock: waiting for this one would never end.
        assert not repo.is_repo_clean()
        assert repo.current_branch == "main"
    worker.join(10)
    assert done.is_set()
    assert "after the lock" in git(tmp_path / "c", "log", "-1", "--format=%s")


def two_clones_first_ahead(server, name: str, tmp_path) -> tuple[Repository, Repository]:
    """Clones "one" and "two" of a new repo; "one" has pushed "one adds b", "two" has not pulled."""
    url = server.create_repo(name, files={"a.txt": b"base\n"})
    first = Repository(tmp_path / "one", clone_from=url)
    second = Repository(tmp_path / "two", clone_from=url)
    (tmp_path / "one" / "b.txt").write_text("one\n")
    first.push_to_hub("one adds b")
    return first, second


def test_rejected_push_is_rebased_and_a_conflict_is_left_clean(git_server, remote_repo, tmp_path):
    first, second = two_clones_first_ahead(git_server, f"{remote_repo.name}-conflict", tmp_path)
    (tmp_path / "two" / "c.txt").write_text("two\n")
    second.push_to_hub("two adds c")  # rejected at first, then rebased onto "one adds b"
    log = git(tmp_path / "two", "log", "--format=%s", "origin/main").splitlines()
    assert log[:2] == ["two adds c", "one adds b"]

    (tmp_path / "one" / "a.txt").write_text("one's line\n")
    first.push_to_hub("one edits a")
    (tmp_path / "two" / "a.txt").write_text("two's line\n")
    with pytest.raises(PushRejectedError, match="resolve by hand"):
        second.push_to_hub("two edits a")
    assert not (tmp_path / "two" / ".git" / "rebase-merge").exists()
    assert (tmp_path / "two" / "a.txt").read_text() == "two's line\n"
    assert git(tmp_path / "two", "log", "-1", "--format=%s").strip() == "two edits a"


def test_a_fetch_racing_another_writer_of_the_clone_is_retried(git_server, remote_repo, tmp_path):
    _, second = two_clones_first_ahead(git_server, f"{remote_repo.name}-race", tmp_path)
    # Another process sharing the clone holds the remote-tracking ref (as its push does while it
    # updates it): the rebase's fetch cannot lock the ref for a while; the push must still land.
    # The holder is a live process with the lock open, so it is not mistaken for a stale lock.
    lock = tmp_path / "two" / ".git" / "refs" / "remotes" / "origin" / "main.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(["sh", "-c", 'exec 3>"$1"; sleep 1; rm "$1"', "sh", str(lock)])
    while not lock.exists():
        time.sleep(0.01)
    (tmp_path / "two" / "c.txt").write_text("two\n")
    second.push_to_hub("two adds c")
    assert holder.wait(timeout=10) == 0
    log = git(tmp_path / "two", "log", "--format=%s", "origin/main").splitlines()
    assert log[:2] == ["two adds c", "one adds b"]
