"""The legacy class's observable behaviour, kept to the letter (huggingface_hub 0.36.2).

Each test names the legacy behaviour it pins; docs/migrating.md lists where we differ on purpose.
"""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest

from repository import (
    Repository,
    commits_to_push,
    files_to_be_staged,
    is_git_ignored,
    is_tracked_upstream,
    is_tracked_with_lfs,
)
from repository.testing import LocalGitServer
from tests.support.clones import make_commit


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_constructor_arguments_keep_the_legacy_positions(tmp_path):
    legacy = [
        "local_dir",
        "clone_from",
        "repo_type",
        "token",
        "git_user",
        "git_email",
        "revision",
        "skip_lfs_files",
        "client",
    ]
    parameters = inspect.signature(Repository.__init__).parameters
    assert list(parameters)[1:10] == legacy
    assert parameters["progress_bars"].kind is inspect.Parameter.KEYWORD_ONLY
    with LocalGitServer(token="positional-token") as server:
        url = server.create_repo("legacy/positional", files={"a.txt": b"a"})
        with pytest.warns(DeprecationWarning, match="repo_type"):
            repo = Repository(tmp_path / "c", url, "model", "positional-token")  # 4th: the token
        (tmp_path / "c" / "b.txt").write_text("b")
        repo.push_to_hub("b")
        assert server.list_refs("legacy/positional")["refs/heads/main"] == repo.git_head_hash()


def test_commit_without_track_large_files_tracks_nothing_with_lfs(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    with repo.commit("raw bytes", track_large_files=False):
        Path("small.dat").write_bytes(b"\0\1\2")
    clone = tmp_path / "c"
    assert git(clone, "lfs", "ls-files", "-n") == ""
    assert not (clone / ".gitattributes").exists()
    blob = subprocess.run(
        ["git", "cat-file", "-p", "HEAD:small.dat"], cwd=clone, capture_output=True, check=True
    ).stdout
    assert blob == b"\0\1\2"


def test_blocking_push_returns_the_url_of_what_reached_the_remote(remote_repo, tmp_path):
    repo = Repository(tmp_path / "a", clone_from=remote_repo.url)
    make_commit(repo, "base.txt", b"base")
    repo.git_push()
    other = Repository(tmp_path / "b", clone_from=remote_repo.url)
    with other.commit("meanwhile"):
        Path("meanwhile.txt").write_text("x")
    make_commit(repo, "mine.txt", b"mine")
    url = repo.git_push()  # rejected, rebased, pushed
    remote_main = remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"]
    assert url.endswith(f"/commit/{remote_main}")
    assert remote_main == repo.git_head_hash()


def test_push_with_a_branch_in_upstream_pushes_that_local_branch(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "base.txt", b"base")
    repo.git_push()
    repo.git_checkout("dev", create_branch_ok=True)
    make_commit(repo, "dev.txt", b"dev")
    dev = repo.git_head_hash()
    repo.git_checkout("main")
    make_commit(repo, "main-only.txt", b"not for dev")
    main = repo.git_head_hash()
    url = repo.git_push(upstream="origin dev")  # git push --set-upstream origin dev
    refs = remote_repo.server.list_refs(remote_repo.name)
    assert refs["refs/heads/dev"] == dev and url.endswith(f"/commit/{dev}")
    assert refs["refs/heads/main"] != main and git(clone, "rev-parse", "main") == main
    assert git(clone, "config", "branch.main.merge") == "refs/heads/main"
    assert git(clone, "config", "branch.dev.merge") == "refs/heads/dev"


def test_blocking_pushes_are_not_listed_in_the_command_queue(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    repo.git_push()
    assert repo.command_queue == []
    with pytest.raises(OSError):
        repo.git_push(upstream="no-such-remote main")
    assert repo.commands_failed == [] and repo.command_queue == []
    _, command = repo.git_push(blocking=False)
    assert repo.command_queue == [command] and command.wait(60)


def test_reusing_a_clone_works_offline(tmp_path):
    with LocalGitServer() as server:
        url = server.create_repo("legacy/offline", files={"a.txt": b"a"})
        Repository(tmp_path / "c", clone_from=url)
    repo = Repository(tmp_path / "c", clone_from=url)  # the server is gone
    assert repo.current_branch == "main" and (tmp_path / "c" / "a.txt").read_bytes() == b"a"


def test_commit_on_a_detached_head_fails_before_the_block_runs(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    repo.git_push()
    git(clone, "checkout", "-q", "--detach")
    head = repo.git_head_hash()
    ran = []
    with pytest.raises(OSError, match="No branch checked out"), repo.commit("never"):
        ran.append(True)
    assert ran == [] and repo.git_head_hash() == head
    with pytest.raises(OSError, match="No branch checked out"):
        is_tracked_upstream(clone)


def test_helpers_outside_any_repository_and_in_missing_folders(tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "f.bin").write_bytes(b"x")
    assert is_tracked_with_lfs(outside / "f.bin") is False
    assert is_git_ignored(outside / "f.bin") is False
    missing = tmp_path / "missing"
    for call in (
        lambda: files_to_be_staged(".", folder=missing),
        lambda: is_tracked_upstream(missing),
        lambda: commits_to_push(missing),
        lambda: is_git_ignored(missing / "f"),
        lambda: is_tracked_with_lfs(missing / "f"),
    ):
        with pytest.raises(FileNotFoundError) as raised:
            call()
        assert "not installed" not in str(raised.value) and str(missing) in str(raised.value)


def test_files_to_be_staged_in_gits_order(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    (clone / "a.txt").write_text("changed")
    (clone / "b.txt").write_text("new")
    assert files_to_be_staged(".", folder=clone) == ["b.txt", "a.txt"]  # untracked first


def test_commits_to_push_takes_git_cherrys_arguments(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    repo.git_push()
    git(clone, "remote", "set-head", "origin", "main")
    repo.git_checkout("dev", create_branch_ok=True)
    make_commit(repo, "dev.txt", b"dev")
    assert commits_to_push(clone, "origin dev") == 1  # local dev against origin's default branch
    assert commits_to_push(clone, "origin/main") == 1


def test_empty_tag_message_and_empty_remote_mean_none(remote_repo, tmp_path):
    clone = tmp_path / "c"
    repo = Repository(clone, clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    repo.add_tag("v1", message="", remote="")
    assert git(clone, "cat-file", "-t", "v1") == "commit"  # lightweight, as `if message:` made it
    assert repo.tag_exists("v1", remote="") is True
    assert repo.delete_tag("v1", remote="") is True and not repo.tag_exists("v1")
