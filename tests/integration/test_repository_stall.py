"""A server that stops answering makes a command fail with a clear error instead of hanging."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from repository import Repository, RepositoryError
from repository.git import STALLED_TRANSFER_TIMEOUT_S, GitRunner


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listener that accepts connections and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/ns/stalled.git"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.timeout(60)
def test_clone_from_a_stalled_server_fails_clearly_instead_of_hanging(
    silent_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("GIT_HTTP_LOW_SPEED_TIME", "2")  # the user's own setting wins
    with pytest.raises(RepositoryError) as raised:  # the stall limit, not a hang (timeout below)
        Repository(tmp_path / "clone", clone_from=silent_server, token="tok-stall-secret")
    assert "too slow" in str(raised.value)
    assert "tok-stall-secret" not in str(raised.value)


def test_every_git_command_gets_a_stall_limit_unless_the_user_set_one(monkeypatch):
    monkeypatch.delenv("GIT_HTTP_LOW_SPEED_LIMIT", raising=False)
    monkeypatch.delenv("GIT_HTTP_LOW_SPEED_TIME", raising=False)
    env = GitRunner(".").environment()
    assert env["GIT_HTTP_LOW_SPEED_LIMIT"] == "1"
    assert env["GIT_HTTP_LOW_SPEED_TIME"] == str(STALLED_TRANSFER_TIMEOUT_S)
    monkeypatch.setenv("GIT_HTTP_LOW_SPEED_TIME", "600")
    assert GitRunner(".").environment()["GIT_HTTP_LOW_SPEED_TIME"] == "600"
