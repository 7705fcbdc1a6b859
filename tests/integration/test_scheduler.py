"""CommitScheduler against the local server: idle ticks cost no git, ticks during a push merge,
appended lines are never committed torn, failed pushes are kept and retried, exit and SIGTERM
flush within the grace period."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from repository import (
    CommitScheduler,
    GitCommandError,
    PushRejectedError,
    Repository,
    RepositoryError,
)
from repository.testing import LocalGitServer
from tests.support.git import git
from tests.support.kill_loop import Job, tail
from tests.support.scheduler import (
    PushHook,
    count_git_commands,
    remote_commits,
    remote_file,
    remote_files,
    remote_head,
    remote_versions,
    wait_until,
)


def minutes(seconds: float) -> float:
    """``every`` is in minutes, as the Hub's; the tests think in seconds."""
    return seconds / 60


def clone_of(remote_repo, tmp_path: Path) -> Repository:
    return Repository(tmp_path / "clone", clone_from=remote_repo.url)


@pytest.mark.timeout(180)
def test_a_thousand_idle_ticks_run_no_git_and_make_no_commit(remote_repo, tmp_path, monkeypatch):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    for i in range(20):
        (folder / f"part-{i % 4}").mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i % 4}" / f"{i}.jsonl").write_text(f'{{"i": {i}}}\n')
    commands = count_git_commands(tmp_path / "bin", monkeypatch)
    scheduler = CommitScheduler(repo, folder, every=minutes(0.001))
    try:
        first = scheduler.trigger().result(timeout=60)
        assert first == remote_head(remote_repo.server, remote_repo.name)
        ran = commands.read_text().splitlines()
        assert any(line.startswith("push ") for line in ran), "the count misses git commands"
        start = scheduler.ticks
        wait_until(lambda: scheduler.ticks >= start + 1000, "1,000 ticks")

        assert commands.read_text().splitlines()[len(ran) :] == []
        assert remote_head(remote_repo.server, remote_repo.name) == first
        # The same ticks do see a change, so the silence above is not blindness.
        with scheduler.lock, open(folder / "part-1" / "5.jsonl", "a") as log:
            log.write('{"i": 5, "again": true}\n')
        second = scheduler.trigger().result(timeout=60)
    finally:
        scheduler.stop()
    assert second not in (None, first)
    assert remote_file(remote_repo.server, remote_repo.name, "part-1/5.jsonl") == (
        '{"i": 5}\n{"i": 5, "again": true}\n'
    )
    assert remote_commits(remote_repo.server, remote_repo.name) == ["Scheduled commit"] * 2


@pytest.mark.timeout(180)
def test_ticks_and_triggers_during_a_slow_push_merge_into_one_next_push(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    hook = PushHook.install(Path(repo.local_dir))
    hook.gate.unlink()  # pushes wait in the hook until the test lets them go
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.txt").write_text("one\n")
    every_s = 0.05
    scheduler = CommitScheduler(repo, folder, every=minutes(every_s))
    try:
        wait_until(lambda: len(hook.times()) == 1, "the first push reaching the hook")
        with scheduler.lock:
            (folder / "b.txt").write_text("two\n")
        triggers = [scheduler.trigger() for _ in range(3)]
        with scheduler.lock, open(folder / "a.txt", "a") as a:
            a.write("three\n")
        time.sleep(20 * every_s)  # twenty ticks fall due while the push is held
        assert len(hook.times()) == 1, "a second push started while the first ran"
        hook.gate.touch()
        results = {trigger.result(timeout=60) for trigger in triggers}
        pushed = scheduler.ticks
        wait_until(lambda: scheduler.ticks >= pushed + 10, "ten more ticks")
    finally:
        scheduler.stop()
    head = remote_head(remote_repo.server, remote_repo.name)
    assert results == {head}, "the triggers did not share the push that followed the slow one"
    assert len(hook.times()) == 2, "ticks and triggers during a push made more than one push"
    assert remote_commits(remote_repo.server, remote_repo.name) == ["Scheduled commit"] * 2
    assert remote_file(remote_repo.server, remote_repo.name, "a.txt") == "one\nthree\n"
    assert remote_file(remote_repo.server, remote_repo.name, "b.txt") == "two\n"


@pytest.mark.timeout(240)
def test_appended_lines_are_never_committed_torn(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    folder.mkdir()
    rng = random.Random(12)
    lines = [json.dumps({"i": i, "pad": "x" * rng.randrange(200)}) + "\n" for i in range(1500)]

    def write_lines() -> None:  # without the lock, each line in two writes, as buffering splits
        with open(folder / "run.jsonl", "w") as log:
            for line in lines:
                cut = rng.randrange(1, len(line))
                log.write(line[:cut])
                log.flush()
                time.sleep(0.001)
                log.write(line[cut:])
                log.flush()
                time.sleep(0.001)

    scheduler = CommitScheduler(repo, folder, every=minutes(0.2))
    writer = threading.Thread(target=write_lines)
    try:
        writer.start()
        writer.join()
    finally:
        scheduler.stop()

    versions = remote_versions(remote_repo.server, remote_repo.name, "run.jsonl")
    assert len(versions) >= 4, f"only {len(versions)} versions: the ticks never met the writer"
    whole = "".join(lines)
    for version in versions:
        count = version.count("\n")
        assert version == "".join(lines[:count]), (
            f"a committed version is not {count} whole lines: ends with {version[-80:]!r}"
        )
    assert versions[-1] == whole


@pytest.mark.timeout(180)
def test_a_failed_push_is_kept_retried_with_backoff_and_reported(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    hook = PushHook.install(Path(repo.local_dir))
    hook.refuse.touch()
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.txt").write_text("kept\n")
    every_s = 0.05
    scheduler = CommitScheduler(repo, folder, every=minutes(every_s))
    try:
        wait_until(lambda: len(hook.times()) >= 5, "five push attempts")
        assert isinstance(scheduler.last_error, GitCommandError)
        assert "refused by the test's hook" in str(scheduler.last_error)
        with pytest.raises(GitCommandError, match="refused by the test's hook"):
            scheduler.trigger().result(timeout=60)
        assert remote_head(remote_repo.server, remote_repo.name) is None
        kept = git(repo.local_dir, "show", "HEAD:a.txt").stdout
        attempts = hook.times()
        hook.refuse.unlink()
        wait_until(
            lambda: remote_head(remote_repo.server, remote_repo.name) is not None,
            "a later tick pushing the kept commit",
        )
        wait_until(lambda: scheduler.last_error is None, "the error cleared by the push")
    finally:
        scheduler.stop()
    assert kept == "kept\n"
    assert remote_file(remote_repo.server, remote_repo.name, "a.txt") == "kept\n"
    # Timer ticks retry after every, 2 x every, 4 x every...: each wait at least the last x 2.
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts[:4])]
    for n, gap in enumerate(gaps):
        assert gap >= every_s * 2**n, f"attempt {n + 2} came {gap:.3f} s after the one before"


def test_stop_raises_the_last_error_and_the_next_run_pushes_the_kept_commit(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    hook = PushHook.install(Path(repo.local_dir))
    hook.refuse.touch()
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "big.log").write_text("line\n" * 10_000)
    scheduler = CommitScheduler(repo, folder, every=minutes(60))
    with pytest.raises(GitCommandError, match="refused by the test's hook"):
        scheduler.stop()
    assert scheduler.stop() is None  # once stopped, stopping again does nothing
    with pytest.raises(RuntimeError, match="stopped"):
        scheduler.trigger()
    copy = Path(repo.local_dir) / "big.log"
    before = copy.stat()

    hook.refuse.unlink()
    with CommitScheduler(Repository(repo.local_dir), folder, every=minutes(60)) as again:
        pushed = again.trigger().result(timeout=60)
    assert pushed == remote_head(remote_repo.server, remote_repo.name) == repo.git_head_hash()
    assert remote_commits(remote_repo.server, remote_repo.name) == ["Scheduled commit"]
    after = copy.stat()
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns), (
        "the next run copied an unchanged file again"
    )


def test_patterns_path_in_repo_and_what_is_always_left_out(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "not" / "there" / "yet"
    files = {
        "a.txt": "a",
        "sub/b.txt": "b",
        "c.log": "c",
        "logs/d.txt": "d",
        ".git/e.txt": "e",
        "sub/.git": "gitdir: elsewhere",
        ".cache/huggingface/f.txt": "f",
        "sub/.cache/huggingface/g.txt": "g",
    }
    with (
        CommitScheduler(
            repo,
            folder,
            every=minutes(60),
            path_in_repo="/runs/1/",
            allow_patterns=["*.txt", "*.git"],
            ignore_patterns="logs/",
        ) as scheduler,
        scheduler.lock,
    ):
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    assert remote_files(remote_repo.server, remote_repo.name) == {
        "runs/1/a.txt",
        "runs/1/sub/b.txt",
    }


def test_a_file_that_cannot_be_copied_is_a_clear_error_and_loses_no_other_file(
    remote_repo, tmp_path
):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    (folder / "sub").mkdir(parents=True)
    names = [f"{i:02d}.txt" for i in range(12)]
    (Path(repo.local_dir) / "sub" / "blocked.txt").mkdir(parents=True)  # where its copy goes
    with CommitScheduler(repo, folder, every=minutes(60)) as scheduler:
        (folder / "first.txt").write_text("first\n")
        scheduler.trigger().result(timeout=60)
        with scheduler.lock:
            for name in [*names, "sub/blocked.txt"]:  # the walk takes sub/ after these
                (folder / name).write_text(f"{name}\n")
        with pytest.raises(RepositoryError, match=r"cannot copy .*blocked\.txt.*ignore_patterns"):
            scheduler.trigger().result(timeout=60)
        assert isinstance(scheduler.last_error, RepositoryError)
        (folder / "sub" / "blocked.txt").unlink()  # the user's fix: nothing else changes
        scheduler.trigger().result(timeout=60)
    assert remote_files(remote_repo.server, remote_repo.name) == {"first.txt", *names}


def test_bad_arguments_are_refused_with_what_to_do(remote_repo, tmp_path):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    with pytest.raises(TypeError, match="must be a Repository"):
        CommitScheduler("me/logs", folder)  # type: ignore[arg-type]  # the Hub's repo_id
    for every in (0, -1, float("inf"), float("nan"), "often"):
        with pytest.raises(ValueError, match="every must be a positive number of minutes"):
            CommitScheduler(repo, folder, every=every)  # type: ignore[arg-type]
    for path in ("../outside", "a/.git/b", "a\\b"):
        with pytest.raises(ValueError, match="path_in_repo must be a folder inside"):
            CommitScheduler(repo, folder, path_in_repo=path)
    with pytest.raises(ValueError, match="overlaps the clone"):
        CommitScheduler(repo, Path(repo.local_dir) / "logs")
    with pytest.raises(ValueError, match="overlaps the clone"):
        CommitScheduler(repo, tmp_path)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="must be a folder, not a file"):
        CommitScheduler(repo, tmp_path / "a-file")
    assert not folder.exists(), "a refused scheduler created its folder"


def test_the_remote_moved_on_other_files_are_kept_the_same_file_is_a_reported_conflict(
    remote_repo, tmp_path
):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "ours.txt").write_text("1\n")
    with CommitScheduler(repo, folder, every=minutes(60)) as scheduler:
        scheduler.trigger().result(timeout=60)
        other = Repository(tmp_path / "other", clone_from=remote_repo.url)
        with other.commit("someone else's file"):
            Path("theirs.txt").write_text("theirs\n")
        with scheduler.lock, open(folder / "ours.txt", "a") as ours:
            ours.write("2\n")
        rebased = scheduler.trigger().result(timeout=60)
        assert remote_files(remote_repo.server, remote_repo.name) == {"ours.txt", "theirs.txt"}
        assert rebased == remote_head(remote_repo.server, remote_repo.name)

        with other.commit("someone else's line in our file"):
            Path("ours.txt").write_text("1\n2\nnot ours\n")
        with scheduler.lock, open(folder / "ours.txt", "a") as ours:
            ours.write("3\n")
        with pytest.raises(PushRejectedError, match="rebasing onto it failed"):
            scheduler.trigger().result(timeout=60)
        assert isinstance(scheduler.last_error, PushRejectedError)
        # Resolved by hand, as the error says: the scheduler's folder wins.
        git(repo.local_dir, "pull", "--rebase", "-X", "theirs", "origin", "main")
        resolved = scheduler.trigger().result(timeout=60)
    assert resolved == remote_head(remote_repo.server, remote_repo.name)
    assert remote_file(remote_repo.server, remote_repo.name, "ours.txt") == "1\n2\n3\n"


# ----- exit and SIGTERM: a job's last data is pushed within the grace period -----------------

JOB_SCRIPT = """
import os, sys, time
from repository import CommitScheduler, Repository

url, clone, folder, how = sys.argv[1:5]
repo = Repository(clone, clone_from=url)
scheduler = CommitScheduler(repo, folder, every=60, path_in_repo="runs")
scheduler.trigger().result()  # the first tick is over: only a last flush can push what follows
with scheduler.lock, open(os.path.join(folder, "metrics.jsonl"), "a") as log:
    for step in range(100):
        log.write(f'{{"step": {step}}}\\n')
print("WRITTEN", flush=True)
if how == "sigterm":
    time.sleep(120)
elif how == "sigterm-holding-the-lock":  # the signal's handler runs in the lock's holder
    with scheduler.lock:
        time.sleep(120)
elif how == "stop":  # SIGTERM comes during the last push
    scheduler.stop()
if how != "exit":
    print("NOT STOPPED", flush=True)
"""
METRICS = "".join(f'{{"step": {step}}}\n' for step in range(100))


def start_job(tmp_path: Path, url: str, how: str, grace: str, hold_pushes: bool = False) -> Job:
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    env = {**os.environ, "LFSREPO_TERM_GRACE": grace}
    job = Job(
        [sys.executable, str(script), url, str(tmp_path / "clone"), str(tmp_path / "logs"), how],
        token=f"scheduler-{uuid.uuid4().hex}",
        out=tmp_path / "job.out",
        err=tmp_path / "job.err",
        env=env,
        cwd=tmp_path,
    )
    job.__enter__()
    wait_until(
        lambda: "WRITTEN" in job.output()[0] or job.process.poll() is not None,
        "the job writing its metrics",
        timeout=60,
    )
    assert "WRITTEN" in job.output()[0], f"the job failed:\n{tail(job.output()[1])}"
    return job


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigterm", "sigterm-holding-the-lock"])
def test_sigterm_makes_a_last_commit_and_push_then_ends_as_sigterm_does(remote_repo, tmp_path, how):
    job = start_job(tmp_path, remote_repo.url, how, grace="60")
    try:
        os.kill(job.pid, signal.SIGTERM)
        status = job.wait(timeout=90)
        out, err = job.output()
    finally:
        job.kill()
    assert status == -signal.SIGTERM, f"exit status {status}\n{tail(err)}"
    assert "NOT STOPPED" not in out
    assert "Traceback" not in err, err
    assert remote_file(remote_repo.server, remote_repo.name, "runs/metrics.jsonl") == METRICS


@pytest.mark.timeout(120)
def test_interpreter_exit_makes_a_last_commit_and_push(remote_repo, tmp_path):
    job = start_job(tmp_path, remote_repo.url, "exit", grace="60")
    try:
        status = job.wait(timeout=90)
        _, err = job.output()
    finally:
        job.kill()
    assert status == 0, f"exit status {status}\n{tail(err)}"
    assert "Traceback" not in err, err
    assert remote_file(remote_repo.server, remote_repo.name, "runs/metrics.jsonl") == METRICS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigterm", "stop"])
def test_sigterm_stops_a_last_push_that_outlasts_the_grace_period(tmp_path, how):
    with LocalGitServer(tmp_path / "server") as server:
        url = server.create_repo("ns/held", files={"README.md": b"held\n"})
        clone = tmp_path / "clone"
        Repository(clone, clone_from=url)
        hook = PushHook.install(clone)
        hook.gate.unlink()  # every push waits in the hook forever
        job = start_job(tmp_path, url, how, grace="1")
        try:
            if how == "stop":
                wait_until(lambda: len(hook.times()) == 1, "stop()'s push reaching the hook")
            signalled = time.monotonic()
            os.kill(job.pid, signal.SIGTERM)
            status = job.wait(timeout=60)
            waited = time.monotonic() - signalled
            _, err = job.output()
            wait_until(lambda: not job.members(), "the job's processes ending", timeout=10)
        finally:
            job.kill()
        assert status == -signal.SIGTERM, f"exit status {status}\n{tail(err)}"
        assert waited >= 0.9, f"it waited {waited:.2f} s, not the grace period of 1 s"
        assert len(hook.times()) == 1, "the last push never started"
        assert "push" in err and "to origin main" in err, f"stderr does not name the push:\n{err}"
        assert "at the end of the 1 s grace period" in err, f"stderr does not say why:\n{err}"
        assert "runs/metrics.jsonl" not in remote_files(server, "ns/held")


def test_a_scheduler_in_a_with_block_pushes_on_exit_even_when_the_block_raises(
    remote_repo, tmp_path
):
    repo = clone_of(remote_repo, tmp_path)
    folder = tmp_path / "logs"
    with pytest.raises(KeyError), CommitScheduler(repo, folder, every=minutes(60)) as scheduler:
        with scheduler.lock:
            (folder / "before-the-error.txt").write_text("kept\n")
        raise KeyError("the block's own error")
    assert remote_file(remote_repo.server, remote_repo.name, "before-the-error.txt") == "kept\n"
