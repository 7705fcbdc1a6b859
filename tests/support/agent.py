"""Clones wired to the multipart agent, and what the agent tests write and check in them."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from lfs_agent.setup import enable_largefiles
from repository.testing import Faults, LocalGitServer

MiB = 1024**2


def agent_clone(server: LocalGitServer, tmp_path: Path, test_name: str) -> Path:
    """A plain git clone of a new repository on ``server``, ``*.bin`` through LFS and the agent;
    the server's faults are cleared."""
    name = f"agent/{test_name.replace('[', '-').replace(']', '')}"
    url = server.create_repo(name)
    path = tmp_path / "clone"
    git(tmp_path, "clone", "-q", url, str(path))
    git(path, "lfs", "track", "*.bin")
    enable_largefiles(path)
    server.faults = Faults()
    return path


def git(
    cwd: Path, *args: str, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_blob(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (fast: a random MiB repeated, a random tail); return oid."""
    block, tail = os.urandom(MiB), os.urandom(size % MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in [block] * (size // MiB) + [tail]:
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def server_sha256(server: LocalGitServer, oid: str) -> str | None:
    path = server.lfs_object_path(oid)
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def commit(clone: Path, files: dict[str, int]) -> dict[str, str]:
    oids = {name: write_blob(clone / name, size) for name, size in files.items()}
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "data")
    return oids
