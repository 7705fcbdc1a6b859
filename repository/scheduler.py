""":class:`CommitScheduler`: a folder brought into a clone, committed and pushed every few minutes.

One background thread runs ticks. A tick walks the folder's stat data under :attr:`lock` and
compares it with the last tick's; when nothing changed it ends there (no git process, no copy).
Otherwise it copies what changed into the clone (appends as their new tail only), stages and
commits it through the :class:`~repository.Repository`, and pushes with the clone's background
queue. Ticks and triggers that arrive while a push runs merge into the next tick. A failed push
keeps its commit and is retried at later ticks with exponential backoff; its error is
:attr:`CommitScheduler.last_error`, the error of the triggers waiting for it, and what
:meth:`CommitScheduler.stop` raises. docs/scheduler.md says how it differs from the Hub's HTTP
``CommitScheduler`` and why.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fnmatch
import logging
import math
import os
import stat
import sys
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from . import termination
from .commands import CommandInProgress
from .errors import NothingToCommitError, RepositoryError
from .git import GitRunner
from .lfs import SNIFF_BYTES, is_binary_bytes
from .repo import Repository

logger = logging.getLogger(__name__)

COMMIT_MESSAGE = "Scheduled commit"
# Consecutive failed pushes wait every, 2 x every, 4 x every... up to this (or every, if longer).
MAX_BACKOFF_S = 30 * 60.0
# A final flush waits this long at most for ``lock``: the holder may be the very thread a SIGTERM
# interrupted, which cannot let go while the handler runs.
FINAL_LOCK_WAIT_S = 1.0
# An append resumes only if the clone's copy still ends with the bytes the folder's file has there.
_BOUNDARY_CHECK_BYTES = 4096
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class _Stat:
    """What one tick knows of a file: a change to any field means "copy again"."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class _Copy:
    """What the clone holds of one file of the folder."""

    source: _Stat  # the file as the tick that copied it saw it
    length: int  # bytes of it in the clone: less than source.size while an unfinished line waits
    clone: tuple[int, int] | None  # (size, mtime_ns) of the clone's copy as the scheduler left it
    text: bool  # the unfinished-line rule applies (binary files are copied up to the size)


class CommitScheduler:
    """Commit and push ``folder_path`` into ``repo`` every ``every`` minutes, from a thread.

    ``folder_path`` (anywhere outside the clone; created if missing) is copied into
    ``<clone>/<path_in_repo>`` (the clone's root when None); everything there is committed.
    ``allow_patterns`` / ``ignore_patterns`` are fnmatch patterns on paths relative to the
    folder, as the Hub's; ``.git`` and ``.cache/huggingface`` are always left out. Files are
    taken as appended or replaced, never deleted from the repository. Hold :attr:`lock` while
    writing: a tick takes file sizes under it. :meth:`stop`, the end of a ``with`` block, the
    interpreter's exit and SIGTERM (within ``LFSREPO_TERM_GRACE``) make a last commit and push.

    Example (against lfsrepo's local server):
        >>> import os, tempfile
        >>> from repository import CommitScheduler, Repository
        >>> from repository.testing import LocalGitServer
        >>> server = LocalGitServer().start()
        >>> work = tempfile.mkdtemp()
        >>> repo = Repository(os.path.join(work, "clone"), clone_from=server.create_repo("me/logs"))
        >>> with CommitScheduler(repo, os.path.join(work, "logs"), every=10) as scheduler:
        ...     with scheduler.lock, open(os.path.join(work, "logs", "run.jsonl"), "a") as log:
        ...         _ = log.write('{"loss": 0.5}\\n')
        >>> server.list_refs("me/logs")["refs/heads/main"] == repo.git_head_hash()
        True
        >>> server.stop()
    """

    def __init__(
        self,
        repo: Repository,
        folder_path: str | os.PathLike[str],
        every: float = 5,
        path_in_repo: str | None = None,
        allow_patterns: str | Sequence[str] | None = None,
        ignore_patterns: str | Sequence[str] | None = None,
    ) -> None:
        if not isinstance(repo, Repository):
            raise TypeError(
                f"repo must be a Repository (a clone), not {type(repo).__name__}: "
                "CommitScheduler(Repository(local_dir, clone_from=url), folder_path)"
            )
        try:
            minutes = float(every)
        except (TypeError, ValueError):
            minutes = math.nan
        if not (minutes > 0 and math.isfinite(minutes)):
            raise ValueError(f"every must be a positive number of minutes, not {every!r}")
        self.repo = repo
        self.every = minutes
        self.path_in_repo = _clean_path_in_repo(path_in_repo)
        self.folder_path = Path(folder_path).expanduser().resolve()
        _check_folder(self.folder_path, Path(repo.local_dir).resolve())
        self.folder_path.mkdir(parents=True, exist_ok=True)
        self.allow_patterns = _patterns(allow_patterns)
        self.ignore_patterns = _patterns(ignore_patterns) or []
        self.lock = threading.Lock()
        self.last_error: BaseException | None = None
        self._target = os.path.join(repo.local_dir, self.path_in_repo)
        if os.path.lexists(self._target) and not os.path.isdir(self._target):
            raise ValueError(f"path_in_repo {self.path_in_repo!r} is a file in the clone")
        os.makedirs(self._target, exist_ok=True)
        self._git = GitRunner(repo.local_dir)  # local queries only: no credentials
        self._copies: dict[str, _Copy] = {}
        self._ticks = 0
        self._dirty = True  # the first tick stages what an earlier run may have left copied
        self._unpushed: bool | None = None  # None: not known before the first tick
        self._failures = 0
        self._retry_at = 0.0
        self._pushed: str | None = None  # the last commit this scheduler pushed
        self._give_up_lock_at: float | None = None  # set by a final flush at exit or SIGTERM
        self._condition = threading.Condition()
        self._triggers: list[Future[str | None]] = []
        self._stopping = False
        self._abandoned = False  # a final flush ran out of time: start no push
        self._cannot_push: str | None = None  # why a push cannot even start (at exit)
        self._pushing: CommandInProgress | None = None
        self._final: Future[str | None] = Future()
        self._thread = threading.Thread(
            target=self._run, name=f"lfsrepo-scheduler-{self.folder_path.name}", daemon=True
        )
        _register_exit_flush()
        _LIVE.add(self)
        termination.add_final_flush(self._flush_before)
        termination.arm()  # SIGTERM now flushes (from the main thread only, see termination.py)
        logger.info(
            "Committing %s into %s every %g minute(s)", self.folder_path, self._target, self.every
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"CommitScheduler({self.folder_path} -> {self._target}, every={self.every:g} min)"

    def __enter__(self) -> CommitScheduler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        except Exception as error:
            if exc is None:
                raise
            # The block's own exception goes on; the failed flush is not lost.
            logger.error("The last scheduled push of %s failed: %s", self.folder_path, error)

    @property
    def ticks(self) -> int:
        """How many ticks ran (timer or :meth:`trigger`), idle ones included."""
        return self._ticks

    def trigger(self) -> Future[str | None]:
        """Ask for a tick now. The future gives the sha of the commit that holds what the folder
        holds now, once it is on the remote (None while the folder never had anything to
        commit), or the tick's error.

        Triggers made while a push runs share the one tick that follows it.
        """
        future: Future[str | None] = Future()
        with self._condition:
            if self._stopping:
                raise RuntimeError(
                    f"{self!r} is stopped; create a new CommitScheduler to commit again"
                )
            self._triggers.append(future)
            self._condition.notify()
        return future

    def stop(self) -> str | None:
        """Make a last commit and push, stop the thread, and return what :meth:`trigger` would.

        Raises the last push's error (its commit stays in the clone; the next run pushes it).
        A second call returns at once.
        """
        if not self._request_stop():
            return None
        try:
            return self._final.result()
        finally:
            termination.disarm_if_idle()  # SIGTERM kept its grace until the last push was done

    # ----- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        every_s = self.every * 60
        next_tick = time.monotonic()  # the first tick at once, as the Hub's
        while True:
            with self._condition:
                while not (self._triggers or self._stopping) and time.monotonic() < next_tick:
                    self._condition.wait(next_tick - time.monotonic())
                waiters, self._triggers = self._triggers, []
                final = self._stopping
            now = time.monotonic()
            if now >= next_tick:  # ticks that fell due while a push ran are this one
                next_tick += every_s
                if next_tick <= now:
                    next_tick = now + every_s
            try:
                result = self._tick(final=final, asked=bool(waiters) or final)
            except Exception as error:  # noqa: BLE001 - given to waiters, kept in last_error
                self.last_error = error
                for waiter in waiters:
                    waiter.set_exception(error)
                if final:
                    termination.remove_final_flush(self._flush_before)
                    self._final.set_exception(error)
                    return
                if not waiters:  # else theirs to see
                    logger.warning(
                        "Scheduled commit of %s failed (%d failed push(es) in a row; what was "
                        "committed stays in the clone, later ticks try again): %s",
                        self.folder_path,
                        self._failures,
                        error,
                    )
                continue
            for waiter in waiters:
                waiter.set_result(result)
            if final:
                termination.remove_final_flush(self._flush_before)
                self._final.set_result(result)
                return

    def _tick(self, final: bool, asked: bool) -> str | None:
        """One tick: copy what changed, commit, push when due (or ``asked``). Returns what
        :meth:`trigger`'s future gives."""
        self._ticks += 1
        snapshot = self._snapshot()
        for name, status in snapshot.items():
            known = self._copies.get(name)
            if known is None or known.source != status:
                moving = not final
            elif known.length < status.size:  # an unfinished line, and the file stood still
                moving = False
            else:
                continue
            if self._copy(name, status, known, moving):
                self._dirty = True  # at once: a later file's error must not lose this copy
        for name in self._copies.keys() - snapshot.keys():
            del self._copies[name]  # gone from the folder: the repository keeps it
        if self._dirty:
            self.repo.git_add(self.path_in_repo or ".", auto_lfs_track=True)
            try:
                self.repo.git_commit(COMMIT_MESSAGE)
                self._unpushed = True
            except NothingToCommitError:
                pass
            self._dirty = False
        if self._unpushed is None:
            self._unpushed = self._branch_ahead()
        if not self._unpushed:
            self.last_error = None
            return self._pushed
        if not (asked or time.monotonic() >= self._retry_at):
            return None  # backing off after a failed push; the commit waits in the clone
        if self._cannot_push is not None:
            raise RepositoryError(
                f"{self._cannot_push}; what was committed stays in {self.repo.local_dir} and "
                "the next run pushes it"
            )
        self._pushed = self._push()
        return self._pushed

    def _snapshot(self) -> dict[str, _Stat]:
        """Stat data of the folder's files, taken under :attr:`lock`, unless a final flush
        has waited for it ``FINAL_LOCK_WAIT_S`` already."""
        while not self.lock.acquire(timeout=0.05):
            give_up_at = self._give_up_lock_at
            if give_up_at is not None and time.monotonic() >= give_up_at:
                logger.warning("Taking %s without its lock for the last flush", self.folder_path)
                return self._walk()
        try:
            return self._walk()
        finally:
            self.lock.release()

    def _walk(self) -> dict[str, _Stat]:
        found: dict[str, _Stat] = {}
        pending = [("", str(self.folder_path))]
        while pending:
            prefix, folder = pending.pop()
            try:
                entries = os.scandir(folder)
            except FileNotFoundError:  # removed since its parent was listed
                continue
            with entries:
                for entry in entries:
                    name = prefix + entry.name
                    if _always_ignored(name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((name + "/", entry.path))
                        continue
                    if not self._wanted(name):
                        continue
                    try:
                        status = entry.stat()
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(status.st_mode):
                        found[name] = _Stat(status.st_size, status.st_mtime_ns, status.st_ino)
        return found

    def _wanted(self, name: str) -> bool:
        if self.allow_patterns is not None and not any(
            fnmatch.fnmatch(name, pattern) for pattern in self.allow_patterns
        ):
            return False
        return not any(fnmatch.fnmatch(name, pattern) for pattern in self.ignore_patterns)

    def _copy(self, name: str, status: _Stat, known: _Copy | None, moving: bool) -> bool:
        """Bring ``name`` into the clone up to ``status.size`` (a text file that is still
        ``moving`` only up to its last newline); return whether the clone's copy changed."""
        source = os.path.join(self.folder_path, name)
        target = os.path.join(self._target, name)
        try:
            with open(source, "rb") as reader:
                copy, wrote = _bring(reader.fileno(), target, status, known, moving)
        except FileNotFoundError:
            if os.path.exists(source):
                raise
            self._copies.pop(name, None)  # removed between the walk and the copy
            return False
        except OSError as error:
            raise RepositoryError(
                f"cannot copy {source} into the clone ({error}); fix that, or leave the file "
                "out with ignore_patterns"
            ) from error
        self._copies[name] = copy
        return wrote

    def _branch_ahead(self) -> bool:
        """Whether the clone holds commits its upstream has not (an earlier run's, say)."""
        if not self._git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok:
            return False  # no commit yet
        counted = self._git.run(["rev-list", "--count", "@{upstream}..HEAD"], check=False)
        return not counted.ok or int(counted.stdout.strip() or 0) > 0

    def _push(self) -> str:
        branch = self.repo.current_branch
        with self._condition:
            if self._abandoned:
                raise RepositoryError(
                    f"no time was left to push the last commit of {self.folder_path}; it stays "
                    f"in {self.repo.local_dir} and the next run pushes it"
                )
            queued = self.repo.git_push(upstream=f"origin {branch}", blocking=False)
            assert isinstance(queued, tuple)  # (url, command) when not blocking
            command = self._pushing = queued[1]
        command.wait()
        self._pushing = None
        if command.error is not None:
            self._failures += 1
            every_s = self.every * 60
            delay = min(every_s * 2 ** (self._failures - 1), max(every_s, MAX_BACKOFF_S))
            self._retry_at = time.monotonic() + delay
            raise command.error
        self._failures = 0
        self._unpushed = False
        self.last_error = None
        pushed = self._git.run(["rev-parse", f"refs/remotes/origin/{branch}"], check=False)
        return pushed.stdout.strip() if pushed.ok else self.repo.git_head_hash()

    # ----- stopping ----------------------------------------------------------------------------

    def _request_stop(self) -> bool:
        """Ask the thread for its final tick; False if it was asked before."""
        with self._condition:
            if self._stopping:
                return False
            self._stopping = True
            self._condition.notify()
        _LIVE.discard(self)
        return True

    def _flush_before(self, deadline: float) -> None:
        """SIGTERM (termination.py): the final tick, within ``deadline``. A push still running
        then is termination.py's to stop and report; none starts any more."""
        self._give_up_lock_at = min(deadline, time.monotonic() + FINAL_LOCK_WAIT_S)
        self._request_stop()
        try:
            futures.wait([self._final], timeout=max(0.0, deadline - time.monotonic()))
        finally:  # a second SIGTERM raises here: it stops waiting, as the deadline does
            with self._condition:
                self._abandoned = not self._final.done()

    def _finish_at_exit(self, deadline: float) -> None:
        """Interpreter exit: the final tick within ``deadline``, else stop its push and say so."""
        self._give_up_lock_at = min(deadline, time.monotonic() + FINAL_LOCK_WAIT_S)
        self._request_stop()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop waiting
            futures.wait([self._final], timeout=max(0.0, deadline - time.monotonic()))
        if self._final.done():
            error = self._final.exception()
            if error is not None:
                _say(f"the last scheduled push of {self.folder_path} failed: {error}")
            return
        with self._condition:
            self._abandoned = True
            pushing = self._pushing
        if pushing is not None:
            pushing.terminate()
        _say(
            f"the last scheduled commit of {self.folder_path} did not finish within "
            f"{termination.grace_seconds():g} s ({termination.GRACE_VARIABLE}); what was "
            f"committed stays in {self.repo.local_dir} and the next run pushes it"
        )


_LIVE: set[CommitScheduler] = set()
_exit_flush_registered = False


def _register_exit_flush() -> None:
    """Flush every live scheduler when the main thread ends: threading's exit hook, as Python
    3.12+ refuses new threads (a push needs some) once ``atexit`` callbacks run."""
    global _exit_flush_registered
    if _exit_flush_registered:
        return
    register = getattr(threading, "_register_atexit", atexit.register)
    register(_flush_all_at_exit)
    _exit_flush_registered = True


def _flush_all_at_exit() -> None:
    deadline = time.monotonic() + termination.grace_seconds()
    cannot_push = None if _threads_start() else _NO_THREADS_AT_EXIT
    for scheduler in list(_LIVE):
        scheduler._cannot_push = cannot_push
        scheduler._finish_at_exit(deadline)


_NO_THREADS_AT_EXIT = (
    f"Python {sys.version.split()[0]} refuses new threads while exiting (3.12.0 to 3.12.2 do), "
    "and a push needs some: call stop(), or use a with block, before the interpreter exits"
)


def _threads_start() -> bool:
    """Whether a thread can still start (a push runs git in threads of the clone's queue)."""
    try:
        probe = threading.Thread(target=lambda: None)
        probe.start()
    except RuntimeError:
        return False
    probe.join()
    return True


def _say(message: str) -> None:
    print(f"lfsrepo: {message}", file=sys.stderr, flush=True)


def _clean_path_in_repo(path_in_repo: str | None) -> str:
    """``path_in_repo`` as a relative POSIX path ("" for the clone's root).

    Example:
        >>> _clean_path_in_repo("/data/train/"), _clean_path_in_repo(None)
        ('data/train', '')
    """
    if path_in_repo is None:
        return ""
    parts = PurePosixPath(path_in_repo.strip("/")).parts
    if ".." in parts or ".git" in parts or "\\" in path_in_repo:
        raise ValueError(
            f"path_in_repo must be a folder inside the repository (no '..', '.git' or "
            f"backslash), not {path_in_repo!r}"
        )
    return "/".join(part for part in parts if part != ".")


def _check_folder(folder: Path, clone: Path) -> None:
    if folder.is_file():
        raise ValueError(f"folder_path must be a folder, not a file: {folder}")
    if folder == clone or clone in folder.parents or folder in clone.parents:
        raise ValueError(
            f"folder_path {folder} overlaps the clone {clone}: give a folder outside the clone "
            "(the scheduler copies it into <clone>/<path_in_repo>)"
        )


def _patterns(patterns: str | Sequence[str] | None) -> list[str] | None:
    """Patterns as the Hub reads them: one or many; a trailing "/" means everything below.

    Example:
        >>> _patterns("logs/"), _patterns(None)
        (['logs/*'], None)
    """
    if patterns is None:
        return None
    listed = [patterns] if isinstance(patterns, str) else list(patterns)
    return [pattern + "*" if pattern.endswith("/") else pattern for pattern in listed]


def _always_ignored(name: str) -> bool:
    """Whether a path is, or is inside, a ``.git`` or ``.cache/huggingface`` (as the Hub's).

    Example:
        >>> [_always_ignored(p) for p in ("a/.git/HEAD", ".cache/huggingface", "a.git")]
        [True, True, False]
    """
    return ".git" in name.split("/") or "/.cache/huggingface/" in f"/{name}/"


def _bring(
    source_fd: int, target: str, status: _Stat, known: _Copy | None, moving: bool
) -> tuple[_Copy, bool]:
    """Copy what the clone lacks of one file: (what the clone now holds, whether it wrote)."""
    clone = _size_and_mtime(target)
    if known is None and clone == (status.size, status.mtime_ns):
        # Copied whole by an earlier run: copies carry their file's mtime.
        return _Copy(status, status.size, clone, _is_text(source_fd)), False
    start = _resume_at(known, status, clone, source_fd, target)
    text = known.text if known is not None and start >= SNIFF_BYTES else _is_text(source_fd)
    end = status.size
    if text and moving:
        end = _after_last_newline(source_fd, start, end)
    if end == start:  # nothing new, or only an unfinished line: the clone keeps what it has
        return _Copy(status, start, clone, text), False
    os.makedirs(os.path.dirname(target), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if start == 0 else 0)
    target_fd = os.open(target, flags, 0o666)
    try:
        end = _copy_range(source_fd, target_fd, start, end)
        if start == 0:
            os.fchmod(target_fd, os.fstat(source_fd).st_mode & 0o777)
    finally:
        os.close(target_fd)
    os.utime(target, ns=(status.mtime_ns, status.mtime_ns))
    return _Copy(status, end, _size_and_mtime(target), text), True


def _is_text(fd: int) -> bool:
    return not is_binary_bytes(os.pread(fd, SNIFF_BYTES, 0))


def _size_and_mtime(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns


def _resume_at(
    known: _Copy | None, status: _Stat, clone: tuple[int, int] | None, source_fd: int, target: str
) -> int:
    """Where the copy starts: after what the clone holds when the file was only appended to and
    the clone's copy is as the scheduler left it; otherwise 0 (copy it whole)."""
    if (
        known is None
        or known.length == 0
        or known.source.inode != status.inode
        or status.size < known.length
        or clone != known.clone
    ):
        return 0
    width = min(_BOUNDARY_CHECK_BYTES, known.length)
    with open(target, "rb") as copy:
        copy.seek(known.length - width)
        theirs = copy.read(width)
    if os.pread(source_fd, width, known.length - width) != theirs:
        return 0  # rewritten in place, not appended to
    return known.length


def _after_last_newline(fd: int, start: int, end: int) -> int:
    """The offset just after the last newline of bytes ``start``..``end``, or ``start``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryFile(buffering=0) as f:
        ...     _ = f.write(b"one\\ntwo\\nthr")
        ...     _after_last_newline(f.fileno(), 0, 11), _after_last_newline(f.fileno(), 8, 11)
        (8, 8)
    """
    position = end
    while position > start:
        chunk_start = max(start, position - 65536)
        chunk = os.pread(fd, position - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return chunk_start + newline + 1
        position = chunk_start
    return start


def _copy_range(source_fd: int, target_fd: int, start: int, end: int) -> int:
    """Copy bytes ``start``..``end`` to the same offsets; return where it stopped (earlier than
    ``end`` only if the source shrank). copy_file_range(2) shares blocks where the filesystem
    can (reflinks), and never moves the bytes through Python; elsewhere, a read/write loop."""
    offset = start
    if hasattr(os, "copy_file_range"):
        try:
            while offset < end:
                moved = os.copy_file_range(source_fd, target_fd, end - offset, offset, offset)
                if moved == 0:
                    return offset
                offset += moved
            return offset
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while offset < end:
        data = os.pread(source_fd, min(_READ_CHUNK, end - offset), offset)
        if not data:
            break
        offset += os.pwrite(target_fd, data, offset)
    return offset
