"""Uploads and downloads against a real multipart HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lfs_agent import download, http
from lfs_agent.agent import journal_dirs
from lfs_agent.download import Downloader
from lfs_agent.errors import ActionError, TransferError
from lfs_agent.progress import Progress
from lfs_agent.protocol import MessageWriter
from lfs_agent.upload import (
    JOURNAL_MAX_AGE,
    Journal,
    Uploader,
    adopt_journal,
    plan_parts,
    prune_journals,
)
from tests.support.agent import PartServer

CHUNK = 64 * 1024
MiB = 1024**2


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_BASE", 0.001)


@pytest.fixture
def server():
    server = PartServer()
    yield server
    server.shutdown()


class Events:
    """A MessageWriter target we can read back: a real file descriptor."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.writer = MessageWriter(self.fd)

    def read(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def make_file(tmp_path: Path, size: int) -> tuple[str, str]:
    data = os.urandom(size)
    path = tmp_path / f"blob-{size}"
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def upload(
    server: PartServer,
    tmp_path: Path,
    size: int,
    chunk: int = CHUNK,
    concurrency: int = 4,
    journal_dir: str | None = None,
) -> tuple[str, Events]:
    path, oid = make_file(tmp_path, size)
    events = Events(tmp_path)
    request = {
        "event": "upload",
        "oid": oid,
        "size": size,
        "path": path,
        "action": server.action(size, chunk),
    }
    Uploader(concurrency, journal_dir).upload(request, Progress(events.writer, oid, size))
    return oid, events


@pytest.mark.parametrize("size", [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 10 * CHUNK + 7])
def test_multipart_upload_assembles_the_exact_object(server, tmp_path, size):
    oid, events = upload(server, tmp_path, size)
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    assert [p["partNumber"] for p in server.state.completions[0]["parts"]] == list(
        range(1, -(-size // CHUNK) + 1)
    )
    progress = [e["bytesSoFar"] for e in events.read()]
    assert progress == sorted(progress) and progress[-1] == size
    assert sum(e["bytesSinceLast"] for e in events.read()) == size


def test_every_part_has_a_content_length_and_no_chunked_encoding(server, tmp_path):
    upload(server, tmp_path, 5 * CHUNK + 3)
    for headers in server.state.headers_seen:
        assert "Content-Length" in headers and "Transfer-Encoding" not in headers
    assert sorted(int(h["Content-Length"]) for h in server.state.headers_seen) == [3] + [CHUNK] * 5


def test_parts_go_in_parallel_but_bounded(server, tmp_path):
    upload(server, tmp_path, 64 * CHUNK, concurrency=3)
    assert 1 < server.state.max_concurrent <= 3


def test_progress_starts_at_once_and_ticks_a_few_times_a_second(server, tmp_path):
    server.behaviour.slow_part = 1  # ~4 MB/s: the 8 MiB part takes about two seconds
    started = time.monotonic()
    size = 8 * MiB
    path, oid = make_file(tmp_path, size)
    events = Events(tmp_path)
    seen: list[float] = []

    class Timed(MessageWriter):
        def write(self, message: dict) -> None:
            seen.append(time.monotonic() - started)
            super().write(message)

    request = {"oid": oid, "size": size, "path": path, "action": server.action(size, size)}
    Uploader(2, None).upload(request, Progress(Timed(events.fd), oid, size))
    progress = [e["bytesSoFar"] for e in events.read()]
    # The first event follows the first small block, not the part: git-lfs holds its other
    # workers until it sees one.
    assert progress[0] == http.FIRST_BLOCK
    assert progress[-1] == size and progress == sorted(progress)
    assert 6 <= len(progress) <= 5 * (seen[-1] + 1)  # a few per second, not one per block
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(seen[1:-1]))


def test_failures_and_drops_are_retried_and_not_double_counted(server, tmp_path):
    server.behaviour.fail_every_nth_put = 3
    server.behaviour.drop_every_nth_put = 5
    size = 20 * CHUNK + 11
    oid, events = upload(server, tmp_path, size)
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    assert server.state.put_count > 21  # the 21 parts were not all sent only once: retries ran
    assert server.state.bytes_received > size  # and re-sent bytes that progress must not count
    progress = [e["bytesSoFar"] for e in events.read()]
    assert progress == sorted(progress) and progress[-1] == size
    assert sum(e["bytesSinceLast"] for e in events.read()) == size


def test_retry_after_is_honoured(server, tmp_path):
    server.behaviour.fail_every_nth_put = 2
    server.behaviour.retry_after = "0.3"
    started = time.monotonic()
    upload(server, tmp_path, 2 * CHUNK, concurrency=1)
    assert time.monotonic() - started >= 0.3


def test_a_4xx_fails_at_once_with_the_servers_message(server, tmp_path):
    server.behaviour.always_fail_part = 2
    server.behaviour.always_fail_status = 403
    with pytest.raises(TransferError, match="part 2: HTTP 403: part 2 refused") as caught:
        upload(server, tmp_path, 4 * CHUNK, concurrency=1)
    assert caught.value.code == 403
    assert server.state.put_count == 2  # no retry of a 403, and part 3 never started
    assert not server.state.objects


def test_a_failed_part_abandons_the_parts_still_on_the_wire(server, tmp_path):
    server.behaviour.always_fail_part = 1
    server.behaviour.always_fail_status = 403
    server.behaviour.slow_part = 2  # 64 MiB at ~4 MB/s would take 16 s
    with pytest.raises(TransferError, match="part 1: HTTP 403"):
        upload(server, tmp_path, 2 * 64 * MiB, chunk=64 * MiB, concurrency=2)
    # upload() returned with part 2 cut off: had it waited for part 2, all of it would be in.
    assert server.state.slow_part_bytes < 64 * MiB
    assert 2 not in server.state.parts


def test_a_part_that_keeps_failing_gives_up(server, tmp_path, monkeypatch):
    monkeypatch.setattr(http, "ATTEMPTS", 3)
    server.behaviour.always_fail_part = 1
    with pytest.raises(TransferError, match="gave up after 3 attempts"):
        upload(server, tmp_path, CHUNK, concurrency=1)


def test_no_chunk_size_is_a_single_put(server, tmp_path):
    path, oid = make_file(tmp_path, 1000)
    events = Events(tmp_path)
    request = {
        "oid": oid,
        "size": 1000,
        "path": path,
        "action": {"href": f"{server.url}/part/1", "header": {"X-Custom": "yes"}},
    }
    Uploader(2, None).upload(request, Progress(events.writer, oid, 1000))
    assert server.state.parts[1] == Path(path).read_bytes()
    assert server.state.headers_seen[0]["X-Custom"] == "yes"
    assert events.read()[-1]["bytesSoFar"] == 1000


def test_resume_journal_skips_finished_parts_and_is_removed(server, tmp_path):
    size = 6 * CHUNK
    path, oid = make_file(tmp_path, size)
    journal_dir = tmp_path / "lfs-tmp"
    journal_dir.mkdir()
    server.behaviour.always_fail_part = 4
    server.behaviour.always_fail_status = 400
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "path": path, "action": server.action(size, CHUNK)}
    with pytest.raises(TransferError):
        Uploader(1, str(journal_dir)).upload(request, Progress(events.writer, oid, size))
    assert sorted(Journal(str(journal_dir), oid, size, CHUNK).etags) == [1, 2, 3]
    server.behaviour.always_fail_part = None
    before = server.state.bytes_received
    Uploader(1, str(journal_dir)).upload(request, Progress(events.writer, oid, size))
    assert server.state.bytes_received - before == 3 * CHUNK
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    assert list(journal_dir.iterdir()) == []


def _aged(path: Path, seconds: float) -> Path:
    path.write_text("{}")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_pruning_deletes_only_journals_past_the_age_limit(tmp_path):
    old = _aged(tmp_path / "lfsrepo-multipart-aa.json", JOURNAL_MAX_AGE + 60)
    half_written = _aged(tmp_path / "lfsrepo-multipart-aa.json.123.tmp", JOURNAL_MAX_AGE + 60)
    young = _aged(tmp_path / "lfsrepo-multipart-bb.json", JOURNAL_MAX_AGE - 3600)
    unrelated = _aged(tmp_path / "someone-elses-file", JOURNAL_MAX_AGE * 2)
    Uploader(1, str(tmp_path))
    assert not old.exists() and not half_written.exists()
    assert young.exists() and unrelated.exists()
    assert prune_journals(str(tmp_path / "missing")) == []


def test_an_upload_resumes_from_a_journal_in_the_legacy_folder(server, tmp_path):
    size = 4 * CHUNK
    path, oid = make_file(tmp_path, size)
    legacy, current = tmp_path / "lfs-tmp", tmp_path / "multipart"
    legacy.mkdir()
    current.mkdir()
    server.behaviour.always_fail_part = 3
    server.behaviour.always_fail_status = 400
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "path": path, "action": server.action(size, CHUNK)}
    with pytest.raises(TransferError):  # the previous version journals parts 1 and 2 here
        Uploader(1, str(legacy)).upload(request, Progress(events.writer, oid, size))
    server.behaviour.always_fail_part = None
    before = server.state.bytes_received
    Uploader(1, str(current), legacy_journal_dir=str(legacy)).upload(
        request, Progress(events.writer, oid, size)
    )
    assert server.state.bytes_received - before == 2 * CHUNK
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    assert list(legacy.iterdir()) == [] and list(current.iterdir()) == []


def test_adopting_keeps_a_journal_already_in_the_new_folder(tmp_path):
    legacy, current = tmp_path / "legacy", tmp_path / "current"
    legacy.mkdir()
    current.mkdir()
    Journal(str(legacy), "ab", 10, 5).record(1, '"old"')
    Journal(str(current), "ab", 10, 5).record(2, '"new"')
    assert not adopt_journal(str(legacy), str(current), "ab")
    assert Journal(str(current), "ab", 10, 5).etags == {2: '"new"'}
    assert not adopt_journal(str(current), str(current), "ab")  # the same folder: nothing to do
    assert not adopt_journal(str(legacy), str(current), "cd")  # no journal for that object


def test_journals_live_in_the_common_git_dir_out_of_git_lfs_reach(tmp_path, monkeypatch):
    main, worktree = tmp_path / "main", tmp_path / "worktree"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    subprocess.run(["git", "-C", str(main), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run(
        ["git", "-C", str(main), "worktree", "add", "-q", "--detach", str(worktree)],
        check=True,
        capture_output=True,
    )
    git_dir = main.resolve() / ".git"
    for cwd in (main, worktree, worktree):  # the second call finds the folder already there
        assert journal_dirs(str(cwd)) == (
            str(git_dir / "lfsrepo" / "multipart"),
            str(git_dir / "lfs" / "tmp"),
        )
    assert (git_dir / "lfsrepo" / "multipart").is_dir()
    assert not (git_dir / "lfs" / "tmp").exists()  # uploads do not create git-lfs's folder
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert journal_dirs(str(outside)) == (tempfile.gettempdir(), None)  # as before: system temp


def test_a_corrupt_journal_is_ignored(server, tmp_path):
    size = 2 * CHUNK
    path, oid = make_file(tmp_path, size)
    (tmp_path / f"lfsrepo-multipart-{oid}.json").write_text('{"etags": [1, 2')
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "path": path, "action": server.action(size, CHUNK)}
    Uploader(2, str(tmp_path)).upload(request, Progress(events.writer, oid, size))
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    assert server.state.bytes_received == size


def test_a_stale_journal_falls_back_to_a_full_upload(server, tmp_path):
    size = 2 * CHUNK
    path, oid = make_file(tmp_path, size)
    Journal(str(tmp_path), oid, size, CHUNK).record(1, '"stale"')
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "path": path, "action": server.action(size, CHUNK)}
    Uploader(2, str(tmp_path)).upload(request, Progress(events.writer, oid, size))
    assert hashlib.sha256(server.state.objects[oid]).hexdigest() == oid
    # Part 2 first (part 1 trusted to the journal), then, once the completion is refused, both.
    assert len(server.state.completions) == 2
    assert server.state.bytes_received == 3 * CHUNK
    assert not (tmp_path / f"lfsrepo-multipart-{oid}.json").exists()
    progress = [e["bytesSoFar"] for e in events.read()]
    assert progress == sorted(progress) and progress[-1] == size


@pytest.mark.parametrize(
    ("header", "size", "message"),
    [
        ({"1": "http://s/1"}, 10, "chunk_size must be a decimal integer, got ''"),
        ({"chunk_size": "abc", "1": "http://s/1"}, 10, "chunk_size must be a decimal integer"),
        ({"chunk_size": "0", "1": "http://s/1"}, 10, "chunk_size must be positive"),
        ({"chunk_size": "-5", "1": "http://s/1"}, 10, "decimal integer"),
        (
            {"chunk_size": "4", "1": "http://s/1", "3": "http://s/3"},
            10,
            "needs parts 1..3; missing: 2",
        ),
        (
            {"chunk_size": "5", "1": "http://s/1", "2": "http://s/2", "3": "http://s/3"},
            10,
            "unexpected: 3",
        ),
        (
            {"chunk_size": "5", "1": "http://s/1", "0001": "http://s/1b"},
            5,
            "part 1 is listed twice",
        ),
        ({"chunk_size": "5", "1": "ftp://s/1"}, 5, "URL must be http"),
    ],
)
def test_bad_actions_say_exactly_what_is_wrong(header, size, message):
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace(".", r"\.")):
        plan_parts(size, header)


def test_parts_are_taken_in_numeric_order_not_json_order():
    plan = plan_parts(
        50,
        {"chunk_size": "5", **{str(n): f"http://x/{n}" for n in (10, 2, 9, 1, 3, 8, 4, 7, 5, 6)}},
    )
    assert [p.url for p in plan.parts] == [f"http://x/{n}" for n in range(1, 11)]
    assert plan.parts[-1].offset == 45 and plan.parts[-1].length == 5


def _stored(server: PartServer, tmp_path: Path, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    oid = hashlib.sha256(data).hexdigest()
    server.state.objects[oid] = data
    return oid, data


@pytest.mark.parametrize("honour_range", [True, False])
def test_download_with_ranges_or_without(server, tmp_path, monkeypatch, honour_range):
    monkeypatch.setattr(download, "MIN_RANGE", CHUNK)
    server.behaviour.honour_range = honour_range
    size = 9 * CHUNK + 5
    oid, data = _stored(server, tmp_path, size)
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "action": {"href": f"{server.url}/object/{oid}"}}
    path = Downloader(4, str(tmp_path / "tmp")).download(
        request, Progress(events.writer, oid, size)
    )
    assert Path(path).read_bytes() == data
    assert Path(path).parent == tmp_path / "tmp"
    assert events.read()[-1]["bytesSoFar"] == size
    # A one-byte probe, then ten ranges; or the probe and one plain GET.
    assert server.state.get_count == (1 + 10 if honour_range else 2)


def test_dropped_ranges_resume(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MIN_RANGE", CHUNK)
    server.behaviour.drop_every_nth_get = 3
    size = 12 * CHUNK
    oid, data = _stored(server, tmp_path, size)
    events = Events(tmp_path)
    request = {"oid": oid, "size": size, "action": {"href": f"{server.url}/object/{oid}"}}
    path = Downloader(4, str(tmp_path)).download(request, Progress(events.writer, oid, size))
    assert Path(path).read_bytes() == data
    progress = [e["bytesSoFar"] for e in events.read()]
    assert progress == sorted(progress) and progress[-1] == size
