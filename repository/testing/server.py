"""LocalGitServer: git smart HTTP and the Git LFS API on one loopback port, in background threads.

Example:
    >>> from repository.testing import LocalGitServer
    >>> with LocalGitServer() as server:  # doctest: +SKIP
    ...     url = server.create_repo("ns/demo", files={"README.md": b"hi", "w.bin": b"x" * 10})
    ...     subprocess.run(["git", "clone", url])
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ._http import Environ, HttpError, StartResponse, json_response
from .auth import Auth
from .faults import FaultInjector, Faults
from .git_http import GitHttpApp
from .lfs_api import LfsApi
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


class LocalGitServer:
    """A real git + Git LFS server on loopback for tests, demos and users' own test suites.

    ``data_dir=None`` uses a temporary directory removed on :meth:`stop`. ``faults`` can be
    replaced while the server runs (``server.faults = Faults(...)``), which resets its counters.

    Example:
        >>> with LocalGitServer(multipart_threshold=8 * 1024**2) as server:  # doctest: +SKIP
        ...     server.create_repo("ns/name")
        'http://127.0.0.1:40123/ns/name.git'
    """

    def __init__(
        self, data_dir: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 0,
        token: str | None = None, multipart_threshold: int = DEFAULT_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE, auto_create: bool = True,
        faults: Faults | None = None,
    ) -> None:
        if chunk_size <= 0 or multipart_threshold < 0:
            raise ValueError("chunk_size must be positive and multipart_threshold >= 0")
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(
            tempfile.mkdtemp(prefix="lfsrepo-server-"))
        self.data_dir = self.data_dir.resolve()
        self.host, self.port, self.token = host, port, token
        self.auth = Auth(token)
        self.repos = RepoStore(self.data_dir / "repos")
        self.store = ObjectStore(self.data_dir / "lfs")
        self._injector = FaultInjector(faults or Faults())
        self.git = GitHttpApp(self.repos, auto_create=auto_create, injector=lambda: self._injector)
        self.lfs = LfsApi(
            self.store, self.repos, self.auth, multipart_threshold=multipart_threshold,
            chunk_size=chunk_size, auto_create=auto_create, injector=lambda: self._injector,
        )
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread; returns self.

        Example:
            >>> server = LocalGitServer().start()  # doctest: +SKIP
        """
        if self._httpd is not None:
            return self
        self._httpd = make_server(self.host, self.port, self.wsgi, threaded=True,
                                  request_handler=_QuietHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lfsrepo-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, and remove the data dir if it was temporary.

        Example:
            >>> LocalGitServer().stop()
        """
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
            self.repos.commit_files(name, files, lambda oid, data: self.store.ingest(
                oid, len(data), [data]))
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
            if lfs:
                route = LfsApi.split_path(path)
                if route is None:
                    raise HttpError(404, f"not an LFS path: {path[:200]}")
                status, headers, body = self.lfs(environ, *route)
            else:
                self.auth.require(environ, lfs=False)
                status, headers, body = self.git(environ)
        except HttpError as error:
            status, headers, body = json_response(
                error.status, {"message": error.message}, error.headers,
                "application/vnd.git-lfs+json" if lfs else "application/json")
        except (ConnectionError, TimeoutError):
            raise  # the client went away (or a fault dropped it): nothing to answer
        except Exception:  # noqa: BLE001 - log for the operator, never a traceback to the client
            traceback.print_exc(file=sys.stderr)
            status, headers, body = json_response(500, {"message": "internal server error"})
        start_response(status, headers)
        return body

    def __repr__(self) -> str:
        return f"LocalGitServer({self.base_url!r}, data_dir={str(self.data_dir)!r})"
