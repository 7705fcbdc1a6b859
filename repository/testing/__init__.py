"""A real local git + Git LFS server for tests, demos and users' own test suites.

The names in ``__all__`` are the public API; the modules that implement them (``server``,
``git_http``, ``lfs_api``, ``storage``...) are internal and may change. Every error the server
raises on purpose is a :class:`ServerError`. Starting a server needs the ``lfsrepo[server]`` extra
(Werkzeug); importing this package does not, and loads nothing of the server until a name is used,
so that the pytest plugin costs nothing in test runs that do not use it.

Example:
    >>> from repository.testing import Faults, LocalGitServer
    >>> with LocalGitServer(faults=Faults(latency_s=0.01)) as server:
    ...     url = server.create_repo("ns/name", files={"README.md": b"# hi\\n"})
    ...     list(server.list_refs("ns/name"))
    ['refs/heads/main']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repository._lazy import lazy_attributes

if TYPE_CHECKING:
    from .errors import (
        InvalidArgumentError,
        ListenError,
        MissingDependencyError,
        RepoExistsError,
        RepoNotFoundError,
        S3Error,
        SeaweedFSError,
        ServerError,
        ServerGitError,
    )
    from .faults import Faults
    from .pytest_plugin import RemoteRepo
    from .seaweedfs import SeaweedFS
    from .server import LocalGitServer, RecordedRequest

__all__ = [
    "Faults",
    "InvalidArgumentError",
    "ListenError",
    "LocalGitServer",
    "MissingDependencyError",
    "RecordedRequest",
    "RemoteRepo",
    "RepoExistsError",
    "RepoNotFoundError",
    "S3Error",
    "SeaweedFS",
    "SeaweedFSError",
    "ServerError",
    "ServerGitError",
]

# Each public name, and the module that defines it, loaded on first use.
_HOMES = {
    **dict.fromkeys([name for name in __all__ if name.endswith("Error")], ".errors"),
    "SeaweedFS": ".seaweedfs",
    "Faults": ".faults",
    "LocalGitServer": ".server",
    "RecordedRequest": ".server",
    "RemoteRepo": ".pytest_plugin",
}

__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, __all__)
