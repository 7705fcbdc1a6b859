"""Tokens: used for git and git-lfs alike, never on disk, in argv or in messages; never a prompt."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
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


WORKFLOW = """
import logging, os, sys
from repository import Repository
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
url, clone = sys.argv[1:3]
repo = Repository(clone, clone_from=url, token=True)  # LFSREPO_TOKEN: never in any argv
with repo.commit("blocking"):
    open("weights.bin", "wb").write(os.urandom(3_000_000))
with repo.commit("queued", blocking=False):
    open("more.bin", "wb").write(os.urandom(200_000))
repo.wait_for_commands()
repo.add_tag("v1", message="first", remote="origin")
print("tag on remote:", repo.tag_exists("v1", remote="origin"))
repo.git_pull(rebase=True)
repo.lfs_prune()
for command in repo.command_queue:
    print("command:", command, command.status, command.stdout, command.stderr)
os.environ["LFSREPO_TOKEN"] = "wrong-" + os.environ["LFSREPO_TOKEN"]
try:
    Repository(clone, token=True).git_push()
except OSError as error:
    print("expected error:", error)
"""


@pytest.mark.parametrize("action_authorization", [False, True])
def test_the_token_reaches_its_origin_only_never_disk_argv_logs_or_messages(
    tmp_path, action_authorization
):
    """The whole workflow under strace, which sees every program git and git-lfs start."""
    with LocalGitServer(
        token=TOKEN, separate_storage=True, action_authorization=action_authorization
    ) as server:
        url = server.create_repo("auth/leak", files={"seed.bin": os.urandom(5000)})
        script = tmp_path / "workflow.py"
        script.write_text(WORKFLOW)
        trace = tmp_path / "execve.trace"
        result = subprocess.run(
            [
                "strace",
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-e",
                "trace=execve",
                "-s",
                "65536",
                "-o",
                str(trace),
                sys.executable,
                str(script),
                url,
                str(tmp_path / "clone"),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env={**os.environ, "LFSREPO_TOKEN": TOKEN, "GIT_TRACE": "1"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "tag on remote: True" in result.stdout
        assert "expected error: authentication failed" in result.stdout
        execs = trace.read_text(errors="replace")
        trace.unlink()
        # The trace saw git's whole process tree, so a token in any argv could not hide.
        assert all(name in execs for name in ("git-remote-http", "git-lfs", "credential"))
        for secret in (TOKEN, base64.b64encode(f"user:{TOKEN}".encode()).decode()):
            assert secret not in execs
            assert secret not in result.stdout + result.stderr
        assert files_containing(tmp_path, TOKEN.encode()) == []
        assert files_containing(Path(os.environ["HOME"]), TOKEN.encode()) == []
        storage = server.storage_requests
    assert {r.method for r in storage} >= {"PUT", "GET"}  # objects did go through storage
    for request in storage:
        if action_authorization:  # the server's own header, never ours, never doubled
            assert request.authorization.startswith("Bearer lfsrepo-action-"), request
            assert "," not in request.authorization
        else:
            assert request.authorization is None, request


def test_token_in_clone_url_is_taken_out(token_server, tmp_path):
    url = token_server.create_repo("auth/in-url", files={"a.txt": b"a"})
    with pytest.warns(UserWarning, match="held a token"):
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


@pytest.mark.timeout(60)  # "fast": an error, not a prompt or a retry loop that never ends
@pytest.mark.parametrize("token", ["wrong-token-123", None])
def test_wrong_or_missing_token_fails_fast_and_redacted(token_server, tmp_path, token):
    url = token_server.create_repo(f"auth/bad-{token}", files={"a.txt": b"a"})
    repo = Repository(tmp_path / "c", clone_from=url, token=TOKEN)
    bad = Repository(tmp_path / "c", token=token)
    (tmp_path / "c" / "w.bin").write_bytes(os.urandom(1000))
    with pytest.raises(AuthenticationError) as caught:
        bad.push_to_hub("should not land")
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
    script.write_text(
        textwrap.dedent(f"""
        from repository import Repository
        repo = Repository({str(tmp_path / "c")!r}, token="wrong-token")
        open({str(tmp_path / "c" / "x.txt")!r}, "w").write("x")
        try:
            repo.push_to_hub("x")
        except OSError as error:
            print("ERROR:", error)
    """)
    )
    child = pexpect.spawn(
        sys.executable,
        [str(script)],
        cwd=str(tmp_path),
        timeout=10,
        encoding="utf-8",
        env=dict(os.environ),
    )
    index = child.expect(
        [
            "ERROR: authentication failed",
            "(?i)username",
            "(?i)password",
            pexpect.EOF,
            pexpect.TIMEOUT,
        ]
    )
    transcript = child.before + (child.after if isinstance(child.after, str) else "")
    child.expect(pexpect.EOF)
    assert index == 0, transcript
    assert "wrong-token" not in transcript + child.before
