"""The agent process: init -> uploads/downloads -> terminate, over stdin/stdout.

stdout carries protocol messages and nothing else: they go to a private copy of the real stdout,
and file descriptor 1 and ``sys.stdout`` point at stderr, so a stray print, warning or C-level
write cannot corrupt the stream.

Example:
    $ printf '{"event":"init","operation":"upload","concurrenttransfers":8}\\n' | python -m lfs_agent
    {}
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any

from lfs_agent import log
from lfs_agent.protocol import MessageWriter, ProtocolError, parse_message


def _import_transfers() -> None:
    # requests takes ~0.1 s to import: do it while git-lfs reads our init reply.
    import importlib

    for name in ("lfs_agent.upload", "lfs_agent.download"):
        importlib.import_module(name)


def git_common_dir(cwd: str | None = None) -> str | None:
    """The absolute git dir shared by all worktrees of the clone at ``cwd``; None outside a clone.

    Example:
        >>> import tempfile; d = os.path.realpath(tempfile.mkdtemp())
        >>> _ = subprocess.run(["git", "init", "-q", d], check=True)
        >>> git_common_dir(d) == os.path.join(d, ".git")
        True
    """
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def lfs_temp_dir(cwd: str | None = None) -> str:
    """git-lfs's temp area of the clone the agent runs in (``.git/lfs/tmp``), created if missing.

    Downloads go here, where git-lfs expects them. Falls back to the system temp dir outside a clone.

    Example:
        >>> lfs_temp_dir("/")  # doctest: +SKIP
        '/tmp'
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
        >>> import tempfile; d = os.path.realpath(tempfile.mkdtemp())
        >>> _ = subprocess.run(["git", "init", "-q", d], check=True)
        >>> [os.path.relpath(path, d) for path in journal_dirs(d)]
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
        self._transfer: Any = None

    def handle(self, message: dict[str, Any]) -> bool:
        """Act on one validated message. Raises ProtocolError for a message out of place.

        Example:
            >>> import os; agent = Agent(MessageWriter(os.pipe()[1]))
            >>> agent.handle({"event": "terminate"})
            False
        """
        event = message["event"]
        if event == "terminate":
            return False
        if event == "init":
            if self.operation is not None:
                self.writer.write({"error": {"code": 32, "message": "init sent twice"}})
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
        from lfs_agent.http import TransferError
        from lfs_agent.progress import Progress
        from lfs_agent.upload import ActionError

        oid, size = message["oid"], message["size"]
        progress = Progress(self.writer, oid, size)
        log.debug(f"{message['event']} {oid} ({size} bytes) via {message['action']['href']}")
        try:
            if message["event"] == "upload":
                self._transfers().upload(message, progress)
                self.writer.write({"event": "complete", "oid": oid})
            else:
                path = self._transfers().download(message, progress)
                self.writer.write({"event": "complete", "oid": oid, "path": path})
            log.debug(f"{oid}: done")
        except (TransferError, ActionError, OSError) as error:
            code = getattr(error, "code", 0) or (422 if isinstance(error, ActionError) else 500)
            text = f"{message['event']} of {oid} failed: {log.redact(str(error))}"
            log.debug(text)
            self.writer.error(oid, code if isinstance(code, int) else 500, text)
        except Exception as error:  # noqa: BLE001 - one object's bug must not end the session
            log.debug(traceback.format_exc())
            self.writer.error(
                oid,
                500,
                f"{message['event']} of {oid} failed: unexpected "
                f"{type(error).__name__}: {log.redact(str(error))}",
            )

    def _transfers(self) -> Any:
        if self._transfer is None:
            if self.operation == "upload":
                from lfs_agent.upload import Uploader

                journal_dir, legacy_dir = journal_dirs()
                self._transfer = Uploader(
                    self.concurrency, journal_dir, legacy_journal_dir=legacy_dir
                )
            else:
                from lfs_agent.download import Downloader

                self._transfer = Downloader(self.concurrency, lfs_temp_dir())
        return self._transfer


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
                writer.error(error.oid, 422, f"bad request from git-lfs: {error}")
            elif agent.operation is None and str(error).startswith("init:"):
                writer.write({"error": {"code": 32, "message": str(error)}})
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

    Example:
        $ python -m lfs_agent --log /tmp/agent.log
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
