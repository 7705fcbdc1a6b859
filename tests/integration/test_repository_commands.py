"""Background commands: drained output, order, kill status, waiting, interpreter exit, progress."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from repository import AuthenticationError, Repository
from tests.support.clones import make_commit, slow_chatty_hook


def test_chatty_push_never_blocks_and_stderr_is_readable_while_running(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    slow_chatty_hook(tmp_path / "c", seconds=1.5, chatter_bytes=2_000_000)
    _, command = repo.git_push(blocking=False)
    assert not command.is_done  # back before the push (its hook alone takes 1.5 s); speed: bench
    deadline = time.monotonic() + 10
    while "hook-marker" not in command.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "hook-marker" in command.stderr and not command.is_done and command.status == -1
    assert repo.commands_in_progress == [command]
    assert command.wait(timeout=30)
    assert command.status == 0 and not command.failed, command.stderr
    assert command.stderr.count("x") >= 2_000_000
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()


def test_killed_push_reports_failure(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    slow_chatty_hook(tmp_path / "c", seconds=30)
    _, command = repo.git_push(blocking=False)
    deadline = time.monotonic() + 10
    while "hook-marker" not in command.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(command.process.pid, signal.SIGKILL)
    assert command.wait(timeout=10)
    assert command.status > 0 and command.failed
    assert repo.commands_failed == [command]
    assert "finished" in repr(command) and "push" in repr(command)
    assert remote_repo.server.list_refs(remote_repo.name) == {}


def test_pushes_run_in_order_and_never_resend(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    first_data = os.urandom(400_000)
    make_commit(repo, "first.bin", first_data)
    slow_chatty_hook(tmp_path / "c", seconds=0.5)
    _, first = repo.git_push(blocking=False)
    make_commit(repo, "second.bin", os.urandom(400_000))
    _, second = repo.git_push(blocking=False)
    assert repo.command_queue[-2:] == [first, second]
    assert repo.wait_for_commands(timeout=30)
    assert first.status == 0 and second.status == 0, first.stderr + second.stderr
    # One at a time: the second starts only after the first's 0.5 s hook has run.
    assert second.started_at - first.started_at >= 0.5
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()
    first_oid = hashlib.sha256(first_data).hexdigest()
    assert remote_repo.server.bytes_received(first_oid) == len(first_data)


def test_wait_for_commands_timeout_and_events(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    slow_chatty_hook(tmp_path / "c", seconds=1.0)
    repo.git_push(blocking=False)
    assert repo.wait_for_commands(timeout=0.2) is False
    assert repo.wait_for_commands(timeout=30) is True
    make_commit(repo, "b.txt", b"b")
    os.unlink(tmp_path / "c" / ".git" / "hooks" / "pre-push")
    _, quick = repo.git_push(blocking=False)
    assert repo.wait_for_commands() and quick.status == 0


EXIT_SCRIPT = """
import os, sys
from repository import Repository
repo = Repository({clone!r})
open(os.path.join({clone!r}, "late.txt"), "w").write("late")
repo.git_add(); repo.git_commit("late")
repo.git_push(blocking=False)
print("script done", flush=True)
"""


def test_interpreter_exit_waits_and_says_so_once(remote_repo, tmp_path):
    Repository(tmp_path / "c", clone_from=remote_repo.url)
    slow_chatty_hook(tmp_path / "c", seconds=1.5)
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT.format(clone=str(tmp_path / "c")))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("waiting for background git commands") == 1
    assert re.search(
        r"/c: push [0-9a-f]{7} \(main\) to origin main: (queued|running for \d+ s)", result.stderr
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path / "c", capture_output=True, text=True, check=True
    ).stdout.strip()
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == head


def test_ctrl_c_at_exit_stops_waiting_cleanly(remote_repo, tmp_path):
    Repository(tmp_path / "c", clone_from=remote_repo.url)
    slow_chatty_hook(tmp_path / "c", seconds=60)
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT.format(clone=str(tmp_path / "c")))
    child = pexpect.spawn(
        sys.executable, [str(script)], timeout=15, encoding="utf-8", env=dict(os.environ)
    )
    child.expect("waiting for background git commands")
    time.sleep(0.3)
    child.sendintr()  # the push's hook sleeps 30 s: only stopping the wait ends this in time
    child.expect("stopped waiting; interrupted, left for the next run .*: push")
    child.expect(pexpect.EOF)
    assert "Traceback" not in child.before
    assert remote_repo.server.list_refs(remote_repo.name) == {}


def test_progress_bars_name_each_file_and_leave_environ_alone(remote_repo, tmp_path, capfd):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url, progress_bars=True)
    environ_before = dict(os.environ)
    with repo.commit("with bars"):
        Path("my weights v1.bin").write_bytes(os.urandom(2_000_000))
    assert dict(os.environ) == environ_before
    err = capfd.readouterr().err
    assert "upload my weights v1.bin" in err

    quiet = Repository(tmp_path / "q", clone_from=remote_repo.url)  # stderr is not a terminal here
    with quiet.commit("no bars"):
        Path("other.bin").write_bytes(os.urandom(100_000))
    assert "upload other.bin" not in capfd.readouterr().err


def test_failures_are_raised_whatever_the_log_level(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    make_commit(repo, "a.txt", b"a")
    logging.disable(logging.CRITICAL)
    try:
        broken = Repository(tmp_path / "c")
        subprocess.run(
            [
                "git",
                "remote",
                "set-url",
                "origin",
                remote_repo.url.replace("127.0.0.1", "localhost:1/", 1),
            ],
            cwd=tmp_path / "c",
            check=True,
        )
        with pytest.raises(OSError):
            broken.git_push()
        _, command = broken.git_push(blocking=False)
        assert command.wait(30) and command.failed and command.stderr
    finally:
        logging.disable(logging.NOTSET)
    assert not isinstance(command.error, AuthenticationError)
