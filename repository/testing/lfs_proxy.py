"""Forwarding the Git LFS API to another LFS server, so that it sits behind the local git server.

Requests go through as they came: method, path, query, every header (``Host`` and
``Authorization`` included, so the other server builds its action URLs for this origin, as forges
that keep their object URLs on the git host do), and bodies streamed both ways.

Example:
    >>> LfsProxy("http://127.0.0.1:9000").upstream
    ('127.0.0.1', 9000)
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator

from ._http import CHUNK, Environ, Response, body_chunks, content_length
from .errors import HttpError, InvalidArgumentError

# Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_TIMEOUT_S = 300


class LfsProxy:
    """Forwards LFS requests to ``upstream`` (``http://host:port``, plain HTTP on loopback).

    An upstream that cannot be reached, or stays silent for ``_TIMEOUT_S`` before it answers,
    is a 502.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = parse_upstream(upstream)

    def __call__(self, environ: Environ) -> Response:
        """Forward one request; the response streams back as it arrives."""
        target = (
            environ.get("RAW_URI")
            or environ.get("REQUEST_URI")
            or urllib.parse.quote(environ.get("PATH_INFO", ""))
            + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        )
        length = content_length(environ)  # None: a chunked body, forwarded chunked
        connection = http.client.HTTPConnection(*self.upstream, timeout=_TIMEOUT_S)
        try:
            connection.putrequest(
                environ["REQUEST_METHOD"], target, skip_host=True, skip_accept_encoding=True
            )
            for name, value in _request_headers(environ):
                connection.putheader(name, value)
            if length is None:
                connection.putheader("Transfer-Encoding", "chunked")
            elif environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
                connection.putheader("Content-Length", str(length))
            connection.endheaders()
            for chunk in body_chunks(environ, length):
                connection.send(
                    f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if length is None else chunk
                )
            if length is None:
                connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
        except OSError as error:
            connection.close()
            raise HttpError(
                502,
                f"the LFS server at {self.upstream[0]}:{self.upstream[1]} did not answer: {error}",
            ) from None
        headers = [
            (name, value)
            for name, value in response.getheaders()
            if name.lower() not in _HOP_BY_HOP
        ]
        return f"{response.status} {response.reason}", headers, _stream(response, connection)


def parse_upstream(url: str) -> tuple[str, int]:
    """(host, port) of ``http://host:port``, else :class:`InvalidArgumentError` (a ValueError)
    saying what is wrong: only plain HTTP, without a path, is forwarded.

    Example:
        >>> parse_upstream("http://127.0.0.1:9000/")
        ('127.0.0.1', 9000)
    """
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or port < 0:
        raise InvalidArgumentError(f"invalid LFS server {url!r}: use http://host:port")
    return parts.hostname, port


def _request_headers(environ: Environ) -> Iterator[tuple[str, str]]:
    """The request's headers as they came (a repeated header arrives joined, as WSGI has it)."""
    if environ.get("CONTENT_TYPE"):
        yield "Content-Type", environ["CONTENT_TYPE"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                yield name, value


def _stream(
    response: http.client.HTTPResponse, connection: http.client.HTTPConnection
) -> Iterator[bytes]:
    try:
        while chunk := response.read(CHUNK):
            yield chunk
    finally:
        connection.close()
