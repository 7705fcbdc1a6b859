"""A tiny real S3-style multipart server on 127.0.0.1 for the agent's unit tests (no tests here).

Parts are PUT to /part/<n>, answered with an ETag; POST /complete assembles them in the order of
the ETags it is given. GET /object serves the last assembled object, with or without Range.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    fail_every_nth_put: int = 0  # 503 on every nth part PUT
    always_fail_part: int | None = None  # this part always gets `always_fail_status`
    always_fail_status: int = 503
    drop_every_nth_put: int = 0  # close the connection after reading half the body
    retry_after: str | None = None
    honour_range: bool = True
    drop_every_nth_get: int = 0  # close a GET body half way
    slow_part: int | None = None  # this part's body is read at about 4 MB/s


@dataclass
class State:
    parts: dict[int, bytes] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    put_count: int = 0
    get_count: int = 0
    bytes_received: int = 0
    concurrent: int = 0
    max_concurrent: int = 0
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    completions: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PartServer

    def log_message(self, *args: object) -> None:
        pass

    def do_PUT(self) -> None:
        state, behaviour = self.server.state, self.server.behaviour
        with state.lock:
            state.put_count += 1
            count = state.put_count
            state.concurrent += 1
            state.max_concurrent = max(state.max_concurrent, state.concurrent)
            state.headers_seen.append(dict(self.headers))
        try:
            length = int(self.headers["Content-Length"])
            number = int(self.path.rsplit("/", 1)[1].split("?")[0])
            if behaviour.drop_every_nth_put and count % behaviour.drop_every_nth_put == 0:
                self.rfile.read(length // 2)
                with state.lock:
                    state.bytes_received += length // 2
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if number == behaviour.slow_part:
                body = b""
                while len(body) < length:
                    piece = self.rfile.read(min(16384, length - len(body)))
                    if not piece:
                        return
                    body += piece
                    time.sleep(0.004)
            else:
                body = self.rfile.read(length)
            with state.lock:
                state.bytes_received += len(body)
            if number == behaviour.always_fail_part:
                self._reply(
                    behaviour.always_fail_status,
                    json.dumps({"message": f"part {number} refused"}).encode(),
                )
            elif behaviour.fail_every_nth_put and count % behaviour.fail_every_nth_put == 0:
                self._reply(
                    503,
                    b"try again",
                    {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {},
                )
            else:
                with state.lock:
                    state.parts[number] = body
                self._reply(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        finally:
            with state.lock:
                state.concurrent -= 1

    def do_POST(self) -> None:
        state = self.server.state
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state.completions.append(request)
        data = b""
        for number, part in enumerate(request["parts"], 1):
            body = state.parts.get(part["partNumber"], b"")
            if part["partNumber"] != number or part["etag"] != f'"{hashlib.md5(body).hexdigest()}"':
                self._reply(400, json.dumps({"message": f"bad part {number}"}).encode())
                return
            data += body
        if hashlib.sha256(data).hexdigest() != request["oid"]:
            self._reply(422, b'{"message": "sha256 mismatch"}')
            return
        state.objects[request["oid"]] = data
        self._reply(200, b"{}")

    def do_GET(self) -> None:
        state, behaviour = self.server.state, self.server.behaviour
        data = state.objects[self.path.rsplit("/", 1)[1].split("?")[0]]
        with state.lock:
            state.get_count += 1
            count = state.get_count
        start, end, status = 0, len(data) - 1, 200
        if behaviour.honour_range and self.headers.get("Range"):
            first, last = self.headers["Range"].split("=")[1].split("-")
            start, end, status = int(first), int(last), 206
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if (
            behaviour.drop_every_nth_get
            and count % behaviour.drop_every_nth_get == 0
            and len(body) > 1
        ):
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class PartServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = State()
        self.behaviour = Behaviour()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def action(self, size: int, chunk_size: int) -> dict:
        """The upload action a multipart server would hand out; keys deliberately unordered."""
        count = max(1, -(-size // chunk_size))
        header = {
            f"{n:05d}": f"{self.url}/part/{n}?X-Amz-Signature=secret{n}"
            for n in reversed(range(1, count + 1))
        }
        return {
            "href": f"{self.url}/complete?token=secret",
            "header": {"chunk_size": str(chunk_size), **header},
        }
