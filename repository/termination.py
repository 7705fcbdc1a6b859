"""SIGTERM while pushes are pending: a request to finish them, not to drop them.

Schedulers (Kubernetes, Slurm) and spot instances send SIGTERM, then SIGKILL about 30 s later.
Python's default is to die at once, losing every queued or running non-blocking push. While such a
push is pending, lfsrepo's handler lets the pushes finish for a grace period (``LFSREPO_TERM_GRACE``
seconds, default 20, below the usual 30), says on stderr what it waits for, then stops whatever
did not finish (left for the next run: its commits are in the clone) and passes the signal on to
the handler installed before it: by default the process then ends as killed by SIGTERM. A second
SIGTERM stops the wait at once.

The handler is installed by a non-blocking push made from the main thread, only if none of ours
is installed, and taken away again by the next lfsrepo call after the pushes finished (Python
lets only the main thread change signal handlers); when it is called with nothing pending it
passes the signal on at once. A handler the application installs later replaces it.

A final flush (a ``CommitScheduler``'s last commit and push, see scheduler.py) registers with
:func:`add_final_flush` and arms the handler too: on SIGTERM it runs first, within the same grace
period, and the pushes it queued are then waited for like any other.

Example:
    >>> grace_seconds({"LFSREPO_TERM_GRACE": "7.5"})
    7.5
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from .commands import StopWaiting, pending_commands, wait_for_all_commands

GRACE_VARIABLE = "LFSREPO_TERM_GRACE"
DEFAULT_GRACE_S = 20.0

_previous: Any = None  # the handler ours replaced, while ours is installed
_waiting = False
# Each is called with the monotonic deadline of the grace period, and returns by then.
_final_flushes: list[Callable[[float], None]] = []


def grace_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The grace period: ``LFSREPO_TERM_GRACE`` if it is a number >= 0, else the default."""
    try:
        value = float(environ.get(GRACE_VARIABLE, DEFAULT_GRACE_S))
    except ValueError:
        return DEFAULT_GRACE_S
    return value if 0 <= value < float("inf") else DEFAULT_GRACE_S


def arm() -> None:
    """Install the handler if a push may now be pending (main thread only; elsewhere, nothing)."""
    global _previous
    if threading.current_thread() is not threading.main_thread() or _is_ours():
        return
    _previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)


def add_final_flush(flush: Callable[[float], None]) -> None:
    """Run ``flush(deadline)`` on SIGTERM, before waiting for pending pushes (see :func:`arm`)."""
    _final_flushes.append(flush)


def remove_final_flush(flush: Callable[[float], None]) -> None:
    """Undo :func:`add_final_flush` (nothing if it is not registered)."""
    if flush in _final_flushes:
        _final_flushes.remove(flush)


def disarm_if_idle() -> None:
    """Put the previous handler back when nothing is pending and ours is still the one set."""
    if (
        threading.current_thread() is threading.main_thread()
        and _is_ours()
        and not pending_commands()
        and not _final_flushes
        and not _waiting
    ):
        _restore()


def _is_ours() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def _restore() -> None:
    global _previous
    signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
    _previous = None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _waiting
    if _waiting:
        raise StopWaiting("a second SIGTERM")
    previous = _previous
    if pending_commands() or _final_flushes:
        grace = grace_seconds()
        deadline = time.monotonic() + grace
        time_up = f"still running at the end of the {grace:g} s grace period (LFSREPO_TERM_GRACE)"
        _waiting = True
        try:
            try:
                for flush in list(_final_flushes):
                    flush(deadline)
            except StopWaiting:
                deadline = time.monotonic()  # stop the pushes at once
                time_up = "interrupted by a second SIGTERM"
            wait_for_all_commands(
                timeout=max(0.0, deadline - time.monotonic()),
                stop_hint=f"SIGTERM: up to {grace:g} s; SIGTERM again",
                time_up=time_up,
            )
        finally:
            _waiting = False
    _restore()
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signal.SIGTERM)  # default action now: end as killed by SIGTERM
