"""`lfs-enable-largefiles`: idempotent config, an agent command that cannot be hijacked by the
clone's files, that works from any install, and that says how to fix itself once it cannot start."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lfs_agent.setup
from lfs_agent import NotAGitCloneError, enable_largefiles
from repository import RepositoryError
from tests.support.agent import INIT, PartServer, configure_agent, git, run_agent_as_git_lfs


def config(path: Path) -> list[str]:
    pattern = r"^lfs\.customtransfer\."
    return git(path, "config", "--local", "--get-regexp", pattern).stdout.splitlines()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "clone")
    return tmp_path / "clone"


def test_enable_is_idempotent_and_complete(clone):
    enable_largefiles(clone)
    first = config(clone)
    enable_largefiles(str(clone))
    assert config(clone) == first
    values = dict(line.split(" ", 1) for line in first)
    assert sorted(values) == [
        "lfs.customtransfer.multipart.args",
        "lfs.customtransfer.multipart.concurrent",
        "lfs.customtransfer.multipart.direction",
        "lfs.customtransfer.multipart.path",
    ]
    assert values["lfs.customtransfer.multipart.path"] == "/bin/sh"
    assert (
        f" {sys.executable} {lfs_agent.setup.AGENT_MAIN} "
        in values["lfs.customtransfer.multipart.args"]
    )
    assert values["lfs.customtransfer.multipart.concurrent"] == "false"
    assert values["lfs.customtransfer.multipart.direction"] == "both"


def test_enabling_an_enabled_clone_costs_one_git_call(clone, tmp_path, monkeypatch):
    enable_largefiles(clone)
    calls = tmp_path / "git-calls"
    shim = tmp_path / "shim" / "git"
    shim.parent.mkdir()
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True, check=True)
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec {real_git.stdout.strip()} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    enable_largefiles(clone)
    assert len(calls.read_text().splitlines()) == 1


def test_not_a_clone_is_a_repository_error(tmp_path):
    with pytest.raises(NotAGitCloneError, match="not a git clone") as caught:
        enable_largefiles(tmp_path)
    assert isinstance(caught.value, RepositoryError) and isinstance(caught.value, OSError)
    with pytest.raises(NotAGitCloneError, match="no such directory"):
        enable_largefiles(tmp_path / "missing")


def test_cli_enables_and_reports_errors(clone, tmp_path):
    lfsrepo = [sys.executable, "-m", "repository.cli"]
    ok = subprocess.run(
        [*lfsrepo, "lfs-enable-largefiles", str(clone)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert lfs_agent.setup.AGENT_MAIN in ok.stdout
    assert len(config(clone)) == 4
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


def test_the_clones_files_and_python_variables_cannot_reach_the_agents_imports(clone, tmp_path):
    # Modules of these names in the clone (git-lfs's working directory), or on PYTHONPATH, would
    # be imported instead of the real ones if the agent's interpreter looked there.
    marker = tmp_path / "imported"
    for name in ("requests", "lfs_agent", "repository", "json", "http"):
        (clone / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    enable_largefiles(clone)
    server = PartServer()
    try:
        data = os.urandom(300_000)
        oid = hashlib.sha256(data).hexdigest()
        (clone / "weights.bin").write_bytes(data)
        upload = {
            "event": "upload",
            "oid": oid,
            "size": len(data),
            "path": str(clone / "weights.bin"),
            "action": server.action(len(data), 100_000),
        }
        result = run_agent_as_git_lfs(
            clone,
            [INIT, upload, {"event": "terminate"}],
            env={"PYTHONPATH": str(clone)},
        )
    finally:
        server.shutdown()
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert replies[0] == {} and replies[-1] == {"event": "complete", "oid": oid}
    assert server.state.objects[oid] == data
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("gone", ["interpreter", "agent"])
def test_an_agent_that_cannot_start_answers_init_with_the_fix(clone, tmp_path, monkeypatch, gone):
    python = sys.executable
    if gone == "interpreter":  # the virtualenv that enabled the clone was removed
        python = str(tmp_path / "removed-venv" / "bin" / "python")
    else:  # lfsrepo was uninstalled from it
        monkeypatch.setattr(lfs_agent.setup, "AGENT_MAIN", str(tmp_path / "gone" / "__main__.py"))
    configure_agent(clone, python)
    result = run_agent_as_git_lfs(clone, [INIT])
    assert result.returncode == 1
    [reply] = [json.loads(line) for line in result.stdout.splitlines()]
    assert reply["error"]["code"] == 32
    message = reply["error"]["message"]
    assert message.startswith("cannot start the lfsrepo transfer agent: ")
    assert f"Run `lfsrepo lfs-enable-largefiles {clone}`" in message
    assert "create a Repository for this clone again" in message
