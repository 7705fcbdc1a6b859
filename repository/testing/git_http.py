"""Git smart HTTP: a WSGI app that runs git's own ``git http-backend`` (CGI), bodies streamed.

The request body is fed to the CGI's stdin from a thread while its stdout is streamed back, so a
push of any size passes through in 1 MiB pieces and never sits in memory.

Example:
    >>> GitHttpApp.split_path("/ns/name.git/info/refs")
    ('ns/name', '/info/refs')
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import threading
from collections.abc import Callable, Iterator

from ._http import CHUNK, Environ, Response, body_chunks, content_length, status_line
from .errors import HttpError, InvalidArgumentError
from .faults import FaultInjector, Faults
from .repos import RepoStore, normalize_name

GIT_PATH_RE = re.compile(
    r"(?P<repo>/.+?)(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))"
)

# How long an error answer waits for the thread feeding the request body to the backend.
FEEDER_JOIN_TIMEOUT_S = 1.0


class GitHttpApp:
    """Serves clone, fetch and push for the repositories of a :class:`RepoStore`.

    ``auto_create``: a push to a repository that does not exist creates it (clone and fetch
    still get a 404). ``injector`` returns the fault setting in force for each request.
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

    @staticmethod
    def split_path(path: str) -> tuple[str, str]:
        """``(repo name, git sub-path)`` of a request path: a 404 :class:`HttpError` if it is no
        git path, a 400 if the name is invalid.

        Example:
            >>> GitHttpApp.split_path("/a/b/git-upload-pack")
            ('a/b', '/git-upload-pack')
        """
        match = GIT_PATH_RE.fullmatch(path)
        if not match:
            raise HttpError(404, f"not a git path: {path[:200]}")
        try:
            return normalize_name(match["repo"]), match["rest"]
        except InvalidArgumentError as error:
            raise HttpError(400, str(error)) from None

    def __call__(self, environ: Environ) -> Response:
        """Handle one git request and return ``(status, headers, streamed body)``; the backend
        process ends with the body's iteration (or is killed if the client goes away)."""
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
        cgi = {
            "GIT_PROJECT_ROOT": str(self.repos.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": "1g",
            "PATH_INFO": f"/{name}.git{rest}",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "REMOTE_USER": "lfsrepo",
        }
        if length is not None:
            cgi["CONTENT_LENGTH"] = str(length)
        for header in ("HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL"):
            if header in environ:
                cgi[header] = environ[header]
        git = self.repos.git
        # The one git started outside GitRunner.run/popen, with the runner's command and
        # environment: the request body is streamed into its stdin (popen gives git none), and it
        # stays in the server's process group, so that Ctrl-C on `lfsrepo serve` stops it too,
        # and killing it alone lets the receive-pack it started clean up on end of input. No
        # timeout: it lives as long as its request, which a push of many GB makes long; a client
        # that goes away ends it (see _feed and _stream_output).
        proc = subprocess.Popen(
            git.command(["http-backend"]),
            env=git.environment(cgi),
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
        stdout = proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # what Popen gives with the default buffering
        try:
            status, headers = _read_cgi_headers(stdout)
        except BaseException:
            # No response (a 502, mostly), so no stream will reap the backend: do it here.
            proc.kill()
            stdout.close()
            proc.wait()
            # Writes to the dead backend fail at once; a feeder still reading a slow client's body
            # is left to end with that connection rather than hold up the answer.
            feeder.join(timeout=FEEDER_JOIN_TIMEOUT_S)
            raise
        return status, headers, _stream_output(proc, stdout, feeder, injector)


def _feed(proc: subprocess.Popen[bytes], chunks: Iterator[bytes]) -> None:
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
    except (OSError, ValueError):
        proc.kill()  # client went away or backend exited: nothing left to do with the request
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _read_cgi_headers(stdout: io.BufferedReader) -> tuple[str, list[tuple[str, str]]]:
    status = status_line(200)
    headers: list[tuple[str, str]] = []
    while True:
        raw = stdout.readline()
        if not raw:
            raise HttpError(502, "git http-backend ended without a response")
        line = raw.rstrip(b"\r\n").decode("latin-1")
        if not line:
            return status, headers
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = value.strip()
        else:
            headers.append((key.strip(), value.strip()))


def _stream_output(
    proc: subprocess.Popen[bytes],
    stdout: io.BufferedReader,
    feeder: threading.Thread,
    injector: FaultInjector,
) -> Iterator[bytes]:
    throttle = injector.throttle()
    finished = False
    try:
        while chunk := stdout.read1(CHUNK):
            throttle.sent(len(chunk))
            yield chunk
        finished = True
    finally:
        if not finished:
            proc.kill()  # the client went away mid-response
        stdout.close()
        proc.wait()
        if finished:
            feeder.join()
