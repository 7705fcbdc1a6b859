"""Fault injection for the local server: failed part PUTs, dropped bodies, bandwidth cap, latency.

:class:`Faults` is the setting (public, immutable); :class:`FaultInjector` its running state,
one per setting, whose counters every request of the server shares.

Example:
    >>> from repository.testing import Faults, LocalGitServer
    >>> with LocalGitServer(faults=Faults(fail_every_nth_part=3)) as server:
    ...     server.faults = Faults(latency_s=0.05)  # change them while it runs
    ...     server.faults.active
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time

from .errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class Faults:
    """What the server should get wrong, on purpose. All knobs off by default.

    - ``fail_every_nth_part``: every Nth multipart part PUT reads its whole body, stores nothing and
      answers 500.
    - ``drop_every_nth_body``: every Nth LFS object body (basic PUT, part PUT or download GET) has
      its connection closed halfway through the body.
    - ``bandwidth_bytes_per_s``: cap on each connection's body bytes per second, both directions.
    - ``latency_s``: added before every request is handled.

    Counting starts again whenever a server is given a new ``Faults``. A value that cannot work
    (a negative count, a rate of zero) raises :class:`~repository.testing.InvalidArgumentError`,
    a ``ValueError``.

    Example:
        >>> Faults(drop_every_nth_body=2).active, Faults().active
        (True, False)
        >>> Faults(fail_every_nth_part=-1)
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: fail_every_nth_part and ... must be >= 0
    """

    fail_every_nth_part: int = 0
    drop_every_nth_body: int = 0
    bandwidth_bytes_per_s: float | None = None
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if self.fail_every_nth_part < 0 or self.drop_every_nth_body < 0:
            raise InvalidArgumentError("fail_every_nth_part and drop_every_nth_body must be >= 0")
        if self.bandwidth_bytes_per_s is not None and not self.bandwidth_bytes_per_s > 0:
            raise InvalidArgumentError("bandwidth_bytes_per_s must be positive or None")
        if not (math.isfinite(self.latency_s) and self.latency_s >= 0):
            raise InvalidArgumentError("latency_s must be a finite number >= 0")

    @property
    def active(self) -> bool:
        """True when any knob is on."""
        return bool(
            self.fail_every_nth_part
            or self.drop_every_nth_body
            or self.bandwidth_bytes_per_s
            or self.latency_s
        )


class Throttle:
    """Sleeps just enough to keep one stream under a byte rate; never sleeps when the rate is None.

    Example:
        >>> throttle = Throttle(1000)  # bytes per second
        >>> start = time.monotonic()
        >>> throttle.sent(100)  # 100 bytes at 1000 B/s: a tenth of a second
        >>> time.monotonic() - start >= 0.09
        True
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._bytes = 0

    def sent(self, nbytes: int) -> None:
        """Account for ``nbytes`` moved, and sleep while the stream is ahead of its rate."""
        if not self.rate:
            return
        self._bytes += nbytes
        ahead = self._bytes / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


class FaultInjector:
    """The running state of one :class:`Faults` setting: its counters, shared by all requests
    (thread-safe).

    Example:
        >>> injector = FaultInjector(Faults(fail_every_nth_part=2))
        >>> [injector.fail_this_part() for _ in range(4)]
        [False, True, False, True]
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._parts = itertools.count(1)
        self._bodies = itertools.count(1)
        self._lock = threading.Lock()

    def fail_this_part(self) -> bool:
        """Count one part PUT; True if this one must fail."""
        n = self.faults.fail_every_nth_part
        if not n:
            return False
        with self._lock:
            return next(self._parts) % n == 0

    def drop_this_body(self) -> bool:
        """Count one object body; True if its connection must be dropped halfway.

        Example:
            >>> injector = FaultInjector(Faults(drop_every_nth_body=3))
            >>> [injector.drop_this_body() for _ in range(6)]
            [False, False, True, False, False, True]
        """
        n = self.faults.drop_every_nth_body
        if not n:
            return False
        with self._lock:
            return next(self._bodies) % n == 0

    def throttle(self) -> Throttle:
        """A fresh throttle for one body on one connection (the cap is per connection)."""
        return Throttle(self.faults.bandwidth_bytes_per_s)

    def delay(self) -> None:
        """Sleep for the configured per-request latency."""
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
