"""Small WSGI helpers shared by the git and LFS apps: JSON errors, streamed request bodies.

Example:
    >>> status, headers, body = json_response(404, {"message": "not found"})
    >>> status
    '404 Not Found'
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from .errors import HttpError
from .faults import Throttle

CHUNK = 1 << 20  # 1 MiB reads: large enough that syscalls, not Python, set the pace
LFS_JSON = "application/vnd.git-lfs+json"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Response = tuple[str, list[tuple[str, str]], Iterable[bytes]]


class ConnectionDropped(ConnectionAbortedError):
    """Raised after the server closed a connection on purpose; the WSGI server ignores it.

    Example:
        >>> issubclass(ConnectionDropped, ConnectionError)
        True
    """


def status_line(code: int) -> str:
    """``"404 Not Found"`` for 404.

    Example:
        >>> status_line(200)
        '200 OK'
    """
    return f"{code} {HTTPStatus(code).phrase}"


def json_response(
    code: int,
    payload: Any,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = LFS_JSON,
) -> Response:
    """A complete JSON response as ``(status, headers, body)``.

    Example:
        >>> json_response(200, {})[2]
        [b'{}']
    """
    body = json.dumps(payload).encode()
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    return status_line(code), all_headers + (headers or []), [body]


def read_json(environ: Environ, limit: int = 16 << 20) -> Any:
    """Parse the request body as JSON; a 4xx :class:`HttpError` if it is too large or malformed.

    Example:
        >>> import io
        >>> read_json({"CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")})
        {}
    """
    length = content_length(environ)
    if length is None:
        data = b"".join(body_chunks(environ, None, limit=limit + 1))
    elif length > limit:
        raise HttpError(413, f"JSON body over {limit} bytes")
    else:
        data = b"".join(body_chunks(environ, length))
    if len(data) > limit:
        raise HttpError(413, f"JSON body over {limit} bytes")
    try:
        return json.loads(data)
    except ValueError as error:
        raise HttpError(400, f"malformed JSON: {error}") from None


def content_length(environ: Environ) -> int | None:
    """The request's Content-Length, or None for a chunked body; 4xx if missing or invalid.

    Example:
        >>> content_length({"CONTENT_LENGTH": "12"})
        12
    """
    if environ.get("wsgi.input_terminated"):
        return None
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw:
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return 0
        raise HttpError(411, "Content-Length required")
    if not raw.isdigit():
        raise HttpError(400, f"invalid Content-Length {raw!r}")
    return int(raw)


def body_chunks(
    environ: Environ,
    length: int | None,
    *,
    limit: int | None = None,
    throttle: Throttle | None = None,
    stop_after: int | None = None,
) -> Iterator[bytes]:
    """Yield the request body in blocks of at most 1 MiB, read with ``read(size)``, all that
    WSGI (PEP 3333) promises of ``wsgi.input`` (gunicorn's has no ``readinto``).

    ``length`` None reads to the end (chunked bodies); ``limit`` stops reading early;
    ``stop_after`` ends the stream after that many bytes (used to drop a body halfway).
    A body that ends before ``length`` raises :class:`ConnectionError`.

    Example:
        >>> import io
        >>> env = {"wsgi.input": io.BytesIO(b"abc")}
        >>> b"".join(body_chunks(env, 3))
        b'abc'
    """
    stream = environ["wsgi.input"]
    size = CHUNK
    if throttle is not None and throttle.rate:
        size = max(16 << 10, min(CHUNK, int(throttle.rate / 20)))  # smooth low rates
    remaining = length
    done = 0
    while remaining is None or remaining > 0:
        want = size if remaining is None else min(size, remaining)
        if limit is not None:
            want = min(want, limit - done)
        if stop_after is not None:
            want = min(want, stop_after - done)
        if want <= 0:
            return
        block: bytes = stream.read(want)
        n = len(block)
        if not n:
            if remaining is None:
                return
            raise ConnectionError(f"request body ended after {done} of {length} bytes")
        done += n
        if remaining is not None:
            remaining -= n
        if throttle is not None:
            throttle.sent(n)
        yield block


def drop_connection(environ: Environ) -> None:
    """Close the client's connection now and abort the request (fault injection): raises
    :class:`ConnectionDropped`, which the WSGI server takes for a client gone away.

    Example:
        >>> drop_connection({})  # no socket here: only the exception
        Traceback (most recent call last):
        ...
        repository.testing._http.ConnectionDropped: connection dropped by fault injection
    """
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionDropped("connection dropped by fault injection")
