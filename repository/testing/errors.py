"""The exceptions of the local server: one root, :class:`ServerError`, for everything it raises.

Each error is also the built-in type code written before it existed would catch: a bad value is a
``ValueError``, a missing repository a ``KeyError``, an existing one a ``FileExistsError``, a port
the server cannot listen on an ``OSError``. Errors of the machine itself met along the way (an
unwritable ``data_dir``, a full disk) stay the ``OSError`` Python raised.

Inside a running server these never reach a client as a traceback: they are answered as JSON
``{"message": ...}`` with an HTTP status (see ``LocalGitServer.wsgi``).

Example:
    >>> from repository.testing import LocalGitServer, ServerError
    >>> try:
    ...     LocalGitServer(chunk_size=0)
    ... except ServerError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    InvalidArgumentError True
"""

from __future__ import annotations


class ServerError(Exception):
    """Base class of every error raised on purpose by :mod:`repository.testing`.

    Example:
        >>> issubclass(RepoNotFoundError, ServerError)
        True
    """

    # The message as given, also for the KeyError subclass (whose own str() would quote it).
    __str__ = Exception.__str__


class InvalidArgumentError(ServerError, ValueError):
    """A value the server cannot work with: an option of ``LocalGitServer`` or ``Faults``, a
    repository name, a file path of ``create_repo``, an LFS object id.

    Example:
        >>> from repository.testing import Faults
        >>> Faults(latency_s=-1)
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: latency_s must be a finite number >= 0
    """


class RepoExistsError(ServerError, FileExistsError):
    """``create_repo`` was asked for a repository that already exists.

    Example:
        >>> isinstance(RepoExistsError("repository ns/m already exists"), FileExistsError)
        True
    """


class RepoNotFoundError(ServerError, KeyError):
    """No repository of that name on the server (a ``KeyError`` too, as ``list_refs`` raised).

    Example:
        >>> str(RepoNotFoundError("no repository ns/m"))
        'no repository ns/m'
    """


class ServerGitError(ServerError):
    """One of the server's own git commands (making a repository, a commit, listing refs) failed
    or did not finish in time; the message carries git's own words.

    Example:
        >>> isinstance(ServerGitError("git init failed: fatal: Permission denied"), OSError)
        False
    """


class ListenError(ServerError, OSError):
    """The server could not listen on its address: the port is in use, the host is no address of
    this machine, or the port needs privileges. The ``OSError`` it came from is its cause.

    Example:
        >>> isinstance(ListenError("cannot listen on 127.0.0.1:80: Permission denied"), OSError)
        True
    """


class MissingDependencyError(ServerError, ImportError):
    """Starting the server needs a package that is not installed (Werkzeug, installed with the
    ``lfsrepo[server]`` extra); the message says what to install.

    Example:
        >>> MissingDependencyError("pip install 'lfsrepo[server]'", name="werkzeug").name
        'werkzeug'
    """


class S3Error(ServerError):
    """The S3 bucket of a server cannot be used (missing, credentials refused, endpoint
    unreachable); the message says what to fix.

    Example:
        >>> str(S3Error("bucket 'lfs' does not exist: create it first"))
        "bucket 'lfs' does not exist: create it first"
    """


class SeaweedFSError(ServerError):
    """SeaweedFS (the local S3 of tests) did not start, or did not answer S3 requests in time;
    the message ends with the last lines of its log.

    Example:
        >>> isinstance(SeaweedFSError("weed exited with 1"), ServerError)
        True
    """


class StorageError(ServerError):
    """An object or upload the store refused (internal: the LFS API answers it with ``status``).

    Example:
        >>> StorageError(422, "size mismatch").status
        422
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpError(ServerError):
    """An answer to the client, ``{"message": ...}`` as JSON with an HTTP status and any extra
    headers (internal: raised inside a request, answered by the server).

    Example:
        >>> HttpError(401, "authentication required", [("WWW-Authenticate", "Basic")]).status
        401
    """

    def __init__(
        self, status: int, message: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
