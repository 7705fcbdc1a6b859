"""LocalGitServer with the real git and git-lfs CLIs: clone, push, pull, push-to-create, LFS."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from repository.testing import LocalGitServer, RepoNotFoundError
from tests.support.server_git import commit_file, git


def test_clone_push_pull_branches_tags(remote_repo, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    git("clone", remote_repo.url, str(a))  # empty repository
    commit_file(a, "README.md", b"hello\n")
    git("push", "origin", "main", cwd=a)
    git("clone", remote_repo.url, str(b))
    assert (b / "README.md").read_bytes() == b"hello\n"

    commit_file(a, "README.md", b"hello again\n")
    git("tag", "v1", cwd=a)
    git("push", "origin", "main", "v1", "main:refs/heads/dev", cwd=a)
    git("pull", "-q", cwd=b)
    assert (b / "README.md").read_bytes() == b"hello again\n"

    head = git("rev-parse", "HEAD", cwd=a).stdout.strip()
    refs = remote_repo.server.list_refs(remote_repo.name)
    assert refs["refs/heads/main"] == refs["refs/heads/dev"] == head
    assert "refs/tags/v1" in refs


def test_push_to_create_with_and_without_dot_git(git_server, tmp_path):
    clone = tmp_path / "c"
    git("init", "-q", str(clone))
    commit_file(clone, "a.txt", b"a")
    git("push", f"{git_server.base_url}/created/one.git", "main", cwd=clone)
    git("push", f"{git_server.base_url}/created/two", "main", cwd=clone)
    head = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    assert git_server.list_refs("created/one")["refs/heads/main"] == head
    assert git_server.list_refs("created/two.git")["refs/heads/main"] == head


def test_no_auto_create_refuses_unknown_repo(tmp_path):
    clone = tmp_path / "c"
    git("init", "-q", str(clone))
    commit_file(clone, "a.txt", b"a")
    with LocalGitServer(auto_create=False) as server:
        result = git("push", f"{server.base_url}/ns/missing.git", "main", cwd=clone, check=False)
        assert result.returncode != 0
        assert "not found" in result.stderr or "404" in result.stderr
        with pytest.raises(RepoNotFoundError):
            server.list_refs("ns/missing")


def zombie_children() -> set[int]:
    """Children of this process that exited and were never waited for."""
    zombies = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.add(int(stat.parent.name))
    return zombies


def test_backend_ending_without_a_response_is_a_502_and_is_reaped(
    remote_repo, tmp_path, monkeypatch
):
    # git refuses to start http-backend at all when the global config is unreadable.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[[[ not a config\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    zombies_before = zombie_children()
    url = urllib.parse.urlsplit(remote_repo.url)
    # Half a body, the rest never sent: the server's feeder thread stays blocked reading it.
    request = (
        f"POST {url.path}/git-upload-pack HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Content-Type: application/x-git-upload-pack-request\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode() + b"0" * 500
    with socket.create_connection((url.hostname, url.port), timeout=30) as client:
        client.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response and (chunk := client.recv(65536)):
            response += chunk
        assert response.split(b"\r\n", 1)[0].split()[1] == b"502", response
        time.sleep(0.2)  # time for a backend that was left alone to become a zombie
        assert zombie_children() - zombies_before == set()


def test_create_repo_with_files_clones_with_lfs_content(git_server, tmp_path):
    big = os.urandom(1024**2 + 5)
    files = {"README.md": b"# model\n", "weights.bin": b"\x00" * 100, "data/big.dat": big}
    url = git_server.create_repo("ns/with-files", files)
    clone = tmp_path / "c"
    git("clone", url, str(clone))
    for rel, data in files.items():
        assert (clone / rel).read_bytes() == data
    lfs_files = git("lfs", "ls-files", "-n", cwd=clone).stdout.split()
    assert sorted(lfs_files) == ["data/big.dat", "weights.bin"]
    oid = hashlib.sha256(big).hexdigest()
    assert git_server.lfs_object_size(oid) == len(big)


def test_lfs_push_and_clone_50mb(remote_repo, tmp_path):
    server = remote_repo.server
    a, b = tmp_path / "a", tmp_path / "b"
    git("clone", remote_repo.url, str(a))
    git("lfs", "track", "*.bin", cwd=a)
    data = os.urandom(50 * 1000**2)
    oid = hashlib.sha256(data).hexdigest()
    git("add", ".gitattributes", cwd=a)
    commit_file(a, "model.bin", data)
    git("push", "origin", "main", cwd=a)

    stored = server.lfs_object_path(oid)
    assert stored is not None and stored.is_relative_to(server.data_dir)
    digest = hashlib.sha256()
    with open(stored, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == oid
    assert server.lfs_object_size(oid) == len(data)
    assert server.bytes_received(oid) == len(data)

    git("clone", remote_repo.url, str(b))
    assert hashlib.sha256((b / "model.bin").read_bytes()).hexdigest() == oid
