"""Ranged parallel downloads from the local server, including dropped connections."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from lfs_agent import download, http, log
from lfs_agent.progress import Progress
from lfs_agent.protocol import MessageWriter
from repository.testing import Faults, LocalGitServer

MiB = 1024**2


@pytest.fixture(scope="module")
def server():
    with LocalGitServer(multipart_threshold=MiB, chunk_size=5 * MiB) as server:
        yield server


def stored_object(server: LocalGitServer, tmp_path: Path, size: int) -> tuple[str, bytes, dict]:
    """Push an object with git-lfs (basic) and return its oid, bytes and download action."""
    url = server.create_repo(f"dl/{tmp_path.name}")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
    subprocess.run(["git", "lfs", "track", "*.bin"], cwd=clone, check=True, capture_output=True)
    data = os.urandom(size)
    (clone / "o.bin").write_bytes(data)
    subprocess.run(["git", "add", "."], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "o"], cwd=clone, check=True)
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=clone, check=True)
    oid = hashlib.sha256(data).hexdigest()
    batch = requests.post(
        f"{url}/info/lfs/objects/batch",
        timeout=10,
        data=json.dumps({"operation": "download", "objects": [{"oid": oid, "size": size}]}),
        headers={
            "Accept": "application/vnd.git-lfs+json",
            "Content-Type": "application/vnd.git-lfs+json",
        },
    )
    return oid, data, batch.json()["objects"][0]["actions"]["download"]


@pytest.mark.parametrize("faults", [Faults(), Faults(drop_every_nth_body=3)])
def test_ranged_parallel_download_with_and_without_drops(server, tmp_path, monkeypatch, faults):
    monkeypatch.setattr(download, "MIN_RANGE", MiB)
    monkeypatch.setattr(http, "BACKOFF_BASE", 0.01)
    size = 20 * MiB + 17
    oid, _, action = stored_object(server, tmp_path, size)
    server.faults = faults
    log.configure(str(tmp_path / "agent.log"))
    events = tmp_path / "events"
    fd = os.open(events, os.O_WRONLY | os.O_CREAT)
    path = download.Downloader(4, str(tmp_path / "lfs-tmp")).download(
        {"oid": oid, "size": size, "action": action}, Progress(MessageWriter(fd), oid, size)
    )
    os.close(fd)
    server.faults = Faults()
    log.configure(None)
    if faults.drop_every_nth_body:
        assert "dropped after" in (tmp_path / "agent.log").read_text()
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == oid
    progress = [json.loads(x)["bytesSoFar"] for x in events.read_text().splitlines()]
    assert progress == sorted(progress) and progress[-1] == size
