"""The local server's public surface and its errors: one root, the built-in types users caught
before it existed, and the checks that refuse a bad value before anything is started or written."""

from __future__ import annotations

import tempfile

import pytest

import repository.testing
from repository.testing import (
    Faults,
    InvalidArgumentError,
    ListenError,
    LocalGitServer,
    MissingDependencyError,
    RepoExistsError,
    RepoNotFoundError,
    S3Error,
    SeaweedFSError,
    ServerError,
    ServerGitError,
)
from repository.testing.errors import HttpError, StorageError


def test_every_public_name_resolves_and_is_listed():
    for name in repository.testing.__all__:
        assert getattr(repository.testing, name) is not None
    assert dir(repository.testing) == sorted(repository.testing.__all__)
    with pytest.raises(AttributeError):
        repository.testing.NoSuchThing  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize(
    "error,builtin",
    [
        (InvalidArgumentError, ValueError),
        (RepoExistsError, FileExistsError),
        (RepoNotFoundError, KeyError),
        (ListenError, OSError),
        (MissingDependencyError, ImportError),
        (ServerGitError, Exception),
        (StorageError, Exception),
        (HttpError, Exception),
        (S3Error, Exception),
        (SeaweedFSError, Exception),
    ],
)
def test_one_root_and_the_builtin_type_each_error_also_is(error, builtin):
    assert issubclass(error, ServerError) and issubclass(error, builtin)


def test_messages_read_as_given_even_for_the_key_error():
    assert str(RepoNotFoundError("no repository ns/m")) == "no repository ns/m"


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_size": 0},
        {"multipart_threshold": -1},
        {"port": 65536},
        {"port": -1},
        {"lfs_server": "ftp://127.0.0.1:9000"},
        {"lfs_server": "http://127.0.0.1:9000/path"},
    ],
)
def test_bad_options_are_refused_before_any_folder_is_made(options, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(InvalidArgumentError):
        LocalGitServer(**options)
    assert list(tmp_path.iterdir()) == []


def test_bad_names_paths_and_oids_are_value_errors(tmp_path):
    server = LocalGitServer(tmp_path)
    for call in (
        lambda: server.create_repo("ns/../escape"),
        lambda: server.repo_url("a/b/c/d/e"),
        lambda: server.list_refs("ns/x.git.git"),
        lambda: server.lfs_object_path("../" + "a" * 61),
        lambda: server.lfs_object_size("A" * 64),
    ):
        with pytest.raises(InvalidArgumentError):
            call()
    assert not any(tmp_path.rglob("*escape*"))


def test_a_missing_repository_is_a_key_error(tmp_path):
    with pytest.raises(KeyError, match="no repository ns/missing"):
        LocalGitServer(tmp_path).list_refs("ns/missing")


def test_faults_refused_are_value_errors():
    with pytest.raises(ValueError, match="latency_s"):
        Faults(latency_s=-0.1)
