"""The multipart resume journal through real git-lfs: where it lives, how old it may get, upgrades.

git-lfs deletes whatever in ``.git/lfs/tmp`` is older than an hour each time it runs (``git push``'s
pre-push hook included), so the agent keeps its journals in ``.git/lfsrepo/multipart/`` instead.
Every push here is interrupted the same deterministic way: one part in flight at a time, every third
part PUT fails once and for all, so parts 1 and 2 are journalled and part 3 is sent but refused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lfs_agent.upload import JOURNAL_MAX_AGE
from repository.testing import Faults, LocalGitServer
from tests.support.agent import agent_clone, commit, git, server_sha256

MiB = 1024**2
CHUNK = 5 * MiB
SIZE = 6 * CHUNK + 123  # 7 parts, the last one short
HOUR = 3600


@pytest.fixture(scope="module")
def server():
    with LocalGitServer(multipart_threshold=8 * MiB, chunk_size=CHUNK) as server:
        yield server


@pytest.fixture
def clone(server, tmp_path, request):
    return agent_clone(server, tmp_path, request.node.name)


def journal_path(clone: Path, oid: str) -> Path:
    return clone / ".git" / "lfsrepo" / "multipart" / f"lfsrepo-multipart-{oid}.json"


def legacy_path(clone: Path, oid: str) -> Path:
    return clone / ".git" / "lfs" / "tmp" / f"lfsrepo-multipart-{oid}.json"


def failing_push(server: LocalGitServer, clone: Path, fail_every_nth_part: int) -> None:
    """Push with one part in flight and one attempt per part; every Nth part PUT fails."""
    server.faults = Faults(fail_every_nth_part=fail_every_nth_part)
    result = git(
        clone,
        "push",
        "-q",
        "origin",
        "main",
        check=False,
        env={"LFSREPO_AGENT_CONCURRENCY": "1", "LFSREPO_AGENT_ATTEMPTS": "1"},
    )
    server.faults = Faults()
    assert result.returncode != 0, "the push was meant to fail"
    assert "injected failure of part" in result.stdout + result.stderr


def interrupted_push(server: LocalGitServer, clone: Path, oid: str) -> None:
    """A push that stops after parts 1 and 2 landed (part 3 was sent and refused)."""
    failing_push(server, clone, fail_every_nth_part=3)
    assert server.bytes_received(oid) == 3 * CHUNK
    assert server.lfs_object_path(oid) is None


def etags(journal: Path) -> list[int]:
    return sorted(int(n) for n in json.loads(journal.read_text())["etags"])


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def push_and_measure(server: LocalGitServer, clone: Path, oid: str) -> int:
    """Push for real; check the object landed intact and return the bytes this push sent for it."""
    before = server.bytes_received(oid)
    git(clone, "push", "-q", "origin", "main")
    assert server_sha256(server, oid) == oid
    return server.bytes_received(oid) - before


def test_a_journal_aged_past_an_hour_still_resumes(server, clone):
    oid = commit(clone, {"resume.bin": SIZE})["resume.bin"]
    interrupted_push(server, clone, oid)
    journal = journal_path(clone, oid)
    assert etags(journal) == [1, 2]
    assert not list(legacy_path(clone, oid).parent.glob("lfsrepo-multipart-*"))

    age(journal, 2 * HOUR)
    # What deletes a 2-hour-old file from .git/lfs/tmp (git push's own pre-push hook does too).
    git(clone, "lfs", "fetch")
    git(clone, "lfs", "prune")
    assert etags(journal) == [1, 2]

    # Parts 1 and 2 are not sent again: only parts 3..7.
    assert push_and_measure(server, clone, oid) == SIZE - 2 * CHUNK
    assert not journal.exists()


def test_a_journal_older_than_the_limit_is_dropped_and_everything_is_sent(server, clone):
    assert JOURNAL_MAX_AGE == 7 * 24 * HOUR
    oid = commit(clone, {"stale.bin": SIZE})["stale.bin"]
    interrupted_push(server, clone, oid)
    journal = journal_path(clone, oid)
    assert etags(journal) == [1, 2]
    age(journal, JOURNAL_MAX_AGE + HOUR)
    # Journals of other uploads: one past the limit goes, a younger one stays.
    other_stale, other_young = (journal.with_name(f"lfsrepo-multipart-{c * 64}.json") for c in "ab")
    for other, seconds in ((other_stale, JOURNAL_MAX_AGE + HOUR), (other_young, 6 * 24 * HOUR)):
        other.write_text(
            json.dumps({"oid": other.stem[-64:], "size": 1, "chunk_size": 1, "etags": {"1": '"x"'}})
        )
        age(other, seconds)

    assert push_and_measure(server, clone, oid) == SIZE
    assert not journal.exists()
    assert not other_stale.exists()
    assert other_young.exists()


def test_a_journal_left_in_lfs_tmp_by_the_previous_version_is_picked_up(server, clone):
    oid = commit(clone, {"upgrade.bin": SIZE})["upgrade.bin"]
    interrupted_push(server, clone, oid)
    journal, legacy = journal_path(clone, oid), legacy_path(clone, oid)
    # Where the previous version of the agent kept it.
    source = next(path for path in (journal, legacy) if path.exists())
    legacy.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, legacy)
    assert etags(legacy) == [1, 2]

    # The next run moves it out of git-lfs's reach (and resumes: part 3 is the first one tried).
    failing_push(server, clone, fail_every_nth_part=1)
    assert server.bytes_received(oid) == 4 * CHUNK
    assert not legacy.exists()
    assert etags(journal) == [1, 2]

    age(journal, 2 * HOUR)
    git(clone, "lfs", "fetch")
    assert push_and_measure(server, clone, oid) == SIZE - 2 * CHUNK
    assert not journal.exists()
