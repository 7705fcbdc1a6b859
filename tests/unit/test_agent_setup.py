"""`lfs-enable-largefiles`: idempotent config, a command that survives spaces, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lfs_agent.setup import NotAGitCloneError, enable_largefiles


def config(path: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(path), "config", "--local", "--get-regexp", r"^lfs\.customtransfer\."],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


def test_enable_is_idempotent_and_complete(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    enable_largefiles(tmp_path)
    first = config(tmp_path)
    enable_largefiles(str(tmp_path))
    assert config(tmp_path) == first
    assert sorted(k.split()[0] for k in first) == [
        "lfs.customtransfer.multipart.args",
        "lfs.customtransfer.multipart.concurrent",
        "lfs.customtransfer.multipart.direction",
        "lfs.customtransfer.multipart.path",
    ]
    values = dict(k.split(" ", 1) for k in first)
    assert os.path.isabs(values["lfs.customtransfer.multipart.path"])
    assert values["lfs.customtransfer.multipart.direction"] == "both"


def test_not_a_clone_is_a_clear_oserror(tmp_path):
    with pytest.raises(NotAGitCloneError, match="not a git clone"):
        enable_largefiles(tmp_path)
    with pytest.raises(OSError, match="no such directory"):
        enable_largefiles(tmp_path / "missing")


def test_cli_enables_and_reports_errors(tmp_path):
    lfsrepo = [sys.executable, "-m", "repository.cli"]
    subprocess.run(["git", "init", "-q", str(tmp_path / "c")], check=True)
    ok = subprocess.run(
        [*lfsrepo, "lfs-enable-largefiles", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(config(tmp_path / "c")) == 4
    bad = subprocess.run(
        [*lfsrepo, "lfs-enable-largefiles", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "not a git clone" in bad.stderr


def test_cli_agent_speaks_the_protocol():
    init = json.dumps({"event": "init", "operation": "download", "concurrenttransfers": 2})
    result = subprocess.run(
        [sys.executable, "-m", "repository.cli", "lfs-multipart-upload"],
        input=f"{init}\n" + '{"event":"terminate"}\n',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "{}\n"
