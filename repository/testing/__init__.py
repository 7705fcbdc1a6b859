"""A real local git + Git LFS server for tests, demos and users' own test suites.

Names are imported on first use, so that loading the pytest plugin stays cheap.

Example:
    >>> from repository.testing import LocalGitServer, Faults
    >>> with LocalGitServer(faults=Faults(latency_s=0.01)) as server:  # doctest: +SKIP
    ...     url = server.create_repo("ns/name")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Faults
    from .server import LocalGitServer

__all__ = ["Faults", "LocalGitServer"]


def __getattr__(name: str) -> Any:
    if name == "Faults":
        from .faults import Faults

        return Faults
    if name == "LocalGitServer":
        from .server import LocalGitServer

        return LocalGitServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
