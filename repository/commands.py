"""Background git commands: :class:`CommandInProgress` and the per-clone queue that runs them.

A clone's background commands run one at a time, in the order they were submitted, on one worker
thread. While a process runs, two threads drain its stdout and stderr, so a chatty command never
blocks on a full pipe and ``stderr`` can be read at any moment. Waiting uses events, not polling.

Example:
    >>> queue = CommandQueue("demo")
    >>> command = queue.submit("echo", lambda cmd: 0)
    >>> command.wait(5), command.status
    (True, 0)
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO

from .auth import remove_credential_markers
from .errors import GitCommandError
from .git import stop_process_group
from .progress import LfsProgress

RUNNING = -1


class CommandInProgress:
    """A git command running in the background (a push, usually).

    ``status`` is -1 while it runs, 0 on success, and > 0 on failure, including when the process
    was killed by a signal.
    """

    def __init__(self, title: str, subject: str = "") -> None:
        self.title = title
        self.subject = subject  # what it works on, for messages: "3f2a9c1 to origin main"
        self.process: subprocess.Popen[bytes] | None = None
        self.progress: LfsProgress | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self._status = RUNNING
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._output_lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._redact: Callable[[str], str] = lambda text: text

    def __repr__(self) -> str:
        if self.is_done:
            state = "finished."
        elif self.started_at is None:  # waiting behind another command of the same clone
            state = "queued."
        else:
            state = "in progress."
        pid = f" PID: {self.process.pid}" if self.process is not None else ""
        status = "running" if self.status == RUNNING else self.status
        return f"[{self.title} command, status code: {status}, {state}{pid}]"

    @property
    def is_done(self) -> bool:
        """Whether the command finished (successfully or not)."""
        return self._done.is_set()

    @property
    def status(self) -> int:
        """-1 while running, 0 on success, a positive exit code on failure."""
        return self._status

    @property
    def failed(self) -> bool:
        """Whether the command finished with a failure."""
        return self._status > 0

    @property
    def stdout(self) -> str:
        """What the command wrote to stdout so far (all of it once done); never blocks."""
        with self._output_lock:
            return self._redact("".join(self._stdout))

    @property
    def stderr(self) -> str:
        """What the command wrote to stderr so far (all of it once done); never blocks."""
        with self._output_lock:
            return self._redact("".join(self._stderr))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the command is done or ``timeout`` seconds passed; return whether done."""
        return self._done.wait(timeout)

    def describe(self) -> str:
        """One line saying what the command is and how far it got.

        Example:
            >>> CommandInProgress("push", "3f2a9c1 to origin main").describe()
            'push 3f2a9c1 to origin main: queued'
        """
        name = f"{self.title} {self.subject}" if self.subject else self.title
        if self.started_at is None:
            return f"{name}: queued"
        elapsed = time.monotonic() - self.started_at
        progress = f", {self.progress.summary()}" if self.progress is not None else ""
        return f"{name}: running for {elapsed:.0f} s{progress}"

    def terminate(self) -> None:
        """Stop the running process and everything it started (hooks, git-lfs), and start no
        further attempt; the command fails. Returns once they are gone (at most ~2 s).
        """
        self._cancelled.set()
        process = self.process
        if process is not None and process.poll() is None:
            stop_process_group(process)  # git runs in its own session: its group is its pid

    def run_process(
        self,
        start: Callable[[], subprocess.Popen[bytes]],
        redact: Callable[[str], str],
    ) -> int:
        """Start a process (one attempt of this command), drain its output, return its exit code.

        Called on the queue's worker thread; output of several attempts accumulates.
        """
        self._redact = redact
        if self._cancelled.is_set():
            return 128 + signal.SIGTERM
        process = start()
        self.process = process
        drains = [
            threading.Thread(target=self._drain, args=(process.stdout, self._stdout), daemon=True),
            threading.Thread(target=self._drain, args=(process.stderr, self._stderr), daemon=True),
        ]
        for thread in drains:
            thread.start()
        returncode = process.wait()
        for thread in drains:
            thread.join()
        # A process killed by a signal has a negative code; legacy reported it as "running".
        return 128 + -returncode if returncode < 0 else returncode

    def _drain(self, pipe: IO[bytes] | None, sink: list[str]) -> None:
        if pipe is None:
            return
        with pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
                with self._output_lock:
                    sink.append(chunk.decode("utf-8", errors="replace"))

    def _finish(self, status: int, error: BaseException | None = None) -> None:
        self.error = error
        self._status = status
        self._done.set()


class CommandQueue:
    """The background commands of one clone: run in order, one at a time, on one worker thread.

    Example:
        >>> queue = CommandQueue("clone")
        >>> first = queue.submit("a", lambda cmd: 0); second = queue.submit("b", lambda cmd: 3)
        >>> queue.wait(timeout=5), first.status, second.status
        (True, 0, 3)
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[CommandInProgress] = []
        self._pending: list[tuple[CommandInProgress, Callable[[CommandInProgress], int]]] = []
        self._condition = threading.Condition()
        self._worker: threading.Thread | None = None
        _ALL_QUEUES.add(self)

    def submit(
        self,
        title: str,
        job: Callable[[CommandInProgress], int],
        *,
        listed: bool = True,
        subject: str = "",
    ) -> CommandInProgress:
        """Queue ``job`` (it returns an exit code); return its :class:`CommandInProgress` at once.

        ``listed=False``: it runs in order like the others but is not in :attr:`commands` (a
        blocking caller waits for it itself, as the legacy class never listed blocking pushes).
        """
        command = CommandInProgress(title, subject)
        with self._condition:
            if listed:
                self.commands.append(command)
            self._pending.append((command, job))
            if self._worker is None or not self._worker.is_alive():
                worker = threading.Thread(
                    target=self._work, name=f"lfsrepo-queue-{self.name}", daemon=True
                )
                try:
                    worker.start()
                except RuntimeError:  # no new thread at interpreter shutdown: never queued
                    self._pending.remove((command, job))
                    if listed:
                        self.commands.remove(command)
                    raise
                self._worker = worker
            self._condition.notify()
        return command

    def in_progress(self) -> list[CommandInProgress]:
        """Commands queued or running."""
        return [command for command in self.commands if not command.is_done]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every command submitted so far; return whether all are done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for command in list(self.commands):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not command.wait(remaining):
                return False
        return True

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending:
                    # The worker leaves when idle; submit() starts a new one when needed.
                    if not self._condition.wait(timeout=5.0) and not self._pending:
                        self._worker = None
                        return
                command, job = self._pending.pop(0)
            command.started_at = time.monotonic()
            try:
                status = job(command)
            except BaseException as error:  # noqa: BLE001 - recorded on the command, never lost
                if isinstance(error, GitCommandError) and error.returncode > 0:
                    command._finish(error.returncode, error)  # its output is already in stderr
                    continue
                with command._output_lock:
                    command._stderr.append(f"\n{type(error).__name__}: {error}\n")
                command._finish(1, error)
            else:
                command._finish(status)


_ALL_QUEUES: weakref.WeakSet[CommandQueue] = weakref.WeakSet()
_CLONE_QUEUES: weakref.WeakValueDictionary[str, CommandQueue] = weakref.WeakValueDictionary()
_CLONE_QUEUES_LOCK = threading.Lock()


def queue_for_clone(local_dir: str) -> CommandQueue:
    """The one queue of the clone at ``local_dir``, shared by every ``Repository`` using it.

    Example:
        >>> queue_for_clone("/tmp/clone") is queue_for_clone("/tmp/clone")
        True
    """
    key = os.path.realpath(local_dir)
    with _CLONE_QUEUES_LOCK:
        queue = _CLONE_QUEUES.get(key)
        if queue is None:
            queue = _CLONE_QUEUES[key] = CommandQueue(local_dir)
        return queue


class StopWaiting(Exception):
    """Raised (by a second SIGTERM, see termination.py) to stop waiting for background commands."""


def pending_commands() -> list[CommandInProgress]:
    """The background commands of every clone that are queued or running."""
    return [command for queue in list(_ALL_QUEUES) for command in queue.in_progress()]


def wait_for_all_commands(
    timeout: float | None = None,
    announce: bool = True,
    stop_hint: str = "Ctrl-C",
    time_up: str | None = None,
) -> bool:
    """Wait for the background commands of every clone; used at interpreter exit.

    ``timeout`` bounds the whole wait, however many clones there are; ``time_up`` says why the
    commands still running were stopped when it ends (default: "still running after <timeout>
    s"), for a caller whose time budget began before this wait. Says once, on stderr, what
    it waits for and how far each command got. Ctrl-C (or :class:`StopWaiting`) stops waiting.
    Commands that did not finish, when it stops or the time is up, are stopped (no git process
    outlives the wait) and reported as left for the next run. Returns whether all finished.
    """
    pending = [(queue, queue.in_progress()) for queue in list(_ALL_QUEUES)]
    pending = [(queue, commands) for queue, commands in pending if commands]
    if not pending:
        return True
    if announce:
        lines = [
            f"  {queue.name}: {command.describe()}" for queue, cmds in pending for command in cmds
        ]
        print(
            f"lfsrepo: waiting for background git commands to finish ({stop_hint} to stop):",
            *lines,
            sep="\n",
            file=sys.stderr,
            flush=True,
        )
    # One deadline for all clones: N slow queues must not wait N x timeout.
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if all(
            queue.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            for queue, _ in pending
        ):
            return True
        why = time_up or f"still running after {timeout:g} s"
    except (KeyboardInterrupt, StopWaiting):
        why = "interrupted"
    stopped = [command for _, cmds in pending for command in cmds if not command.is_done]
    descriptions = [command.describe() for command in stopped]
    for command in stopped:
        command.terminate()
    print(
        f"lfsrepo: stopped waiting; {why}, left for the next run (the commits stay in the "
        "clone): " + "; ".join(descriptions),
        file=sys.stderr,
        flush=True,
    )
    return False


def _at_exit() -> None:
    wait_for_all_commands()
    remove_credential_markers()  # only now: a background command's helper may still need them


atexit.register(_at_exit)
