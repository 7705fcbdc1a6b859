"""pytest fixtures for a local git + LFS server: ``git_server`` (session) and ``remote_repo``.

Registered through the ``pytest11`` entry point, so installing lfsrepo makes them available.
Imports nothing heavy until a fixture is used.

Example:
    def test_push(remote_repo, tmp_path):
        subprocess.run(["git", "clone", remote_repo.url, str(tmp_path / "c")], check=True)
        ...
        assert remote_repo.server.list_refs(remote_repo.name)
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import LocalGitServer

_counter = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class RemoteRepo:
    """A fresh empty repository on the session's server.

    Example:
        >>> RemoteRepo(url="http://127.0.0.1:1/t/x.git", name="t/x", server=None).name
        't/x'
    """

    url: str
    name: str
    server: LocalGitServer


@pytest.fixture(scope="session")
def git_server() -> Iterator[LocalGitServer]:
    """A running :class:`LocalGitServer` shared by the session (multipart above 8 MiB, 5 MiB parts).

    Example:
        def test_x(git_server):
            url = git_server.create_repo("ns/x", files={"a.bin": b"..."})
    """
    from .server import LocalGitServer

    with LocalGitServer(multipart_threshold=8 * 1024**2, chunk_size=5 * 1024**2) as server:
        yield server


@pytest.fixture
def remote_repo(git_server: LocalGitServer, request: pytest.FixtureRequest) -> Iterator[RemoteRepo]:
    """A fresh empty repository for one test; server faults are reset afterwards.

    Example:
        def test_y(remote_repo):
            subprocess.run(["git", "clone", remote_repo.url, "c"], check=True)
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.")[:60] or "test"
    name = f"tests/{slug}-{next(_counter)}"
    url = git_server.create_repo(name)
    faults = git_server.faults
    yield RemoteRepo(url=url, name=name, server=git_server)
    git_server.faults = faults
