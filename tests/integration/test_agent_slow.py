"""Opt-in (``scripts/test --slow``): a file over 5 GiB through the agent, default threshold."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from lfs_agent import enable_largefiles
from repository.testing import LocalGitServer

MiB = 1024**2


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_push_over_5_gib_with_the_default_threshold(tmp_path):
    size = 5 * 1024 * MiB + 7 * MiB + 3  # over a single PUT's 5 GiB limit, a short last part
    with LocalGitServer() as server:  # default threshold (5 GiB) and part size
        url = server.create_repo("slow/huge")
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
        subprocess.run(["git", "lfs", "track", "*.bin"], cwd=clone, check=True, capture_output=True)
        enable_largefiles(clone)
        digest = hashlib.sha256()
        block = os.urandom(64 * MiB)
        with open(clone / "huge.bin", "wb") as f:
            left = size
            while left:
                piece = block[:left] if left < len(block) else block
                if left == size:
                    piece = os.urandom(len(piece))  # a fresh oid every run
                f.write(piece)
                digest.update(piece)
                left -= len(piece)
        oid = digest.hexdigest()
        subprocess.run(["git", "add", "."], cwd=clone, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "huge"], cwd=clone, check=True)
        log = tmp_path / "agent.log"
        subprocess.run(
            ["git", "push", "-q", "origin", "main"],
            cwd=clone,
            check=True,
            env={**os.environ, "LFSREPO_AGENT_LOG": str(log)},
        )
        assert f"upload {oid}" in log.read_text()  # the agent did it, in parts
        assert server.lfs_object_size(oid) == size
        stored = hashlib.sha256()
        with open(server.lfs_object_path(oid), "rb") as f:
            while chunk := f.read(16 * MiB):
                stored.update(chunk)
        assert stored.hexdigest() == oid
