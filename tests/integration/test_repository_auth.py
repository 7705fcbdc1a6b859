"""Tokens: used for git and git-lfs alike, never on disk, in argv or in messages; never a prompt."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from repository import AuthenticationError, Repository
from repository.testing import LocalGitServer

TOKEN = "tok-3f9a1c-very-secret"


@pytest.fixture(scope="module")
def token_server() -> Iterator[LocalGitServer]:
    with LocalGitServer(token=TOKEN) as server:
        yield server


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(path)
    return found


def command_lines_containing(needle: bytes) -> list[bytes]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                found.append(cmdline)
    return found


def test_token_reaches_git_and_lfs_but_never_disk_argv_or_output(token_server, tmp_path):
    url = token_server.create_repo("auth/ok", files={"seed.bin": os.urandom(5000)})
    seen_in_argv: list[bytes] = []
    stop = threading.Event()

    def watch_argv() -> None:
        while not stop.is_set():
            seen_in_argv.extend(command_lines_containing(TOKEN.encode()))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_argv)
    watcher.start()
    try:
        repo = Repository(tmp_path / "clone", clone_from=url, token=TOKEN)
        data = os.urandom(3_000_000)
        with repo.commit("with token"):
            Path("weights.bin").write_bytes(data)
        _, command = repo.git_push(blocking=False)
        assert command.wait(30) and command.status == 0
    finally:
        stop.set()
        watcher.join()
    assert seen_in_argv == []
    assert token_server.lfs_object_size(hashlib.sha256(data).hexdigest()) == len(data)
    assert token_server.list_refs("auth/ok")["refs/heads/main"] == repo.git_head_hash()
    assert (tmp_path / "clone" / "seed.bin").stat().st_size == 5000  # LFS download used the token
    assert files_containing(tmp_path, TOKEN.encode()) == []
    assert files_containing(Path(os.environ["HOME"]), TOKEN.encode()) == []
    remotes = subprocess.run(["git", "remote", "-v"], cwd=tmp_path / "clone", capture_output=True,
                             text=True, check=True).stdout
    assert TOKEN not in remotes and TOKEN not in repo.git_remote_url()
    assert TOKEN not in command.stderr + command.stdout + repr(command)


def test_token_in_clone_url_is_taken_out(token_server, tmp_path):
    url = token_server.create_repo("auth/in-url", files={"a.txt": b"a"})
    with pytest.warns(UserWarning, match="credentials"):
        repo = Repository(tmp_path / "c", clone_from=url.replace("://", f"://user:{TOKEN}@"))
    assert TOKEN not in (tmp_path / "c" / ".git" / "config").read_text()
    (tmp_path / "c" / "b.txt").write_text("b")
    repo.push_to_hub("b")
    assert token_server.list_refs("auth/in-url")["refs/heads/main"] == repo.git_head_hash()


def test_token_true_reads_the_environment(token_server, tmp_path, monkeypatch):
    url = token_server.create_repo("auth/env", files={"a.txt": b"a"})
    monkeypatch.setenv("LFSREPO_TOKEN", TOKEN)
    repo = Repository(tmp_path / "c", clone_from=url, token=True)
    assert repo.git_head_hash() == token_server.list_refs("auth/env")["refs/heads/main"]


@pytest.mark.parametrize("token", ["wrong-token-123", None])
def test_wrong_or_missing_token_fails_fast_and_redacted(token_server, tmp_path, token):
    url = token_server.create_repo(f"auth/bad-{token}", files={"a.txt": b"a"})
    repo = Repository(tmp_path / "c", clone_from=url, token=TOKEN)
    bad = Repository(tmp_path / "c", token=token)
    (tmp_path / "c" / "w.bin").write_bytes(os.urandom(1000))
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        bad.push_to_hub("should not land")
    assert time.monotonic() - started < 10
    assert "authentication failed" in str(caught.value)
    if token:
        assert token not in str(caught.value)
    assert token_server.list_refs(f"auth/bad-{token}")["refs/heads/main"] != repo.git_head_hash()
    with pytest.raises(AuthenticationError):
        Repository(tmp_path / "d", clone_from=url, token=token)


def test_wrong_token_through_a_terminal_never_prompts(token_server, tmp_path):
    url = token_server.create_repo("auth/tty", files={"a.txt": b"a"})
    Repository(tmp_path / "c", clone_from=url, token=TOKEN)
    script = tmp_path / "push.py"
    script.write_text(textwrap.dedent(f"""
        from repository import Repository
        repo = Repository({str(tmp_path / "c")!r}, token="wrong-token")
        open({str(tmp_path / "c" / "x.txt")!r}, "w").write("x")
        try:
            repo.push_to_hub("x")
        except OSError as error:
            print("ERROR:", error)
    """))
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, [str(script)], cwd=str(tmp_path), timeout=10,
                          encoding="utf-8", env=dict(os.environ))
    index = child.expect(["ERROR: authentication failed", "(?i)username", "(?i)password",
                          pexpect.EOF, pexpect.TIMEOUT])
    transcript = child.before + (child.after if isinstance(child.after, str) else "")
    child.expect(pexpect.EOF)
    assert index == 0, transcript
    assert time.monotonic() - started < 10
    assert "wrong-token" not in transcript + child.before
