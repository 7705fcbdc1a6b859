"""LocalGitServer: git smart HTTP and the Git LFS API on one loopback port, in background threads.

Example:
    >>> from repository.testing import LocalGitServer
    >>> with LocalGitServer() as server:  # doctest: +SKIP
    ...     url = server.create_repo("ns/demo", files={"README.md": b"hi", "w.bin": b"x" * 10})
    ...     subprocess.run(["git", "clone", url])
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ._http import Environ, HttpError, StartResponse, json_response
from .auth import Auth
from .faults import FaultInjector, Faults
from .git_http import GitHttpApp
from .lfs_api import LfsApi
from .lfs_proxy import LfsProxy
from .repos import RepoStore, normalize_name
from .storage import ObjectStore, check_oid

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_THRESHOLD = 5 * 1024**3
DEFAULT_CHUNK_SIZE = 64 * 1024**2


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its per-request access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """A request the storage origin received: what a test may check about credentials.

    Example:
        >>> RecordedRequest("PUT", "/ns/r.git/info/lfs/objects/ab", None).authorization is None
        True
    """

    method: str
    path: str
    authorization: str | None


class LocalGitServer:
    """A real git + Git LFS server on loopback for tests, demos and users' own test suites.

    ``data_dir=None`` uses a temporary directory removed on :meth:`stop`. ``faults`` can be
    replaced while the server runs (``server.faults = Faults(...)``), which resets its counters.

    Two switches model servers other than the Hub: ``action_authorization`` gives basic transfer
    and verify actions their own ``Authorization`` header, as giftless, GitLab and Gitea do (a
    client that doubles or replaces it gets a 403); ``separate_storage`` serves object transfers
    from a second port, another origin as an object store would be, and records what each request
    there carried in :attr:`storage_requests`. ``lfs_server="http://127.0.0.1:PORT"`` puts another
    LFS server (giftless, say) behind this one: its API is forwarded as is, on this origin.

    Example:
        >>> with LocalGitServer(multipart_threshold=8 * 1024**2) as server:  # doctest: +SKIP
        ...     server.create_repo("ns/name")
        'http://127.0.0.1:40123/ns/name.git'
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
    ) -> None:
        if chunk_size <= 0 or multipart_threshold < 0:
            raise ValueError("chunk_size must be positive and multipart_threshold >= 0")
        self._own_dir = data_dir is None
        self.data_dir = (
            Path(data_dir)
            if data_dir is not None
            else Path(tempfile.mkdtemp(prefix="lfsrepo-server-"))
        )
        self.data_dir = self.data_dir.resolve()
        self.host, self.port, self.token = host, port, token
        self.auth = Auth(token)
        self.repos = RepoStore(self.data_dir / "repos")
        self.store = ObjectStore(self.data_dir / "lfs")
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
        self._lfs_proxy = LfsProxy(lfs_server) if lfs_server else None
        self.storage_requests: list[RecordedRequest] = []
        self._servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in background threads; returns self.

        Example:
            >>> server = LocalGitServer().start()  # doctest: +SKIP
        """
        if self._servers:
            return self
        self.port = self._serve(self.port, self.wsgi)
        if self.separate_storage:
            storage_port = self._serve(0, self._storage_wsgi)
            self.lfs.storage_url = f"http://{self._url_host}:{storage_port}"
        return self

    def _serve(self, port: int, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> int:
        httpd = make_server(self.host, port, app, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, name="lfsrepo-server", daemon=True)
        thread.start()
        self._servers.append((httpd, thread))
        return httpd.server_port

    def stop(self) -> None:
        """Stop serving, close the sockets, and remove the data dir if it was temporary.

        Example:
            >>> LocalGitServer().stop()
        """
        for httpd, thread in self._servers:
            httpd.shutdown()
            httpd.server_close()
            thread.join()
        self._servers = []
        self.lfs.storage_url = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ----------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The fault injection in force; assign a new :class:`Faults` to change it.

        Example:
            >>> LocalGitServer().faults.active
            False
        """
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector = FaultInjector(faults)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server.

        Example:
            >>> LocalGitServer(port=8123).base_url
            'http://127.0.0.1:8123'
        """
        return f"http://{self._url_host}:{self.port}"

    @property
    def storage_url(self) -> str | None:
        """``http://HOST:PORT`` of the storage origin (``separate_storage``), once started.

        Example:
            >>> LocalGitServer(separate_storage=True).storage_url is None
            True
        """
        return self.lfs.storage_url

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    # -- repositories and objects -----------------------------------------------------------

    def repo_url(self, name: str) -> str:
        """Clone URL of repository ``name`` (``ns/name``).

        Example:
            >>> LocalGitServer(port=8123).repo_url("ns/m")
            'http://127.0.0.1:8123/ns/m.git'
        """
        return f"{self.base_url}/{normalize_name(name)}.git"

    def create_repo(self, name: str, files: Mapping[str, bytes] | None = None) -> str:
        """Create a repository, optionally with a first commit of ``files``; return its URL.

        Files matching ``*.bin`` or of 1 MiB and more are stored through LFS.

        Example:
            >>> with LocalGitServer() as s:  # doctest: +SKIP
            ...     s.create_repo("ns/m", {"a.txt": b"a", "w.bin": b"\\0" * 10})
        """
        self.repos.create(name)
        if files:
            self.repos.commit_files(
                name, files, lambda oid, data: self.store.ingest(oid, len(data), [data])
            )
        return self.repo_url(name)

    def list_refs(self, name: str) -> dict[str, str]:
        """``{"refs/heads/main": sha, ...}`` of a repository; KeyError if it does not exist.

        Example:
            >>> with LocalGitServer() as s:  # doctest: +SKIP
            ...     s.list_refs("ns/m")
        """
        return self.repos.list_refs(name)

    def lfs_object_path(self, oid: str) -> Path | None:
        """Path of a stored LFS object, or None.

        Example:
            >>> LocalGitServer().lfs_object_path("0" * 64) is None
            True
        """
        path = self.store.path(check_oid(oid))
        return path if path.is_file() else None

    def lfs_object_size(self, oid: str) -> int | None:
        """Size of a stored LFS object, or None.

        Example:
            >>> LocalGitServer().lfs_object_size("0" * 64) is None
            True
        """
        return self.store.size(check_oid(oid))

    def bytes_received(self, oid: str) -> int:
        """Body bytes received for ``oid`` (basic PUTs and parts, failed and dropped included).

        Example:
            >>> LocalGitServer().bytes_received("0" * 64)
            0
        """
        return self.lfs.bytes_received(oid)

    # -- HTTP -------------------------------------------------------------------------------

    def wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point: latency fault, routing, auth, and errors as JSON.

        Example:
            >>> LocalGitServer().wsgi  # doctest: +ELLIPSIS
            <bound method LocalGitServer.wsgi of ...>
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
        return f"LocalGitServer({self.base_url!r}, data_dir={str(self.data_dir)!r})"
