"""The whole legacy workflow against LFS servers: ours, ours with per-action headers, and giftless.

giftless (0.6.2, nobody here wrote it) runs under waitress behind our git server, which forwards
its LFS API on the same origin, as forges serve it: every upload action carries giftless's own
``Authorization`` header. Two modes: anonymous read/write (the user still has a token, which must
not get in the way), and a JWT required everywhere (HTTP Basic ``_jwt:<token>``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from repository import AuthenticationError, Repository
from repository.auth import with_username
from repository.testing import LocalGitServer
from tests.support.giftless import Giftless

TOKEN = "interop-user-token"
_names = itertools.count(1)


@dataclasses.dataclass
class Remote:
    """One kind of server, and how a user of it passes credentials."""

    git: LocalGitServer
    username: str | None  # the username the server wants, written into the clone URL
    token: str
    stored: Callable[[str, str], bytes | None]  # (repository name, oid) -> object on the server
    prepare: Callable[[str], None] = lambda name: None

    def create(self) -> tuple[str, str]:
        """A new empty repository: (name, clone URL)."""
        name = f"interop/r{next(_names)}"
        url = self.git.create_repo(name)
        self.prepare(name)
        return name, with_username(url, self.username) if self.username else url

    def repository(self, folder: Path, url: str, **options) -> Repository:
        return Repository(folder, clone_from=url, token=self.token, **options)


def ours(server: LocalGitServer) -> Callable[[str, str], bytes | None]:
    def stored(name: str, oid: str) -> bytes | None:
        path = server.lfs_object_path(oid)
        return path.read_bytes() if path else None

    return stored


def from_giftless(giftless: Giftless) -> Callable[[str, str], bytes | None]:
    def stored(name: str, oid: str) -> bytes | None:
        path = giftless.object_path(name, oid)
        return path.read_bytes() if path.is_file() else None

    return stored


@pytest.fixture(
    scope="module",
    params=["lfsrepo", "lfsrepo-per-action-headers", "giftless-anonymous", "giftless-jwt"],
)
def remote(request, tmp_path_factory) -> Iterator[Remote]:
    kind = request.param
    if kind.startswith("lfsrepo"):
        with LocalGitServer(token=TOKEN, action_authorization=kind.endswith("headers")) as git:
            yield Remote(git, None, TOKEN, ours(git))
        return
    giftless = Giftless(
        tmp_path_factory.mktemp(kind), secret="giftless-jwt-key" if kind == "giftless-jwt" else None
    ).start()
    try:
        if kind == "giftless-anonymous":
            with LocalGitServer(lfs_server=giftless.url) as git:
                # The user has a token although this server needs none: it must not get in the way.
                yield Remote(git, None, TOKEN, from_giftless(giftless), giftless.prepare_repo)
        else:
            jwt = giftless.token("interop")
            with LocalGitServer(token=jwt, lfs_server=giftless.url) as git:
                yield Remote(git, "_jwt", jwt, from_giftless(giftless), giftless.prepare_repo)
    finally:
        giftless.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(repo: Repository, name: str, data: bytes) -> None:
    (Path(repo.local_dir) / name).write_bytes(data)


def head_on_remote(remote: Remote, name: str, repo: Repository) -> bool:
    return remote.git.list_refs(name).get("refs/heads/main") == repo.git_head_hash()


def test_commit_blocking_and_queued_into_an_empty_remote(remote, tmp_path):
    name, url = remote.create()
    repo = remote.repository(tmp_path / "a", url)
    first, second = os.urandom(300_000), os.urandom(200_000)
    with repo.commit("blocking"):
        Path("first.bin").write_bytes(first)
    assert head_on_remote(remote, name, repo)
    with repo.commit("queued", blocking=False):
        Path("second.bin").write_bytes(second)
    assert repo.wait_for_commands(timeout=120)
    assert [c.status for c in repo.command_queue] == [0], repo.command_queue[-1].stderr
    assert head_on_remote(remote, name, repo)
    assert remote.stored(name, sha256(first)) == first
    assert remote.stored(name, sha256(second)) == second


def test_git_push_and_push_to_hub(remote, tmp_path):
    name, url = remote.create()
    repo = remote.repository(tmp_path / "a", url)
    data = os.urandom(250_000)
    write(repo, "weights.bin", data)
    repo.git_add(auto_lfs_track=True)
    repo.git_commit("weights")
    assert repo.git_push().endswith(f"/commit/{repo.git_head_hash()}")
    assert head_on_remote(remote, name, repo) and remote.stored(name, sha256(data)) == data
    more = os.urandom(150_000)
    write(repo, "more.bin", more)
    url_pushed = repo.push_to_hub("more")
    assert url_pushed.endswith(repo.git_head_hash()) and head_on_remote(remote, name, repo)
    assert remote.stored(name, sha256(more)) == more
    assert repo.push_to_hub("clean") is None  # nothing to commit


def test_clone_of_a_populated_remote_pull_and_skipped_lfs_files(remote, tmp_path):
    _, url = remote.create()
    writer = remote.repository(tmp_path / "writer", url)
    first = os.urandom(120_000)
    with writer.commit("first"):
        Path("first.bin").write_bytes(first)
    reader = remote.repository(tmp_path / "reader", url)
    assert (tmp_path / "reader" / "first.bin").read_bytes() == first
    lazy = remote.repository(tmp_path / "lazy", url, skip_lfs_files=True)
    assert (tmp_path / "lazy" / "first.bin").read_bytes().startswith(b"version https://git-lfs")
    second = os.urandom(90_000)
    with writer.commit("second"):
        Path("second.bin").write_bytes(second)
    reader.git_pull()
    assert (tmp_path / "reader" / "second.bin").read_bytes() == second
    lazy.git_pull()
    lazy.git_pull(lfs=True)
    assert (tmp_path / "lazy" / "first.bin").read_bytes() == first
    assert (tmp_path / "lazy" / "second.bin").read_bytes() == second


def local_object(repo: Repository, data: bytes) -> Path:
    oid = sha256(data)
    return Path(repo.local_dir) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def test_lfs_prune_and_auto_lfs_prune(remote, tmp_path):
    name, url = remote.create()
    repo = remote.repository(tmp_path / "a", url)
    versions = [os.urandom(100_000) for _ in range(3)]
    with repo.commit("v1"):
        Path("w.bin").write_bytes(versions[0])
    with repo.commit("v2", auto_lfs_prune=True):
        Path("w.bin").write_bytes(versions[1])
    assert not local_object(repo, versions[0]).exists()  # pushed and no longer checked out
    assert local_object(repo, versions[1]).exists()
    with repo.commit("v3"):
        Path("w.bin").write_bytes(versions[2])
    repo.lfs_prune()
    assert not local_object(repo, versions[1]).exists() and local_object(repo, versions[2]).exists()
    for version in versions:
        assert remote.stored(name, sha256(version)) == version


def test_tags_local_and_remote(remote, tmp_path):
    name, url = remote.create()
    repo = remote.repository(tmp_path / "a", url)
    with repo.commit("tagged"):
        Path("w.bin").write_bytes(os.urandom(10_000))
    repo.add_tag("v1", message="first", remote="origin")
    repo.add_tag("local-only")
    assert repo.tag_exists("v1", remote="origin") and repo.tag_exists("local-only")
    assert not repo.tag_exists("local-only", remote="origin")
    assert "refs/tags/v1" in remote.git.list_refs(name)
    assert repo.delete_tag("v1", remote="origin")
    assert not repo.tag_exists("v1", remote="origin") and not repo.tag_exists("v1")


@pytest.fixture(scope="module")
def giftless_jwt(tmp_path_factory) -> Iterator[Giftless]:
    giftless = Giftless(tmp_path_factory.mktemp("giftless-jwt-alone"), secret="key").start()
    yield giftless
    giftless.stop()


def test_a_token_in_the_clone_url_in_giftless_form(giftless_jwt, tmp_path):
    jwt = giftless_jwt.token("interop")
    with LocalGitServer(token=jwt, lfs_server=giftless_jwt.url) as git:
        giftless_jwt.prepare_repo("interop/in-url")
        url = git.create_repo("interop/in-url").replace("://", f"://_jwt:{jwt}@")
        with pytest.warns(UserWarning, match="held a token"):
            repo = Repository(tmp_path / "a", clone_from=url)
        data = os.urandom(50_000)
        with repo.commit("in url"):
            Path("w.bin").write_bytes(data)
        assert giftless_jwt.object_path("interop/in-url", sha256(data)).read_bytes() == data
        config = (tmp_path / "a" / ".git" / "config").read_text()
        assert jwt not in config and "_jwt@" in config  # the username stays, as git keeps it


@pytest.mark.timeout(120)
def test_a_token_the_lfs_server_refuses_fails_fast_instead_of_looping(giftless_jwt, tmp_path):
    # git accepts the token, giftless does not (expired): git-lfs 3.3 would resend it forever.
    expired = giftless_jwt.token("interop", lifetime_s=-60)
    with LocalGitServer(token=expired, lfs_server=giftless_jwt.url) as git:
        url = with_username(git.create_repo("interop/expired"), "_jwt")
        repo = Repository(tmp_path / "a", clone_from=url, token=expired)
        write(repo, "w.bin", os.urandom(20_000))
        with pytest.raises(AuthenticationError) as raised:  # looping would hit the timeout
            repo.push_to_hub("refused")
        assert expired not in str(raised.value)
        assert git.list_refs("interop/expired") == {}
