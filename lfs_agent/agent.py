"""The agent process: init -> uploads/downloads -> terminate, over stdin/stdout.

stdout carries protocol messages and nothing else: they go to a private copy of the real stdout,
and file descriptor 1 and ``sys.stdout`` point at stderr, so a stray print, warning or C-level
write cannot corrupt the stream. By hand, ``echo '{"event":"init","operation":"upload"}' |
python -m lfs_agent`` answers ``{}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from lfs_agent import log
from lfs_agent.errors import AgentError, ProtocolError, protocol_code
from lfs_agent.protocol import INIT_ERROR_CODE, MessageWriter, parse_message

if TYPE_CHECKING:
    from lfs_agent.download import Downloader
    from lfs_agent.upload import Uploader


def _import_transfers() -> None:
    # requests takes ~0.1 s to import: do it while git-lfs reads our init reply.
    import importlib

    for name in ("lfs_agent.upload", "lfs_agent.download", "repository.git"):
        importlib.import_module(name)


def git_common_dir(cwd: str | None = None) -> str | None:
    """The git dir shared by all worktrees of the clone at ``cwd`` (absolute); None outside one."""
    from lfs_agent.setup import GIT_TIMEOUT_S
    from repository.git import GitRunner

    try:
        result = GitRunner(cwd or os.getcwd()).run(
            ["rev-parse", "--path-format=absolute", "--git-common-dir"],
            check=False,
            timeout=GIT_TIMEOUT_S,
        )
    except OSError:  # a RepositoryError (no git, a timeout) or the folder gone: no clone to use
        return None
    return (result.ok and result.stdout.strip()) or None


def lfs_temp_dir(cwd: str | None = None) -> str:
    """git-lfs's temp area of the clone at ``cwd`` (``.git/lfs/tmp``), created if missing.

    Downloads go here, where git-lfs expects them; outside a clone, to the system temp dir.
    """
    import tempfile

    git_dir = git_common_dir(cwd)
    if git_dir is None:
        return tempfile.gettempdir()
    path = os.path.join(git_dir, "lfs", "tmp")
    os.makedirs(path, exist_ok=True)
    return path


def journal_dirs(cwd: str | None = None) -> tuple[str, str | None]:
    """Where upload journals live, and where the previous version kept them (None: nowhere else).

    In a clone: ``<git common dir>/lfsrepo/multipart`` (created if missing) and ``.git/lfs/tmp``,
    which git-lfs empties of files older than an hour whenever it runs, ``git push`` included.
    Outside a clone: the system temp dir, as before.

    Example:
        >>> import tempfile; from repository.git import GitRunner
        >>> clone = os.path.realpath(tempfile.mkdtemp()); _ = GitRunner(clone).run(["init", "-q"])
        >>> [os.path.relpath(path, clone) for path in journal_dirs(clone)]
        ['.git/lfsrepo/multipart', '.git/lfs/tmp']
    """
    import tempfile

    git_dir = git_common_dir(cwd)
    if git_dir is None:
        return tempfile.gettempdir(), None
    path = os.path.join(git_dir, "lfsrepo", "multipart")
    os.makedirs(path, exist_ok=True)
    return path, os.path.join(git_dir, "lfs", "tmp")


class Agent:
    """Answers one git-lfs session's messages; ``handle`` returns False after ``terminate``.

    Example:
        >>> import os; r, w = os.pipe(); agent = Agent(MessageWriter(w))
        >>> agent.handle({"event": "init", "operation": "upload", "concurrenttransfers": 3})
        True
        >>> os.read(r, 100), agent.concurrency
        (b'{}\\n', 3)
    """

    def __init__(self, writer: MessageWriter, concurrency: int | None = None) -> None:
        self.writer = writer
        self.operation: str | None = None
        self.concurrency = concurrency or 0
        self._override = concurrency
        self._uploader: Uploader | None = None
        self._downloader: Downloader | None = None

    def handle(self, message: dict[str, Any]) -> bool:
        """Act on one validated message. Raises ProtocolError for a message out of place."""
        event = message["event"]
        if event == "terminate":
            return False
        if event == "init":
            if self.operation is not None:
                self.writer.write(
                    {"error": {"code": INIT_ERROR_CODE, "message": "init sent twice"}}
                )
                return True
            self.operation = message["operation"]
            # git-lfs runs one agent process (concurrent=false), so in-file parallelism takes
            # the whole of lfs.concurrenttransfers.
            self.concurrency = self._override or message.get("concurrenttransfers", 8)
            log.debug(f"init: {self.operation}, {self.concurrency} parts in flight")
            self.writer.write({})
            return True
        if self.operation is None:
            raise ProtocolError(f"{event} before init")
        oid = message["oid"]
        if event != self.operation:
            self.writer.error(
                oid, 400, f"{event} request in a session initialised for {self.operation}"
            )
            return True
        self._transfer_one(message)
        return True

    def _transfer_one(self, message: dict[str, Any]) -> None:
        from lfs_agent.progress import Progress

        oid, size = message["oid"], message["size"]
        progress = Progress(self.writer, oid, size)
        log.debug(f"{message['event']} {oid} ({size} bytes) via {message['action']['href']}")
        try:
            if message["event"] == "upload":
                self._get_uploader().upload(message, progress)
                self.writer.write({"event": "complete", "oid": oid})
            else:
                path = self._get_downloader().download(message, progress)
                self.writer.write({"event": "complete", "oid": oid, "path": path})
            log.debug(f"{oid}: done")
        except (AgentError, OSError) as error:
            text = f"{message['event']} of {oid} failed: {log.redact(str(error))}"
            log.debug(text)
            self.writer.error(oid, protocol_code(error), text)
        except Exception as error:  # noqa: BLE001 - one object's bug must not end the session
            log.debug(traceback.format_exc())
            self.writer.error(
                oid,
                500,
                f"{message['event']} of {oid} failed: unexpected "
                f"{type(error).__name__}: {log.redact(str(error))}",
            )

    def _get_uploader(self) -> Uploader:
        if self._uploader is None:
            from lfs_agent.upload import Uploader

            journal_dir, legacy_dir = journal_dirs()
            self._uploader = Uploader(self.concurrency, journal_dir, legacy_journal_dir=legacy_dir)
        return self._uploader

    def _get_downloader(self) -> Downloader:
        if self._downloader is None:
            from lfs_agent.download import Downloader

            self._downloader = Downloader(self.concurrency, lfs_temp_dir())
        return self._downloader


def run(stdin: IO[bytes], writer: MessageWriter, concurrency: int | None = None) -> int:
    """Serve one session from ``stdin``; return the exit code (0 on terminate or end of input).

    Example:
        >>> import io, os; r, w = os.pipe()
        >>> run(io.BytesIO(b'{"event":"init","operation":"download"}\\n{"event":"terminate"}\\n'),
        ...     MessageWriter(w))
        0
    """
    agent = Agent(writer, concurrency)
    for raw in stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            if not agent.handle(parse_message(line)):
                break
        except ProtocolError as error:
            log.debug(f"protocol error: {error} in {line[:200]!r}")
            if error.oid is not None and agent.operation is not None:
                writer.error(error.oid, error.code, f"bad request from git-lfs: {error}")
            elif agent.operation is None and str(error).startswith("init:"):
                writer.write({"error": {"code": INIT_ERROR_CODE, "message": str(error)}})
            else:
                print(f"lfs-multipart agent: protocol error: {error}", file=sys.stderr)
                return 2
    if log.enabled():
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        log.debug(
            f"terminate: cpu {usage.ru_utime:.2f}s user {usage.ru_stime:.2f}s sys, "
            f"peak rss {usage.ru_maxrss // 1024} MiB"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent as git-lfs starts it: protocol on stdin/stdout, diagnostics elsewhere.

    Options: ``--concurrency N`` (parts in flight; default from git-lfs's concurrenttransfers or
    LFSREPO_AGENT_CONCURRENCY) and ``--log FILE`` (default LFSREPO_AGENT_LOG).
    """
    parser = argparse.ArgumentParser(
        prog="lfs-multipart-upload", description="git-lfs custom transfer agent (multipart)"
    )
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--log", default=os.environ.get("LFSREPO_AGENT_LOG"))
    args = parser.parse_args(argv)
    if args.concurrency is None:
        configured = os.environ.get("LFSREPO_AGENT_CONCURRENCY", "").strip() or "0"
        if not configured.isdigit():
            parser.error(
                f"LFSREPO_AGENT_CONCURRENCY must be a non-negative integer, got {configured!r}"
            )
        args.concurrency = int(configured) or None
    protocol_fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    log.configure(args.log)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
        log.debug(f"{category.__name__}: {message} ({filename}:{lineno})")
    )
    threading.Thread(target=_import_transfers, daemon=True).start()
    try:
        return run(sys.stdin.buffer, MessageWriter(protocol_fd), args.concurrency)
    except BrokenPipeError:
        return 1  # git-lfs went away: nobody is left to tell
    except Exception as error:  # noqa: BLE001 - a fatal error is one line on stderr, not stdout
        log.debug(traceback.format_exc())
        print(f"lfs-multipart agent: fatal: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
