"""The S3-backed server as a team runs it: its WSGI app under gunicorn, in several worker
processes, with a token. With ``--max-requests 1`` every request is served by a process that
signed nothing before, so a push through the agent (which sends no token to the completion URL,
only its signature) works only when the workers share the signing key."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from repository import Repository
from repository.errors import AuthenticationError, GitCommandError
from repository.testing import LocalGitServer
from tests.support.agent import server_sha256
from tests.support.server_process import stop, wait_for_log_line

MiB = 1024**2
STOP_TIMEOUT_S = 15.0
START_TIMEOUT_S = 60.0
LISTENING = r"Listening at: (http://127\.0\.0\.1:\d+)"
TOKEN = "team-" + secrets.token_hex(8)
APP = """\
import os
from repository.testing import LocalGitServer

server = LocalGitServer(
    os.environ["LFSREPO_TEST_DATA"],
    s3_bucket=os.environ["LFSREPO_TEST_BUCKET"],
    s3_prefix="workers/",
    s3_endpoint=os.environ["LFSREPO_TEST_ENDPOINT"],
    s3_region=os.environ["LFSREPO_TEST_REGION"],
    multipart_threshold=5 * 1024**2,
    chunk_size=5 * 1024**2,
    token=os.environ["LFSREPO_SERVE_TOKEN"],
    signing_key=os.environ.get("LFSREPO_SERVE_SIGNING_KEY"),
)
app = server.wsgi
"""


@contextlib.contextmanager
def gunicorn(seaweedfs, data: Path, signing_key: str | None) -> Iterator[str]:
    """Two gunicorn workers serving the app, each replaced after one request; yields the base
    URL. Credentials reach the app through the standard AWS environment."""
    (data / "lfs_app.py").write_text(APP)
    env = {
        **os.environ,
        "LFSREPO_TEST_DATA": str(data / "server"),
        "LFSREPO_TEST_BUCKET": seaweedfs.bucket,
        "LFSREPO_TEST_ENDPOINT": seaweedfs.endpoint,
        "LFSREPO_TEST_REGION": seaweedfs.region,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "LFSREPO_SERVE_TOKEN": TOKEN,
    }
    env.pop("LFSREPO_SERVE_SIGNING_KEY", None)
    if signing_key is not None:
        env["LFSREPO_SERVE_SIGNING_KEY"] = signing_key
    log_path = data / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "2"),
                *("--max-requests", "1", "--chdir", str(data), "lfs_app:app"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # gunicorn logs "Listening at" once bound; workers may boot a little later.
        yield wait_for_log_line(process, log_path, LISTENING, START_TIMEOUT_S).group(1)
    finally:
        stop(process, STOP_TIMEOUT_S)


def push(seaweedfs, tmp_path: Path, base: str, name: str) -> tuple[Repository, dict[str, str]]:
    """Clone ``name`` (created here), commit two LFS files, one of three parts, and push them
    through the agent; return the clone and the files' oids."""
    bucket_view(seaweedfs, tmp_path).create_repo(name)
    repo = Repository(tmp_path / "clone", clone_from=f"{base}/{name}.git", token=TOKEN)
    repo.lfs_enable_largefiles()
    files = {"parts.bin": os.urandom(2 * 5 * MiB + 1), "small.bin": os.urandom(1000)}
    for file_name, data in files.items():
        (tmp_path / "clone" / file_name).write_bytes(data)
    repo.git_add(auto_lfs_track=True)
    repo.git_commit("two LFS files")
    repo.git_push()
    return repo, {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def bucket_view(seaweedfs, data: Path) -> LocalGitServer:
    """The same repositories and bucket, read from this process (the server is not started)."""
    return LocalGitServer(data / "server", **seaweedfs.server_options(prefix="workers/"))


@pytest.mark.timeout(240)
def test_a_push_through_worker_processes_sharing_the_signing_key(seaweedfs, tmp_path):
    with gunicorn(seaweedfs, tmp_path, secrets.token_hex(32)) as base:
        repo, oids = push(seaweedfs, tmp_path, base, "team/model")
    log = (tmp_path / "gunicorn.log").read_text()
    assert len(re.findall(r"Booting worker with pid", log)) >= 6  # one process per request
    view = bucket_view(seaweedfs, tmp_path)
    assert view.list_refs("team/model")["refs/heads/main"] == repo.git_head_hash()
    for name, oid in oids.items():
        assert server_sha256(view, oid) == oid, name
        assert view.lfs_object_size(oid) is not None, name  # verified


@pytest.mark.timeout(240)
def test_without_a_shared_key_another_worker_refuses_the_completion(seaweedfs, tmp_path):
    with gunicorn(seaweedfs, tmp_path, None) as base, pytest.raises(GitCommandError) as refused:
        push(seaweedfs, tmp_path, base, "team/unshared")
    assert "signing key" in str(refused.value), refused.value
    assert not isinstance(refused.value, AuthenticationError)  # the token was right
    assert TOKEN not in str(refused.value)
    view = bucket_view(seaweedfs, tmp_path)
    assert "refs/heads/main" not in view.list_refs("team/unshared")


def test_serve_refuses_a_short_signing_key_without_printing_it(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "repository.cli", "serve", "--data", str(tmp_path)],
        env={**os.environ, "LFSREPO_SERVE_SIGNING_KEY": "hunter2"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "LFSREPO_SERVE_SIGNING_KEY" in run.stderr and "secrets.token_hex" in run.stderr
    assert "hunter2" not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
