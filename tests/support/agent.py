"""What the agent tests share: clones wired to the agent, the agent command as git-lfs runs it,
and a tiny real S3-style multipart server for the unit tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lfs_agent import enable_largefiles
from lfs_agent.setup import agent_settings
from repository.testing import Faults, LocalGitServer
from tests.support.git import git

MiB = 1024**2
INIT = {"event": "init", "operation": "upload", "concurrent": False, "concurrenttransfers": 8}


def agent_clone(server: LocalGitServer, tmp_path: Path, test_name: str) -> Path:
    """A plain git clone of a new repository on ``server``, ``*.bin`` through LFS and the agent;
    the server's faults are cleared."""
    name = f"agent/{test_name.replace('[', '-').replace(']', '')}"
    url = server.create_repo(name)
    path = tmp_path / "clone"
    git(tmp_path, "clone", "-q", url, str(path))
    git(path, "lfs", "track", "*.bin")
    enable_largefiles(path)
    server.faults = Faults()
    return path


def configure_agent(clone: Path, python: str) -> None:
    """Write the agent config of ``clone`` as ``enable_largefiles`` would from ``python``."""
    for key, value in agent_settings(str(clone), python=python).items():
        git(clone, "config", "--local", "--replace-all", key, value)


def run_agent_as_git_lfs(
    clone: Path, messages: list[dict], env: dict | None = None
) -> subprocess.CompletedProcess:
    """Start the agent exactly as git-lfs 3.3 does, ``sh -c "'<path>' <args>"`` in the clone,
    feed it ``messages`` and return what it wrote."""
    config = {
        key: git(clone, "config", f"lfs.customtransfer.multipart.{key}").stdout.strip()
        for key in ("path", "args")
    }
    path = config["path"].replace("'", "'\\''")
    return subprocess.run(
        ["sh", "-c", f"'{path}' {config['args']}"],
        cwd=clone,
        input="".join(json.dumps(message) + "\n" for message in messages),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_blob(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (a random MiB repeated, a random tail); return the oid."""
    block, tail = os.urandom(MiB), os.urandom(size % MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in [block] * (size // MiB) + [tail]:
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def server_sha256(server: LocalGitServer, oid: str) -> str | None:
    """The sha256 of the object ``oid`` as the server stores it (its disk or S3), None if it
    stores none (S3: none verified)."""
    stream = server.open_lfs_object(oid)
    if stream is None:
        return None
    digest = hashlib.sha256()
    with stream:
        while block := stream.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def commit(clone: Path, files: dict[str, int]) -> dict[str, str]:
    oids = {name: write_blob(clone / name, size) for name, size in files.items()}
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "data")
    return oids


# A tiny real S3-style multipart server on 127.0.0.1 for the unit tests. Parts are PUT to
# /part/<n>, answered with an ETag; POST /complete assembles them in the order of the ETags it is
# given. GET /object/<oid> serves an assembled object, with or without Range.


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
    slow_part_bytes: int = 0  # what the handler of `slow_part` has read so far
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
                    with state.lock:
                        state.slow_part_bytes += len(piece)
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

    def handle_error(self, request: object, client_address: object) -> None:
        # Connections the tests drop on purpose are not errors worth a traceback on the console.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

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
