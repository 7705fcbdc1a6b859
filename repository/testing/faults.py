"""Fault injection for the local server: failed part PUTs, dropped bodies, bandwidth cap, latency.

Example:
    >>> from repository.testing import Faults
    >>> Faults(fail_every_nth_part=3, latency_s=0.05).active
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time


@dataclasses.dataclass(frozen=True)
class Faults:
    """What the server should get wrong, on purpose. All knobs off by default.

    - ``fail_every_nth_part``: every Nth multipart part PUT reads its whole body, stores nothing and
      answers 500.
    - ``drop_every_nth_body``: every Nth LFS object body (basic PUT, part PUT or download GET) has
      its connection closed halfway through the body.
    - ``bandwidth_bytes_per_s``: cap on each connection's body bytes per second, both directions.
    - ``latency_s``: added before every request is handled.

    Example:
        >>> Faults(bandwidth_bytes_per_s=10 * 1024**2).bandwidth_bytes_per_s
        10485760
    """

    fail_every_nth_part: int = 0
    drop_every_nth_body: int = 0
    bandwidth_bytes_per_s: float | None = None
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if self.fail_every_nth_part < 0 or self.drop_every_nth_body < 0:
            raise ValueError("fail_every_nth_part and drop_every_nth_body must be >= 0")
        if self.bandwidth_bytes_per_s is not None and self.bandwidth_bytes_per_s <= 0:
            raise ValueError("bandwidth_bytes_per_s must be positive or None")
        if self.latency_s < 0:
            raise ValueError("latency_s must be >= 0")

    @property
    def active(self) -> bool:
        """True when any knob is on.

        Example:
            >>> Faults().active
            False
        """
        return bool(
            self.fail_every_nth_part
            or self.drop_every_nth_body
            or self.bandwidth_bytes_per_s
            or self.latency_s
        )


class Throttle:
    """Sleeps just enough to keep one stream under a byte rate; no-op when the rate is None.

    Example:
        >>> t = Throttle(None)
        >>> t.sent(1024)  # returns at once
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._bytes = 0

    def sent(self, nbytes: int) -> None:
        """Account for ``nbytes`` moved and sleep if the stream is ahead of its rate.

        Example:
            >>> Throttle(1e9).sent(10)
        """
        if not self.rate:
            return
        self._bytes += nbytes
        ahead = self._bytes / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


class FaultInjector:
    """The running state of one :class:`Faults` setting: its counters, shared by all requests.

    Example:
        >>> inj = FaultInjector(Faults(fail_every_nth_part=2))
        >>> [inj.fail_this_part() for _ in range(4)]
        [False, True, False, True]
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._parts = itertools.count(1)
        self._bodies = itertools.count(1)
        self._lock = threading.Lock()

    def fail_this_part(self) -> bool:
        """Count one part PUT; True if this one must fail.

        Example:
            >>> FaultInjector(Faults()).fail_this_part()
            False
        """
        n = self.faults.fail_every_nth_part
        if not n:
            return False
        with self._lock:
            return next(self._parts) % n == 0

    def drop_this_body(self) -> bool:
        """Count one object body; True if its connection must be dropped halfway.

        Example:
            >>> FaultInjector(Faults(drop_every_nth_body=1)).drop_this_body()
            True
        """
        n = self.faults.drop_every_nth_body
        if not n:
            return False
        with self._lock:
            return next(self._bodies) % n == 0

    def throttle(self) -> Throttle:
        """A fresh per-connection throttle for one body.

        Example:
            >>> FaultInjector(Faults()).throttle().rate is None
            True
        """
        return Throttle(self.faults.bandwidth_bytes_per_s)

    def delay(self) -> None:
        """Sleep for the configured per-request latency.

        Example:
            >>> FaultInjector(Faults()).delay()
        """
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
