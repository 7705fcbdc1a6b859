"""The HTTP server under LocalGitServer: Werkzeug's threaded WSGI server, on a socket bound here.

The only module that imports Werkzeug, the ``lfsrepo[server]`` extra: importing
``repository.testing`` or loading its pytest plugin does not load it; starting a server does.

Example:
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Length", "2")])
    ...     return [b"hi"]
    >>> import urllib.request
    >>> httpd, thread = serve("127.0.0.1", 0, app)
    >>> urllib.request.urlopen(f"http://127.0.0.1:{httpd.port}/").read()
    b'hi'
    >>> close(httpd, thread)
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import (
    LISTEN_QUEUE,
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from .errors import ListenError

# How often the serving thread checks whether it is to stop: the longest close() waits for it.
STOP_POLL_S = 0.05

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its per-request access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def serve(host: str, port: int, app: WsgiApp) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve ``app`` on ``host:port`` (0: any free port, then ``httpd.port`` tells which) from a
    background thread, one thread per request. An address the server cannot listen on is a
    :class:`ListenError`: Werkzeug binding it itself would print the error and exit the process."""
    family = select_address_family(host, port)
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(get_sockaddr(host, port, family))
        listener.listen(LISTEN_QUEUE)
        httpd = make_server(
            host,
            port,
            app,
            threaded=True,
            request_handler=_QuietHandler,
            fd=listener.fileno(),  # Werkzeug serves a duplicate of it
        )
    except OSError as error:
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    finally:
        listener.close()
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": STOP_POLL_S},
        name="lfsrepo-server",
        daemon=True,
    )
    thread.start()
    return httpd, thread


def close(httpd: BaseWSGIServer, thread: threading.Thread) -> None:
    """Stop serving, wait for the serving thread, and close the socket. Requests in progress
    finish in their own threads."""
    httpd.shutdown()
    httpd.server_close()
    thread.join()
