"""Pure logic of the Repository package: parsing, escaping, classification, credentials, queue."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repository import commands as commands_module
from repository.auth import resolve_token
from repository.commands import CommandQueue, wait_for_all_commands
from repository.errors import (
    AuthenticationError,
    GitCommandError,
    PushRejectedError,
    RepositoryError,
)
from repository.git import GitRunner, classify_failure
from repository.helpers import normalize_remote_url
from repository.lfs import (
    add_lfs_lines,
    escape_pattern,
    is_binary_bytes,
    really_modified,
    remove_lfs_lines,
)
from repository.progress import parse_progress_line

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=30,
).filter(lambda n: n not in (".", "..") and n.strip() == n and n.strip())


@given(name=names, done=st.integers(0, 10**12), total=st.integers(0, 10**12))
def test_progress_lines_keep_names_with_spaces(name, done, total):
    line = parse_progress_line(f"upload 3/7 {done}/{total} {name}\n")
    assert line is not None
    assert (line.name, line.bytes_so_far, line.total_bytes, line.file_number) == (
        name,
        done,
        total,
        3,
    )


def test_malformed_progress_lines_are_ignored():
    assert parse_progress_line("upload 1/x 1/2 a") is None
    assert parse_progress_line("") is None


@settings(max_examples=60, deadline=None)
@given(name=names)
def test_escaped_pattern_matches_exactly_that_file(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("attr")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    gitattributes = str(root / ".gitattributes")
    assert add_lfs_lines(gitattributes, [name]) == [name]
    runner = GitRunner(root)
    payload = f"{name}\0decoy-{name}\0".encode()
    output = runner.run(["check-attr", "-z", "--stdin", "filter"], input=payload).stdout
    fields = output.split("\0")
    assert fields[2] == "lfs" and fields[5] == "unspecified", (name, output)
    assert remove_lfs_lines(gitattributes, [name]) == [name]
    assert Path(gitattributes).read_text() == ""


def test_more_paths_than_one_command_line_holds_are_asked_about_in_batches(tmp_path):
    runner = GitRunner(tmp_path)
    runner.run(["init", "-q"])
    (tmp_path / "real.bin").write_bytes(b"one")
    runner.run(["add", "real.bin"])
    runner.run(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"])
    (tmp_path / "real.bin").write_bytes(b"two")
    # 4 MB of paths: twice what Linux lets one command line carry in all.
    made_up = [f"{'d' * 200}/{n:06d}.bin" for n in range(20_000)]
    assert really_modified(runner, [*made_up, "real.bin"]) == {"real.bin"}
    assert really_modified(runner, []) == set()


def test_escape_anchors_at_the_root():
    assert escape_pattern("a.bin") == "/a.bin"
    assert escape_pattern("#x!") == "/\\#x\\!"


def test_binary_sniffing():
    assert is_binary_bytes(b"\x00")
    assert not is_binary_bytes("text with ünïcode\n\t".encode())
    assert is_binary_bytes(b"\x7f")


def test_resolve_token(monkeypatch, tmp_path):
    for name in ("LFSREPO_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert resolve_token(True) is None
    (tmp_path / "token").write_text("from-hf-auth-login\n")  # where `hf auth login` saves it
    assert resolve_token(True) == "from-hf-auth-login"
    monkeypatch.setenv("HF_TOKEN", "from-hf")
    assert resolve_token(True) == "from-hf"
    monkeypatch.setenv("LFSREPO_TOKEN", "from-lfsrepo")
    assert resolve_token(True) == "from-lfsrepo"
    with pytest.raises(TypeError):
        resolve_token(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", ["abc", "-1", "2 "])
def test_a_malformed_git_config_count_is_a_clear_error(monkeypatch, count):
    monkeypatch.setenv("GIT_CONFIG_COUNT", count)
    with pytest.raises(RepositoryError) as raised:
        GitRunner("/tmp").run(["--version"])
    message = str(raised.value)
    assert "GIT_CONFIG_COUNT is malformed" in message and repr(count) in message
    assert "unset it" in message and "non-negative integer" in message


def test_config_entries_from_the_environment_are_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.fromenv")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "kept")
    runner = GitRunner(tmp_path)
    assert runner.run(["config", "user.fromenv"]).stdout == "kept\n"
    assert runner.run(["config", "core.quotePath"]).stdout == "false\n"


def test_failures_are_classified():
    assert isinstance(
        classify_failure(["git", "push"], 128, "", "fatal: Authentication failed"),
        AuthenticationError,
    )
    assert isinstance(
        classify_failure(["git", "push"], 1, "", " ! [rejected] (fetch first)"), PushRejectedError
    )
    error = classify_failure(["git", "status"], 1, "", "boom")
    assert type(error) is GitCommandError and "`git status`" in str(error) and "boom" in str(error)
    assert isinstance(error, OSError)


def test_normalize_remote_url():
    assert normalize_remote_url("https://u:t@h/ns/r.git") == normalize_remote_url("https://h/ns/r/")


def test_queue_runs_in_order_one_at_a_time():
    queue = CommandQueue("unit")
    running = threading.Lock()
    order: list[int] = []

    def job(index: int):
        def run(command) -> int:
            assert running.acquire(blocking=False), "two commands ran at once"
            order.append(index)
            running.release()
            return index % 2

        return run

    commands = [queue.submit(f"job {i}", job(i)) for i in range(20)]
    assert queue.wait(timeout=10)
    assert order == list(range(20))
    assert [c.status for c in commands] == [i % 2 for i in range(20)]
    assert [c.failed for c in commands] == [bool(i % 2) for i in range(20)]


def test_queue_records_exceptions_as_failures():
    command = CommandQueue("unit").submit("boom", lambda cmd: 1 // 0)
    assert command.wait(5) and command.status == 1 and command.failed
    assert "ZeroDivisionError" in command.stderr
    assert isinstance(command.error, ZeroDivisionError)


def test_repr_tells_queued_running_and_finished_apart():
    queue = CommandQueue("unit")
    release = threading.Event()

    def blocked(command) -> int:
        return command.run_process(
            lambda: subprocess.Popen(
                ["sleep", "30"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            ),
            str,
        )

    first = queue.submit("push", blocked)
    second = queue.submit("push", lambda command: int(not release.wait(10)))
    deadline = time.monotonic() + 10
    while first.process is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert repr(first) == (
            f"[push command, status code: running, in progress. PID: {first.process.pid}]"
        )
        assert repr(second) == "[push command, status code: running, queued.]"
    finally:
        first.terminate()
        release.set()
    assert queue.wait(timeout=10)
    assert repr(second) == "[push command, status code: 0, finished.]"
    assert repr(first).startswith("[push command, status code: ")
    assert repr(first).endswith(f"finished. PID: {first.process.pid}]")


def test_waiting_for_all_clones_shares_one_deadline():
    def sleep_job(seconds: float):
        def run(command) -> int:
            return command.run_process(
                lambda: subprocess.Popen(
                    ["sleep", str(seconds)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                ),
                str,
            )

        return run

    queues = [CommandQueue(f"clone {i}") for i in range(2)]
    # Clones are waited for in the order of this set; the first one waited for must finish late
    # but in time, or the wait would stop at its failure and never reach the second clone.
    first, second = [queue for queue in list(commands_module._ALL_QUEUES) if queue in queues]
    commands = [first.submit("push", sleep_job(1.5)), second.submit("push", sleep_job(30))]
    try:
        deadline = time.monotonic() + 5
        while any(c.process is None for c in commands) and time.monotonic() < deadline:
            time.sleep(0.01)
        budgets: list[float | None] = []
        waited_second = second.wait
        second.wait = lambda timeout=None: budgets.append(timeout) or waited_second(timeout)
        assert wait_for_all_commands(timeout=2, announce=False) is False
        # One 2 s deadline for both clones: the second gets what the first (1.5 s) left, not 2 s.
        assert budgets[0] is not None and budgets[0] < 1.0
        # What did not finish in time is stopped, not left running behind the interpreter.
        assert commands[0].status == 0 and commands[1].wait(1) and commands[1].failed
    finally:
        for command in commands:
            command.terminate()
        assert all(command.wait(5) for command in commands)


def test_the_legacy_public_api_is_all_there():
    import repository
    from repository import Repository

    for name in (
        "current_branch",
        "check_git_versions",
        "clone_from",
        "git_config_username_and_email",
        "git_credential_helper_store",
        "git_head_hash",
        "git_remote_url",
        "git_head_commit_url",
        "list_deleted_files",
        "lfs_track",
        "lfs_untrack",
        "lfs_enable_largefiles",
        "auto_track_large_files",
        "auto_track_binary_files",
        "lfs_prune",
        "git_pull",
        "git_add",
        "git_commit",
        "git_push",
        "git_checkout",
        "tag_exists",
        "add_tag",
        "delete_tag",
        "is_repo_clean",
        "push_to_hub",
        "push",
        "commit",
        "command_queue",
        "commands_failed",
        "commands_in_progress",
        "wait_for_commands",
    ):
        assert hasattr(Repository, name), name
    for name in (
        "is_git_repo",
        "is_local_clone",
        "is_tracked_with_lfs",
        "is_git_ignored",
        "is_binary_file",
        "files_to_be_staged",
        "is_tracked_upstream",
        "commits_to_push",
    ):
        assert callable(getattr(repository, name)), name
    assert issubclass(repository.RepositoryError, OSError)


def test_a_command_whose_worker_cannot_start_is_not_left_queued(monkeypatch):
    queue = CommandQueue("no-threads")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError):
        queue.submit("push", lambda command: 0)
    assert queue.commands == [] and queue.in_progress() == []
    assert queue.wait(timeout=0)  # an exit waiting for it would not hang
