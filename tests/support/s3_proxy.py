"""A recording proxy in front of SeaweedFS that refuses what AWS refuses and SeaweedFS forgives.

SeaweedFS checks SigV4 and expiry, but accepts an ``Authorization`` header beside presigned query
auth, unsigned ``x-amz-*`` headers and chunked bodies on presigned requests; AWS refuses all
three (400, 403, 411). This proxy answers them as AWS would, records every request (so a test
can look at what a client really sent), and can cap each body's rate (to kill a push midway).
The ``Host`` header goes upstream as it came: the signature covers it.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BLOCK = 256 * 1024


@dataclass
class S3Request:
    """One request the proxy received, and the answer it gave."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    body_bytes: int = 0
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # kept for the server's own small requests (CompleteMultipartUpload)

    @property
    def presigned(self) -> bool:
        return "X-Amz-Signature" in self.query

    @property
    def part_number(self) -> int | None:
        number = self.query.get("partNumber")
        return int(number) if number else None

    def unsigned_amz_headers(self) -> list[str]:
        signed = set(self.query.get("X-Amz-SignedHeaders", "").split(";"))
        return sorted(h for h in self.headers if h.startswith("x-amz-") and h not in signed)


class StrictS3Proxy(ThreadingHTTPServer):
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); ``endpoint`` is its own URL."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[S3Request] = []
        self.bandwidth: float | None = None  # body bytes per second, per request
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def presigned(self) -> list[S3Request]:
        """The requests that came with presigned URLs: the clients', not the server's own."""
        with self.lock:
            return [r for r in self.requests if r.presigned]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StrictS3Proxy

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

    def _proxy(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = S3Request(self.command, url.path, query, headers)
        with self.server.lock:
            self.server.requests.append(record)
        refusal = self._refusal(record)
        if refusal is not None:
            self.close_connection = True
            self._answer(record, *refusal)
            return
        length = int(headers.get("content-length") or 0)
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            self._forward_body(record, upstream, length)
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        record.status = response.status
        record.response_headers = {k.lower(): v for k, v in response.getheaders()}
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward_body(self, record: S3Request, upstream: http.client.HTTPConnection, length: int):
        start, sent = time.monotonic(), 0
        keep = not record.presigned and length <= 1 << 20
        while sent < length:
            block = self.rfile.read(min(BLOCK, length - sent))
            if not block:
                raise ConnectionError("client body ended early")
            upstream.send(block)
            sent += len(block)
            record.body_bytes = sent
            if keep:
                record.body += block
            rate = self.server.bandwidth
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

    @staticmethod
    def _refusal(record: S3Request) -> tuple[int, str, str] | None:
        if not record.presigned:
            return None
        if "authorization" in record.headers:
            return 400, "InvalidArgument", "Only one auth mechanism allowed"
        if unsigned := record.unsigned_amz_headers():
            return (
                403,
                "AccessDenied",
                f"There were headers present in the request which were not signed: {unsigned}",
            )
        if record.method == "PUT" and "content-length" not in record.headers:
            return 411, "MissingContentLength", "You must provide the Content-Length HTTP header."
        return None

    def _answer(self, record: S3Request, status: int, code: str, message: str) -> None:
        record.status = status
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
