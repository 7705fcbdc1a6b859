"""LocalGitServer's API as a user meets it: errors from real git and a real socket, and the
server's git kept apart from the caller's repository."""

from __future__ import annotations

import socket
import tempfile

import pytest

from repository.testing import (
    InvalidArgumentError,
    ListenError,
    LocalGitServer,
    RepoExistsError,
    RepoNotFoundError,
    ServerGitError,
)
from tests.support.server_git import commit_file, git


def test_creating_an_existing_repository_is_a_file_exists_error(tmp_path):
    server = LocalGitServer(tmp_path)
    server.create_repo("ns/twice")
    with pytest.raises(RepoExistsError, match="ns/twice already exists") as error:
        server.create_repo("ns/twice")
    assert isinstance(error.value, FileExistsError)


@pytest.mark.parametrize("path", ["../up.txt", "sub/../../up.txt", "/abs.txt", ".git/config", ""])
def test_files_outside_the_work_tree_are_refused_before_anything_is_made(tmp_path, path):
    server = LocalGitServer(tmp_path)
    with pytest.raises(InvalidArgumentError, match="invalid file path"):
        server.create_repo("ns/paths", {"ok.txt": b"ok", path: b"x"})
    with pytest.raises(RepoNotFoundError):
        server.list_refs("ns/paths")


def test_a_port_in_use_is_a_listen_error_not_an_exit(capfd, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with (
            pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1:") as error,
            LocalGitServer(port=taken.getsockname()[1]),
        ):
            pass
    assert isinstance(error.value, OSError)
    assert capfd.readouterr().err == ""  # nothing printed: the error says it all
    assert list(tmp_path.iterdir()) == []  # the temporary data folder went with it


def test_git_missing_is_a_server_git_error(tmp_path, monkeypatch):
    server = LocalGitServer(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    with pytest.raises(ServerGitError, match="git is not installed"):
        server.create_repo("ns/no-git")


def test_the_callers_repository_variables_do_not_reach_the_servers_git(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    git("init", "-q", str(mine))
    commit_file(mine, "a.txt", b"a")
    head = git("rev-parse", "HEAD", cwd=mine).stdout.strip()
    # As inside a git hook, or a script run by `git -C mine ...`
    monkeypatch.setenv("GIT_DIR", str(mine / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(mine))
    monkeypatch.setenv("GIT_INDEX_FILE", str(mine / ".git" / "index"))
    with LocalGitServer(tmp_path / "data") as server:
        server.create_repo("ns/apart", {"README.md": b"server\n"})
        refs = server.list_refs("ns/apart")
    assert list(refs) == ["refs/heads/main"] and refs["refs/heads/main"] != head
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git("rev-parse", "HEAD", cwd=mine).stdout.strip() == head
    assert git("status", "--porcelain", cwd=mine).stdout == ""
