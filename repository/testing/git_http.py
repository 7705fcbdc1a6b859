"""Git smart HTTP: a WSGI app that runs git's own ``git http-backend`` (CGI), bodies streamed.

The request body is fed to the CGI's stdin from a thread while its stdout is streamed back, so a
push of any size passes through in 1 MiB pieces and never sits in memory.

Example:
    >>> import tempfile, pathlib
    >>> from repository.testing.repos import RepoStore
    >>> app = GitHttpApp(RepoStore(pathlib.Path(tempfile.mkdtemp())), auto_create=True)
    >>> app.split_path("/ns/name.git/info/refs")
    ('ns/name', '/info/refs')
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
from collections.abc import Callable, Iterator

from ._http import CHUNK, Environ, HttpError, Response, body_chunks, content_length, status_line
from .faults import FaultInjector, Faults
from .repos import RepoStore, git_env, normalize_name

GIT_PATH_RE = re.compile(
    r"(?P<repo>/.+?)(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))"
)

# How long an error answer waits for the thread feeding the request body to the backend.
FEEDER_JOIN_TIMEOUT_S = 1.0


class GitHttpApp:
    """Serves clone, fetch and push for the repositories of a :class:`RepoStore`.

    Example:
        >>> import tempfile, pathlib
        >>> from repository.testing.repos import RepoStore
        >>> GitHttpApp(RepoStore(pathlib.Path(tempfile.mkdtemp())), auto_create=False).auto_create
        False
    """

    def __init__(
        self,
        repos: RepoStore,
        *,
        auto_create: bool,
        injector: Callable[[], FaultInjector] = lambda: FaultInjector(Faults()),
    ) -> None:
        self.repos = repos
        self.auto_create = auto_create
        self.injector = injector

    def split_path(self, path: str) -> tuple[str, str]:
        """``(repo name, git sub-path)`` of a request path; 404 if it is no git path.

        Example:
            >>> GitHttpApp.split_path(None, "/a/b/git-upload-pack")  # type: ignore[arg-type]
            ('a/b', '/git-upload-pack')
        """
        match = GIT_PATH_RE.fullmatch(path)
        if not match:
            raise HttpError(404, f"not a git path: {path[:200]}")
        try:
            return normalize_name(match["repo"]), match["rest"]
        except ValueError as error:
            raise HttpError(400, str(error)) from None

    def __call__(self, environ: Environ) -> Response:
        """Handle one git request and return ``(status, headers, streamed body)``.

        Example:
            >>> app = GitHttpApp(None, auto_create=False)  # doctest: +SKIP
        """
        name, rest = self.split_path(environ.get("PATH_INFO", ""))
        pushing = rest == "/git-receive-pack" or (
            rest == "/info/refs" and "service=git-receive-pack" in environ.get("QUERY_STRING", "")
        )
        if not self.repos.exists(name):
            if not (pushing and self.auto_create):
                raise HttpError(404, f"repository {name} not found")
            self.repos.create(name, exist_ok=True)
        return self._run_backend(environ, name, rest)

    def _run_backend(self, environ: Environ, name: str, rest: str) -> Response:
        length = content_length(environ) if environ["REQUEST_METHOD"] == "POST" else 0
        env = git_env()
        env.update(
            GIT_PROJECT_ROOT=str(self.repos.root),
            GIT_HTTP_EXPORT_ALL="1",
            GIT_HTTP_MAX_REQUEST_BUFFER="1g",
            PATH_INFO=f"/{name}.git{rest}",
            REQUEST_METHOD=environ["REQUEST_METHOD"],
            QUERY_STRING=environ.get("QUERY_STRING", ""),
            CONTENT_TYPE=environ.get("CONTENT_TYPE", ""),
            REMOTE_ADDR=environ.get("REMOTE_ADDR", "127.0.0.1"),
            REMOTE_USER="lfsrepo",
        )
        if length is not None:
            env["CONTENT_LENGTH"] = str(length)
        for header in ("HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL"):
            if header in environ:
                env[header] = environ[header]
        proc = subprocess.Popen(
            ["git", "http-backend"],
            env=env,
            cwd=self.repos.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        injector = self.injector()
        feeder = threading.Thread(
            target=_feed,
            args=(proc, body_chunks(environ, length, throttle=injector.throttle())),
            daemon=True,
        )
        feeder.start()
        assert proc.stdout is not None
        try:
            status, headers = _read_cgi_headers(proc.stdout)
        except BaseException:
            # No response (a 502, mostly), so no stream will reap the backend: do it here.
            proc.kill()
            proc.stdout.close()
            proc.wait()
            # Writes to the dead backend fail at once; a feeder still reading a slow client's body
            # is left to end with that connection rather than hold up the answer.
            feeder.join(timeout=FEEDER_JOIN_TIMEOUT_S)
            raise
        return status, headers, _stream_output(proc, feeder, injector)


def _feed(proc: subprocess.Popen[bytes], chunks: Iterator[memoryview]) -> None:
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
    except (OSError, ValueError):
        proc.kill()  # client went away or backend exited: nothing left to do with the request
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _read_cgi_headers(stdout: object) -> tuple[str, list[tuple[str, str]]]:
    status = status_line(200)
    headers: list[tuple[str, str]] = []
    while True:
        line = stdout.readline()  # type: ignore[attr-defined]
        if not line:
            raise HttpError(502, "git http-backend ended without a response")
        line = line.rstrip(b"\r\n").decode("latin-1")
        if not line:
            return status, headers
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = value.strip()
        else:
            headers.append((key.strip(), value.strip()))


def _stream_output(
    proc: subprocess.Popen[bytes], feeder: threading.Thread, injector: FaultInjector
) -> Iterator[bytes]:
    assert proc.stdout is not None
    throttle = injector.throttle()
    finished = False
    try:
        while chunk := proc.stdout.read1(CHUNK):
            throttle.sent(len(chunk))
            yield chunk
        finished = True
    finally:
        if not finished:
            proc.kill()  # the client went away mid-response
        proc.stdout.close()
        proc.wait()
        if finished:
            feeder.join()
