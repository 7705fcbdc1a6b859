"""Progress events for one object: monotonic, throttled, never double counting a retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lfs_agent import log
from lfs_agent.protocol import MessageWriter

INTERVAL = 0.2  # a few events a second: enough for a live bar, cheap for git-lfs


class Progress:
    """Counts the bytes of each part (or range) once, whatever the number of attempts.

    A part's credit is the most bytes any one attempt has moved, so a retry re-sending the first
    half of a part adds nothing until it gets further than the failed attempt did.

    Example:
        >>> import os; from lfs_agent.protocol import MessageWriter
        >>> progress = Progress(MessageWriter(os.pipe()[1]), "ab", size=8)
        >>> first = progress.attempt(1); first(4)  # 4 bytes of part 1, then the connection drops
        >>> retry = progress.attempt(1); retry(4); retry(2)
        >>> progress.bytes_so_far
        6
    """

    def __init__(self, writer: MessageWriter, oid: str, size: int) -> None:
        self._writer, self.oid, self.size = writer, oid, size
        self._lock = threading.Lock()
        self._credit: dict[int, int] = {}
        self.bytes_so_far = 0
        self._reported = 0
        self._reported_at = 0.0

    def attempt(self, key: int) -> Callable[[int], None]:
        """Return a callback that counts the bytes of one attempt at part ``key``."""
        moved = 0

        def on_bytes(count: int) -> None:
            nonlocal moved
            moved += count
            with self._lock:
                gain = moved - self._credit.get(key, 0)
                if gain <= 0:
                    return
                self._credit[key] = moved
                self.bytes_so_far += gain
                self._maybe_report()

        return on_bytes

    def done(self, key: int, length: int) -> None:
        """Credit a whole part at once (a part the resume journal says is already uploaded)."""
        with self._lock:
            self.bytes_so_far += length - self._credit.get(key, 0)
            self._credit[key] = length
            self._maybe_report()

    def finish(self) -> None:
        """Send the last event, ``bytesSoFar == size``, unless it went out already."""
        with self._lock:
            self.bytes_so_far = self.size
            if self._reported < self.size or self.size == 0:
                self._report()

    def _maybe_report(self) -> None:
        # The first event goes out at once: git-lfs holds its other workers until it sees one.
        now = time.monotonic()
        if self._reported == 0:
            log.debug(f"{self.oid}: first bytes on the wire")
        if (
            self._reported == 0
            or self.bytes_so_far == self.size
            or now - self._reported_at >= INTERVAL
        ):
            self._report(now)

    def _report(self, now: float | None = None) -> None:
        self._writer.write(
            {
                "event": "progress",
                "oid": self.oid,
                "bytesSoFar": self.bytes_so_far,
                "bytesSinceLast": self.bytes_so_far - self._reported,
            }
        )
        self._reported = self.bytes_so_far
        self._reported_at = time.monotonic() if now is None else now
