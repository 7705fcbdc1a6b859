"""The agent through the real git-lfs client against the local server: push, clone, faults, kill."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lfs_agent.setup
from lfs_agent import enable_largefiles
from repository import Repository
from repository.testing import Faults, LocalGitServer
from tests.support.agent import agent_clone, commit, configure_agent, git, server_sha256

MiB = 1024**2
CHUNK = 5 * MiB


@pytest.fixture(scope="module")
def server():
    # Multipart above 1 MiB, so a 3 MiB file is a single-part multipart upload.
    with LocalGitServer(multipart_threshold=1 * MiB, chunk_size=CHUNK) as server:
        yield server


@pytest.fixture
def clone(server, tmp_path, request):
    return agent_clone(server, tmp_path, request.node.name)


def test_push_and_clone_multipart_objects_of_several_sizes(server, clone, tmp_path):
    sizes = {
        "exact.bin": 3 * CHUNK,
        "over.bin": 3 * CHUNK + 1,
        "under.bin": 3 * CHUNK - 1,
        "single.bin": 3 * MiB,
        "small.bin": 1000,
    }
    oids = commit(clone, sizes)
    log = tmp_path / "agent.log"
    git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_LOG": str(log)})
    for name, oid in oids.items():
        assert server_sha256(server, oid) == oid, name
    text = log.read_text()
    # The agent did the work (small.bin came in the same multipart batch as a plain PUT) ...
    assert all(f"upload {oid}" in text for oid in oids.values())
    # ... and its log keeps the presigned signatures out.
    assert "sig=" not in text and "?<redacted>" in text
    for folder in (clone / ".git" / "lfs" / "tmp", clone / ".git" / "lfsrepo" / "multipart"):
        assert not list(folder.glob("lfsrepo-multipart-*"))  # journals go when uploads complete
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", server.repo_url(clone_name(server, clone)), str(fresh))
    for name, oid in oids.items():
        assert hashlib.sha256((fresh / name).read_bytes()).hexdigest() == oid


def clone_name(server: LocalGitServer, clone: Path) -> str:
    url = git(clone, "remote", "get-url", "origin").stdout.strip()
    return url.split(f":{server.port}/", 1)[1].removesuffix(".git")


def test_push_survives_failed_parts_and_dropped_connections(server, clone):
    oids = commit(clone, {"big.bin": 256 * MiB + 123})  # 52 parts
    server.faults = Faults(fail_every_nth_part=3, drop_every_nth_body=5)
    # Almost half of all attempts fail here; with the default 10 tries per part, one part in ~2000
    # would run out, so this test allows more to stay deterministic.
    git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_ATTEMPTS": "25"})
    assert server_sha256(server, oids["big.bin"]) == oids["big.bin"]
    assert server.bytes_received(oids["big.bin"]) > 256 * MiB  # the faults really fired


def test_a_part_that_always_fails_fails_the_push_naming_object_and_cause(server, clone):
    oids = commit(clone, {"doomed.bin": 12 * MiB})
    server.faults = Faults(fail_every_nth_part=1)
    result = git(clone, "push", "origin", "main", check=False, env={"LFSREPO_AGENT_ATTEMPTS": "2"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert oids["doomed.bin"] in output
    assert "injected failure of part" in output and "HTTP 500" in output
    assert server.lfs_object_path(oids["doomed.bin"]) is None
    assert "Traceback" not in output


def test_killed_push_resumes_without_resending_finished_parts(server, clone):
    size = 8 * CHUNK
    oid = commit(clone, {"resume.bin": size})["resume.bin"]
    # Two parts at a time at 10 MB/s each: the push takes ~2 s, so the kill lands mid-upload.
    server.faults = Faults(bandwidth_bytes_per_s=10 * MiB)
    env = {**os.environ, "LFSREPO_AGENT_CONCURRENCY": "2"}
    push = subprocess.Popen(
        ["git", "push", "-q", "origin", "main"],
        cwd=clone,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while server.bytes_received(oid) < size // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(push.pid, signal.SIGKILL)  # git, git-lfs and the agent, all at once
    push.wait()
    at_kill = -1
    while at_kill != server.bytes_received(oid):  # the server drains what the kernel buffered
        at_kill = server.bytes_received(oid)
        time.sleep(0.3)
    assert size // 2 <= at_kill < size and server.lfs_object_path(oid) is None
    journal = clone / ".git" / "lfsrepo" / "multipart" / f"lfsrepo-multipart-{oid}.json"
    done = len(json.loads(journal.read_text())["etags"])
    assert done >= 2

    server.faults = Faults()
    git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_CONCURRENCY": "2"})
    resent = server.bytes_received(oid) - at_kill
    assert server_sha256(server, oid) == oid
    # Only the parts not journalled go again: at most the remaining parts plus those in flight.
    assert resent == size - done * CHUNK
    assert resent <= size - at_kill + 2 * CHUNK
    assert not journal.exists()


def test_agent_runs_from_paths_with_spaces(server, clone, tmp_path, monkeypatch):
    """git-lfs passes path and args through a shell: a virtualenv, and lfsrepo, under spaces."""
    spaced_venv = tmp_path / "my envs" / "the venv"
    spaced_venv.parent.mkdir()
    spaced_venv.symlink_to(Path(sys.prefix))
    spaced_package = tmp_path / "my src" / "lfs_agent"
    spaced_package.parent.mkdir()
    spaced_package.symlink_to(Path(lfs_agent.setup.AGENT_MAIN).parent)
    monkeypatch.setattr(lfs_agent.setup, "AGENT_MAIN", str(spaced_package / "__main__.py"))
    configure_agent(clone, str(spaced_venv / "bin" / "python"))
    oid = commit(clone, {"spaced.bin": 6 * MiB})["spaced.bin"]
    log = tmp_path / "agent.log"
    git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_LOG": str(log)})
    assert server_sha256(server, oid) == oid
    assert f"upload {oid}" in log.read_text()


def test_a_removed_virtualenv_fails_the_push_saying_how_to_fix_it(server, clone, tmp_path):
    venv = tmp_path / "venv"  # stands for the virtualenv that enabled the clone
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    configure_agent(clone, str(venv / "bin" / "python"))
    oid = commit(clone, {"model.bin": 3 * MiB})["model.bin"]
    git(clone, "push", "-q", "origin", "main")
    assert server_sha256(server, oid) == oid
    shutil.rmtree(venv)

    oid = commit(clone, {"model.bin": 3 * MiB})["model.bin"]
    failed = git(clone, "push", "origin", "main", check=False)
    assert failed.returncode != 0
    # Without the agent's answer, all git-lfs 3.3 would say is "EOF".
    shown = (
        'error initializing custom adapter "multipart" worker 0: [32] cannot start the lfsrepo '
        f"transfer agent: {venv}/bin/python or {lfs_agent.setup.AGENT_MAIN} is gone"
    )
    assert shown in failed.stderr
    assert f"Run `lfsrepo lfs-enable-largefiles {clone}` with the Python" in failed.stderr
    assert server.lfs_object_path(oid) is None

    Repository(clone)  # the fix it names: constructing a Repository writes the command anew
    git(clone, "push", "-q", "origin", "main")
    assert server_sha256(server, oid) == oid


def test_git_lfs_pull_downloads_large_objects_through_the_agent(server, clone, tmp_path):
    oids = commit(clone, {"weights.bin": 3 * CHUNK + 5, "tiny.bin": 10})
    git(clone, "push", "-q", "origin", "main")
    fresh = tmp_path / "fresh"
    git(
        tmp_path,
        "clone",
        "-q",
        server.repo_url(clone_name(server, clone)),
        str(fresh),
        env={"GIT_LFS_SKIP_SMUDGE": "1"},
    )
    enable_largefiles(fresh)
    log = tmp_path / "agent.log"
    server.faults = Faults(drop_every_nth_body=2)  # ranges resume after a dropped connection
    git(fresh, "lfs", "pull", env={"LFSREPO_AGENT_LOG": str(log)})
    for name, oid in oids.items():
        assert hashlib.sha256((fresh / name).read_bytes()).hexdigest() == oid, name
    text = log.read_text()
    assert f"download {oids['weights.bin']}" in text
    assert "sig=" not in text
