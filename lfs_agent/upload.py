"""Uploads: the multipart plan, parallel part PUTs from file slices, a resume journal, completion.

Example:
    >>> plan = plan_parts(12, {"chunk_size": "5", "00002": "http://s/2", "00001": "http://s/1",
    ...                        "00003": "http://s/3"})
    >>> [(p.number, p.offset, p.length) for p in plan.parts]
    [(1, 0, 5), (2, 5, 5), (3, 10, 2)]
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from lfs_agent import log
from lfs_agent.errors import ActionError, Cancelled, TransferError
from lfs_agent.http import TIMEOUT, FileSlice, new_session, run_parallel, with_retries
from lfs_agent.progress import Progress

COMPLETION_TIMEOUT = (10.0, 900.0)  # the server assembles and hashes the whole object
# Part URLs expire in hours, and stores abort unfinished uploads within days: older ETags fail.
JOURNAL_MAX_AGE = 7 * 24 * 3600.0
JOURNAL_PREFIX = "lfsrepo-multipart-"


@dataclass(frozen=True)
class Part:
    """One part: its 1-based number, presigned URL and byte range in the file."""

    number: int
    url: str
    offset: int
    length: int


@dataclass(frozen=True)
class Plan:
    """A validated multipart upload: chunk size and parts in numeric order."""

    chunk_size: int
    parts: tuple[Part, ...]


def plan_parts(size: int, header: dict[str, str]) -> Plan:
    """Validate a multipart action's header and return the parts in numeric order.

    Raises ActionError naming exactly what is wrong (bad chunk_size, missing, extra or duplicate
    part numbers, URLs that are not http(s)).

    Example:
        >>> plan_parts(10, {"chunk_size": "5", "1": "http://s/1"})
        Traceback (most recent call last):
        lfs_agent.errors.ActionError: a 10-byte object in 5-byte chunks needs parts 1..2; missing: 2
    """
    raw = header.get("chunk_size", "")
    if not (isinstance(raw, str) and raw.strip().isdigit() and raw.strip().isascii()):
        raise ActionError(f"chunk_size must be a decimal integer, got {raw!r}")
    chunk_size = int(raw)
    if chunk_size <= 0:
        raise ActionError(f"chunk_size must be positive, got {chunk_size}")
    count = max(1, -(-size // chunk_size))
    urls: dict[int, str] = {}
    for key, url in header.items():
        if key == "chunk_size" or not (key.isdigit() and key.isascii()):
            continue
        number = int(key)
        if number in urls:
            raise ActionError(f"part {number} is listed twice")
        if not url.startswith(("http://", "https://")):
            raise ActionError(f"part {number}: URL must be http(s), got {log.redact(url)[:80]!r}")
        urls[number] = url
    missing = sorted(set(range(1, count + 1)) - urls.keys())
    extra = sorted(urls.keys() - set(range(1, count + 1)))
    if missing or extra:
        problems = []
        if missing:
            problems.append("missing: " + _numbers(missing))
        if extra:
            problems.append("unexpected: " + _numbers(extra))
        raise ActionError(
            f"a {size}-byte object in {chunk_size}-byte chunks needs parts "
            f"1..{count}; {'; '.join(problems)}"
        )
    parts = tuple(
        Part(n, urls[n], (n - 1) * chunk_size, min(chunk_size, size - (n - 1) * chunk_size))
        for n in range(1, count + 1)
    )
    return Plan(chunk_size, parts)


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


class Journal:
    """Completed parts and their ETags, saved after each part so a rerun skips them.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> j = Journal(d, "ab", size=10, chunk_size=5); j.record(1, '"e1"')
        >>> Journal(d, "ab", size=10, chunk_size=5).etags
        {1: '"e1"'}
    """

    def __init__(self, directory: str | None, oid: str, size: int, chunk_size: int) -> None:
        self.path = os.path.join(directory, journal_name(oid)) if directory else None
        self._key = {"oid": oid, "size": size, "chunk_size": chunk_size}
        self._lock = threading.Lock()
        self.etags: dict[int, str] = {}
        if self.path is None:
            return
        try:
            with open(self.path, encoding="utf-8") as journal_file:
                saved = json.load(journal_file)
            if all(saved.get(k) == v for k, v in self._key.items()):
                self.etags = {int(n): str(e) for n, e in saved["etags"].items()}
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            pass  # no journal, or one we cannot trust: upload everything

    def record(self, number: int, etag: str) -> None:
        """Save one more completed part (atomically: a kill mid-write leaves the old journal)."""
        with self._lock:
            self.etags[number] = etag
            if self.path is None:
                return
            temporary = f"{self.path}.{threading.get_ident()}.tmp"
            try:
                with open(temporary, "w", encoding="utf-8") as journal_file:
                    json.dump({**self._key, "etags": self.etags}, journal_file)
                os.replace(temporary, self.path)
            except OSError as error:
                log.debug(f"journal not saved: {error}")

    def remove(self) -> None:
        """Forget the upload (it completed, or its ETags turned out stale)."""
        with self._lock:
            self.etags = {}
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)


def journal_name(oid: str) -> str:
    """The file name of ``oid``'s journal (the same in every folder that has held journals)."""
    return f"{JOURNAL_PREFIX}{oid}.json"


def prune_journals(
    directory: str, max_age: float = JOURNAL_MAX_AGE, now: float | None = None
) -> list[str]:
    """Delete the journals in ``directory`` last written over ``max_age`` seconds ago.

    Only files named like journals (and their half-written temporaries) are touched, so this is
    safe in a shared temp dir. Returns the names deleted.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp(); Journal(d, "ab", 10, 5).record(1, '"e1"')
        >>> prune_journals(d, now=time.time() + JOURNAL_MAX_AGE + 1)
        ['lfsrepo-multipart-ab.json']
    """
    limit = (time.time() if now is None else now) - max_age
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(JOURNAL_PREFIX):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass  # gone already (another agent process pruned it), or not ours to delete
    return sorted(removed)


def adopt_journal(legacy_dir: str, directory: str, oid: str) -> bool:
    """Move ``oid``'s journal from where an earlier version kept it into ``directory``.

    Keeps a journal already in ``directory``. Returns whether one was moved.

    Example:
        >>> import tempfile; old, new = tempfile.mkdtemp(), tempfile.mkdtemp()
        >>> Journal(old, "ab", 10, 5).record(1, '"e1"')
        >>> adopt_journal(old, new, "ab"), Journal(new, "ab", 10, 5).etags
        (True, {1: '"e1"'})
    """
    source = os.path.join(legacy_dir, journal_name(oid))
    target = os.path.join(directory, journal_name(oid))
    if not os.path.isfile(source) or os.path.lexists(target):  # nothing to move, or same folder
        return False
    try:
        shutil.move(source, target)
    except OSError as error:
        log.debug(f"journal in {legacy_dir} not moved: {error}")
        return False
    log.debug(f"moved the journal of {oid} out of {legacy_dir}")
    return True


class Uploader:
    """Uploads objects for one agent process, sharing a connection pool between them.

    Resume journals go to ``journal_dir`` (None: keep none); journals there older than
    JOURNAL_MAX_AGE are deleted on creation. A journal for the object being uploaded that is
    found in ``legacy_journal_dir`` (where an earlier version kept them) is moved over first.
    """

    def __init__(
        self,
        concurrency: int,
        journal_dir: str | None,
        session: requests.Session | None = None,
        legacy_journal_dir: str | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.journal_dir = journal_dir
        self.legacy_journal_dir = legacy_journal_dir
        self.session = session or new_session(self.concurrency + 2)
        if journal_dir:
            for name in prune_journals(journal_dir):
                log.debug(f"deleted {name}: older than {JOURNAL_MAX_AGE / 86400:g} days")

    def upload(self, request: dict[str, Any], progress: Progress) -> None:
        """Upload one object as its ``action`` says: one PUT, or parts when it has a chunk_size.

        Raises an AgentError (TransferError, ActionError) or OSError (the file) on failure.
        """
        path, size, action = request["path"], request["size"], request["action"]
        actual = os.stat(path).st_size
        if actual != size:
            raise OSError(f"{path} is {actual} bytes, git-lfs said {size}")
        header = action.get("header") or {}
        if "chunk_size" not in header:
            self._single_put(path, size, action["href"], header, progress)
            return
        plan = plan_parts(size, header)
        if self.journal_dir and self.legacy_journal_dir:
            adopt_journal(self.legacy_journal_dir, self.journal_dir, request["oid"])
        journal = Journal(self.journal_dir, request["oid"], size, plan.chunk_size)
        resumed = bool(journal.etags)
        self._put_parts(path, plan, journal, progress)
        try:
            self._complete(request["oid"], action["href"], plan, journal)
        except TransferError as error:
            if not resumed or not 400 <= error.code < 500:
                raise
            # The server did not accept the journal's ETags: a new upload. Send everything again.
            log.debug(f"completion refused with resumed parts ({error}); uploading all parts again")
            journal.remove()
            self._put_parts(path, plan, journal, progress)
            self._complete(request["oid"], action["href"], plan, journal)
        journal.remove()
        progress.finish()

    def _single_put(
        self, path: str, size: int, href: str, header: dict[str, str], progress: Progress
    ) -> None:
        headers = {**header, "Content-Length": str(size)}

        def send() -> requests.Response:
            body = FileSlice(path, 0, size, progress.attempt(0))
            return self.session.put(href, data=body, headers=headers, timeout=TIMEOUT)

        with_retries("upload", send).close()
        progress.finish()

    def _put_parts(self, path: str, plan: Plan, journal: Journal, progress: Progress) -> None:
        todo = []
        for part in plan.parts:
            if part.number in journal.etags:
                progress.done(part.number, part.length)
            else:
                todo.append(part)
        if journal.etags:
            log.debug(f"resuming: {len(journal.etags)} parts already uploaded, {len(todo)} to go")
        if not todo:
            return
        run_parallel(
            [functools.partial(self._put_part, path, part, journal, progress) for part in todo],
            self.concurrency,
            "part",
        )

    def _put_part(
        self, path: str, part: Part, journal: Journal, progress: Progress, stop: threading.Event
    ) -> None:
        headers = {"Content-Length": str(part.length)}

        def send() -> requests.Response:
            counter = progress.attempt(part.number)

            def on_sent(count: int) -> None:
                if stop.is_set():  # another part failed for good: abandon this body now
                    raise Cancelled(f"part {part.number}")
                counter(count)

            body = FileSlice(path, part.offset, part.length, on_sent)
            return self.session.put(part.url, data=body, headers=headers, timeout=TIMEOUT)

        try:
            response = with_retries(f"part {part.number}", send, stop)
        except TransferError:
            stop.set()  # from this thread, before the pool hands it the next part
            raise
        etag = response.headers.get("ETag")
        response.close()
        if not etag:
            raise TransferError(
                response.status_code, f"part {part.number}: the server sent no ETag"
            )
        journal.record(part.number, etag)
        log.debug(f"part {part.number} done ({part.length} bytes)")

    def _complete(self, oid: str, href: str, plan: Plan, journal: Journal) -> None:
        body = json.dumps(
            {
                "oid": oid,
                "parts": [
                    {"partNumber": part.number, "etag": journal.etags[part.number]}
                    for part in plan.parts
                ],
            }
        )

        def send() -> requests.Response:
            return self.session.post(
                href,
                data=body,
                timeout=COMPLETION_TIMEOUT,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )

        # Completing is idempotent for an S3-style store (same parts, same object), so retry it.
        with_retries("completing the upload", send).close()
