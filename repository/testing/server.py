"""LocalGitServer: git smart HTTP and the Git LFS API on one loopback port, in background threads.

Example:
    >>> import hashlib
    >>> weights = b"\\0" * 10
    >>> oid = hashlib.sha256(weights).hexdigest()
    >>> with LocalGitServer() as server:
    ...     url = server.create_repo("ns/demo", files={"README.md": b"hi\\n", "w.bin": weights})
    ...     refs = server.list_refs("ns/demo")
    ...     url.endswith("/ns/demo.git"), list(refs), server.lfs_object_size(oid)
    (True, ['refs/heads/main'], 10)
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._http import Environ, StartResponse, json_response
from .auth import Auth
from .errors import HttpError, InvalidArgumentError, MissingDependencyError
from .faults import FaultInjector, Faults
from .git_http import GitHttpApp
from .lfs_api import LfsApi
from .lfs_proxy import LfsProxy
from .repos import RepoStore, clean_path, normalize_name
from .s3_storage import (
    MAX_PART_SIZE,
    MAX_SINGLE_PUT,
    MIN_PART_SIZE,
    PENDING_MAX_AGE_S,
    S3Store,
)
from .storage import ObjectStore, check_oid

if TYPE_CHECKING:
    from typing_extensions import Self
    from werkzeug.serving import BaseWSGIServer

DEFAULT_THRESHOLD = 5 * 1024**3
DEFAULT_CHUNK_SIZE = 64 * 1024**2
SERVER_EXTRA = "lfsrepo[server]"


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """A request the storage origin received (see ``separate_storage``): what a test may check
    about the credentials that reached it.

    Example:
        >>> RecordedRequest("PUT", "/ns/r.git/info/lfs/objects/ab", None).authorization is None
        True
    """

    method: str
    path: str
    authorization: str | None


class LocalGitServer:
    """A real git + Git LFS server on loopback for tests, demos and users' own test suites.

    ``data_dir=None`` uses a temporary folder, removed by :meth:`stop`; a given one is kept, and
    a server started on it again serves what it held (pending multipart uploads aside). ``port=0``
    takes any free port. With a ``token``, git and the LFS API want it as the HTTP Basic password
    (any username), as the Basic username with an empty password, or as a Bearer token; object
    and part URLs handed out by the batch API are signed instead, as presigned object store URLs.

    ``multipart_threshold``: uploads above it go multipart (parts of ``chunk_size``) for clients
    that list the ``multipart`` transfer; larger downloads too, so the agent fetches ranges in
    parallel. ``auto_create``: a push to ``<base>/ns/name.git`` creates the repository.
    ``faults`` can be replaced while the server runs (``server.faults = Faults(...)``), which
    resets its counters.

    Three switches model servers other than the Hub: ``action_authorization`` gives basic
    transfer and verify actions their own ``Authorization`` header, as giftless, GitLab and Gitea
    do (a client that doubles or replaces it gets a 403); ``separate_storage`` serves object
    transfers from a second port, another origin as an object store would be, and records each
    request there in :attr:`storage_requests`; ``lfs_server="http://127.0.0.1:PORT"`` puts
    another LFS server (giftless, say) behind this one, its API forwarded as is, on this origin.

    ``s3_bucket``: LFS objects go to that S3 bucket (keys under ``s3_prefix``) instead of
    ``data_dir``, which keeps the git repositories; clients send and fetch them through
    presigned S3 URLs, and multipart objects are verified before they count as stored (see
    docs/object-storage.md). ``s3_endpoint`` is the URL of an S3-compatible store (default:
    AWS), ``s3_region`` its region; credentials come from the standard AWS environment and
    config unless given as ``s3_credentials=(access key, secret key)``. Parts are then 5 MiB to
    5 GiB and single PUTs at most 5 GiB, as S3 wants; pending multipart uploads older than
    ``s3_pending_max_age`` seconds are aborted. Needs the ``lfsrepo[s3]`` extra (boto3).

    ``signing_key``: the secret (32 characters or more) that signs the URLs the server hands
    out. Without one, a random key of this process signs them, and no other process accepts
    them: processes serving the same repositories and bucket (WSGI workers) need the same key.

    A value that cannot work raises :class:`~repository.testing.InvalidArgumentError`. Public
    attributes: ``data_dir``, ``host``, ``port``, ``token``, ``storage_requests``,
    ``s3_bucket``; the parts it
    wires together (``repos``, ``store``, ``git``, ``lfs``, ``auth``) are internal.

    Example:
        >>> with LocalGitServer(multipart_threshold=8 * 1024**2) as server:
        ...     server.create_repo("ns/name") == f"{server.base_url}/ns/name.git"
        True
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        multipart_threshold: int = DEFAULT_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        auto_create: bool = True,
        faults: Faults | None = None,
        action_authorization: bool = False,
        separate_storage: bool = False,
        lfs_server: str | None = None,
        s3_bucket: str | None = None,
        s3_prefix: str = "",
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        s3_credentials: tuple[str, str] | None = None,
        s3_pending_max_age: float = PENDING_MAX_AGE_S,
        signing_key: str | None = None,
    ) -> None:
        if chunk_size <= 0 or multipart_threshold < 0:
            raise InvalidArgumentError("chunk_size must be positive and multipart_threshold >= 0")
        if s3_bucket is not None:
            _check_s3_options(
                chunk_size, multipart_threshold, s3_pending_max_age, separate_storage, lfs_server
            )
        if not 0 <= port <= 65535:
            raise InvalidArgumentError(f"invalid port {port}: use 0 (any free port) to 65535")
        self.auth = Auth(token, signing_key)
        self._lfs_proxy = LfsProxy(lfs_server) if lfs_server else None
        self._own_dir = data_dir is None
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="lfsrepo-server-")
        self.data_dir = Path(data_dir).resolve()
        self.host, self.port, self.token = host, port, token
        self.s3_bucket = s3_bucket
        self.store: ObjectStore | S3Store
        try:
            self.repos = RepoStore(self.data_dir / "repos")
            if s3_bucket is None:
                self.store = ObjectStore(self.data_dir / "lfs")
            else:
                self.store = S3Store(
                    s3_bucket,
                    prefix=s3_prefix.strip("/") + "/" if s3_prefix.strip("/") else "",
                    endpoint=s3_endpoint,
                    region=s3_region,
                    credentials=s3_credentials,
                    chunk_size=chunk_size,
                    pending_max_age=s3_pending_max_age,
                )
        except BaseException:
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        self._injector = FaultInjector(faults or Faults())
        self.git = GitHttpApp(self.repos, auto_create=auto_create, injector=lambda: self._injector)
        self.lfs = LfsApi(
            self.store,
            self.repos,
            self.auth,
            multipart_threshold=multipart_threshold,
            chunk_size=chunk_size,
            auto_create=auto_create,
            injector=lambda: self._injector,
            action_authorization=action_authorization,
        )
        self.separate_storage = separate_storage
        self.storage_requests: list[RecordedRequest] = []
        self._servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen and serve in background threads, and return self; a no-op once started.

        Raises :class:`~repository.testing.ListenError` (an ``OSError``) if the address cannot
        be listened on, :class:`~repository.testing.MissingDependencyError` (an
        ``ImportError``) if the ``lfsrepo[server]`` extra is not installed, and
        :class:`~repository.testing.S3Error` if the S3 bucket cannot be used. With S3, pending
        uploads older than ``s3_pending_max_age`` are aborted first.
        """
        if self._servers:
            return self
        if isinstance(self.store, S3Store):
            self.store.check()
            self.store.abort_stale()
        try:
            from . import _httpd
        except ModuleNotFoundError as error:
            if (error.name or "").partition(".")[0] != "werkzeug":
                raise
            raise MissingDependencyError(
                f"LocalGitServer needs Werkzeug, which is installed with lfsrepo's server extra: "
                f"pip install '{SERVER_EXTRA}'",
                name="werkzeug",
            ) from error
        try:
            httpd, thread = _httpd.serve(self.host, self.port, self.wsgi)
            self._servers.append((httpd, thread))
            self.port = httpd.port
            if self.separate_storage:
                storage, thread = _httpd.serve(self.host, 0, self._storage_wsgi)
                self._servers.append((storage, thread))
                self.lfs.storage_url = f"http://{self._url_host}:{storage.port}"
        except BaseException:
            self._close()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, close the sockets, and remove the data folder if it was temporary (such
        a server cannot start again). Safe to call more than once, or on a server never started.

        Example:
            >>> server = LocalGitServer().start()
            >>> server.stop()
            >>> server.data_dir.exists()
            False
        """
        self._close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _close(self) -> None:
        if self._servers:
            from . import _httpd  # start() loaded it: there is something to close

            for httpd, thread in self._servers:
                _httpd.close(httpd, thread)
        self._servers = []
        self.lfs.storage_url = None

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()  # no with-block will: remove a temporary data folder
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ----------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The fault injection in force; assign a new :class:`Faults` to change it at once, for
        every request that starts from then on, with fresh counters."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector = FaultInjector(faults)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the server: the port it listens on once started (with
        ``port=0``, the one it was given until then)."""
        return f"http://{self._url_host}:{self.port}"

    @property
    def storage_url(self) -> str | None:
        """``http://HOST:PORT`` of the storage origin while it runs (``separate_storage``),
        else None."""
        return self.lfs.storage_url

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    # -- repositories and objects -----------------------------------------------------------

    def repo_url(self, name: str) -> str:
        """Clone URL of repository ``name`` (``ns/name``, with or without ``.git``), whether it
        exists or not; an invalid name raises :class:`~repository.testing.InvalidArgumentError`.

        Example:
            >>> with LocalGitServer() as server:
            ...     server.repo_url("/ns/m.git") == f"{server.base_url}/ns/m.git"
            True
        """
        return f"{self.base_url}/{normalize_name(name)}.git"

    def repo_path(self, name: str) -> Path:
        """The folder of repository ``name``'s bare git repository, whether it exists or not, for
        tests that look inside (objects, hooks, lock files)."""
        return self.repos.path(name)

    def create_repo(self, name: str, files: Mapping[str, bytes] | None = None) -> str:
        """Create a repository, with a first commit of ``files`` on ``main`` if given; return its
        clone URL. Works whether the server runs or not.

        ``files`` maps relative ``/``-separated paths to contents; files matching ``*.bin`` or of
        1 MiB and more are committed as LFS pointers, their content put in the object store, and
        a ``.gitattributes`` tracks them (unless ``files`` has its own).

        Raises :class:`~repository.testing.RepoExistsError` (a ``FileExistsError``) if it
        exists, :class:`~repository.testing.InvalidArgumentError` for an invalid name or path,
        :class:`~repository.testing.ServerGitError` if git fails.
        """
        for path in files or ():
            clean_path(path)  # refused before the repository exists
        self.repos.create(name)
        if files:
            self.repos.commit_files(
                name, files, lambda oid, data: self.store.ingest(oid, len(data), [data])
            )
        return self.repo_url(name)

    def list_refs(self, name: str) -> dict[str, str]:
        """``{"refs/heads/main": sha, ...}``: every ref of a repository (an empty one has none).

        Raises :class:`~repository.testing.RepoNotFoundError` (a ``KeyError``) if there is no
        such repository.

        Example:
            >>> with LocalGitServer() as server:
            ...     _ = server.create_repo("ns/empty")
            ...     server.list_refs("ns/empty")
            {}
        """
        return self.repos.list_refs(name)

    def lfs_object_path(self, oid: str) -> Path | None:
        """Path of a stored LFS object, or None; only complete, verified objects are stored.

        A malformed oid (not 64 lowercase hex digits), or a server whose objects are in S3 (see
        :meth:`open_lfs_object`), raises :class:`~repository.testing.InvalidArgumentError`.
        """
        if isinstance(self.store, S3Store):
            raise InvalidArgumentError(
                "this server keeps LFS objects in S3, not in files: use open_lfs_object()"
            )
        path = self.store.path(check_oid(oid))
        return path if path.is_file() else None

    def open_lfs_object(self, oid: str) -> IO[bytes] | None:
        """A stored LFS object's bytes as a binary stream (close it), from the local store or
        S3 alike, or None if it is not stored (only verified objects are).

        Example:
            >>> import hashlib
            >>> oid = hashlib.sha256(b"x").hexdigest()
            >>> with LocalGitServer() as server:
            ...     _ = server.create_repo("ns/o", files={"x.bin": b"x"})
            ...     with server.open_lfs_object(oid) as stream:
            ...         stream.read()
            b'x'
        """
        if isinstance(self.store, S3Store):
            return self.store.open(check_oid(oid))
        path = self.lfs_object_path(oid)
        return None if path is None else open(path, "rb")

    def lfs_object_size(self, oid: str) -> int | None:
        """Size of a stored LFS object, or None (see :meth:`lfs_object_path`)."""
        return self.store.size(check_oid(oid))

    def bytes_received(self, oid: str) -> int:
        """Every body byte received for ``oid``: basic PUTs and parts, failed and dropped ones
        included, so a test can tell what a client sent twice (0 with S3: the bytes go there)."""
        return self.lfs.bytes_received(oid)

    # -- HTTP -------------------------------------------------------------------------------

    def wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: latency fault, routing, auth, and every refusal answered as JSON
        ``{"message": ...}`` with its HTTP status; a bug is a 500 whose traceback goes to stderr,
        never to the client.

        Example:
            >>> import io
            >>> statuses = []
            >>> request = {
            ...     "REQUEST_METHOD": "GET",
            ...     "PATH_INFO": "/ns/none.git/info/refs",
            ...     "wsgi.input": io.BytesIO(),
            ... }
            >>> server = LocalGitServer()
            >>> body = server.wsgi(request, lambda status, headers: statuses.append(status))
            >>> statuses, b"".join(body)
            (['404 Not Found'], b'{"message": "repository ns/none not found"}')
            >>> server.stop()
        """
        self._injector.delay()
        path = environ.get("PATH_INFO", "")
        lfs = "/info/lfs/" in path
        try:
            if lfs and self._lfs_proxy is not None:
                status, headers, body = self._lfs_proxy(environ)
            elif lfs:
                route = LfsApi.split_path(path)
                if route is None:
                    raise HttpError(404, f"not an LFS path: {path[:200]}")
                status, headers, body = self.lfs(environ, *route)
            else:
                self.auth.require(environ, lfs=False)
                status, headers, body = self.git(environ)
        except HttpError as error:
            status, headers, body = json_response(
                error.status,
                {"message": error.message},
                error.headers,
                "application/vnd.git-lfs+json" if lfs else "application/json",
            )
        except (ConnectionError, TimeoutError):
            raise  # the client went away (or a fault dropped it): nothing to answer
        except Exception:  # noqa: BLE001 - log for the operator, never a traceback to the client
            traceback.print_exc(file=sys.stderr)
            status, headers, body = json_response(500, {"message": "internal server error"})
        start_response(status, headers)
        return body

    def _storage_wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The storage origin: object transfers only (no git, no batch API), each one recorded."""
        path = environ.get("PATH_INFO", "")
        self.storage_requests.append(
            RecordedRequest(environ["REQUEST_METHOD"], path, environ.get("HTTP_AUTHORIZATION"))
        )
        route = LfsApi.split_path(path) if "/info/lfs/" in path else None
        if route is None or route[1] == "objects/batch":
            status, headers, body = json_response(
                404, {"message": "the storage origin serves object transfers only"}
            )
            start_response(status, headers)
            return body
        return self.wsgi(environ, start_response)

    def __repr__(self) -> str:
        s3 = f", s3_bucket={self.s3_bucket!r}" if self.s3_bucket else ""
        return f"LocalGitServer({self.base_url!r}, data_dir={str(self.data_dir)!r}{s3})"


def _check_s3_options(
    chunk_size: int,
    multipart_threshold: int,
    pending_max_age: float,
    separate_storage: bool,
    lfs_server: str | None,
) -> None:
    """Refuse what S3 would refuse later, or what cannot go with it.

    Example:
        >>> _check_s3_options(1024**2, 8 * 1024**2, 3600, False, None)
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: chunk_size must be 5 MiB to 5 GiB with ...
    """
    if not MIN_PART_SIZE <= chunk_size <= MAX_PART_SIZE:
        raise InvalidArgumentError(
            "chunk_size must be 5 MiB to 5 GiB with s3_bucket: S3 refuses smaller parts (but "
            "the last) and larger ones"
        )
    if multipart_threshold > MAX_SINGLE_PUT:
        raise InvalidArgumentError(
            "multipart_threshold must be at most 5 GiB with s3_bucket: S3 refuses larger PUTs"
        )
    if not pending_max_age > 0:
        raise InvalidArgumentError("s3_pending_max_age must be a number of seconds above 0")
    if separate_storage or lfs_server:
        raise InvalidArgumentError(
            "separate_storage and lfs_server cannot go with s3_bucket: S3 is the storage"
        )
