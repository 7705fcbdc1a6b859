"""Benchmark of the local LFS server (not a test): memory, ingest speed, multipart completion.

Runs ``lfsrepo serve`` as a separate process and measures:
- its peak RSS while receiving a 1 GiB object through a basic PUT (and a git push of a large
  non-LFS file), from /proc/PID/status;
- the PUT's ingest throughput against ``dd`` writing the same file to the same disk;
- the time of the completion POST of a 2 GiB multipart object.

Example:
    scripts/bench server            # 1 GiB basic PUT, 2 GiB multipart, 256 MiB git push
    scripts/bench server --basic-mib 256 --multipart-mib 512 --git-mib 64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

MiB = 1024**2


class RssSampler:
    """Samples a process's VmRSS every few ms; ``peak`` is the highest seen since ``reset``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def reset(self) -> int:
        self.peak = self.rss()
        return self.peak

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.rss())
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(16 * MiB, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def request(
    base: str,
    method: str,
    url: str,
    body: bytes = b"",
    file: Path | None = None,
    offset: int = 0,
    count: int = 0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a raw socket; file bodies go out with sendfile (no client cost)."""
    parts = urlsplit(url if "://" in url else base + url)
    length = count if file is not None else len(body)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/vnd.git-lfs+json\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        if file is not None:
            with open(file, "rb") as f:
                sent = 0
                while sent < count:
                    sent += os.sendfile(sock.fileno(), f.fileno(), offset + sent, count - sent)
        response = b""
        while chunk := sock.recv(1 << 16):
            response += chunk
    header, _, payload = response.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("Transfer-Encoding") == "chunked":
        payload = dechunk(payload)
    return int(lines[0].split()[1]), headers, payload


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def batch(base: str, repo: str, oid: str, size: int, transfers: list[str]) -> dict:
    payload = json.dumps(
        {"operation": "upload", "transfers": transfers, "objects": [{"oid": oid, "size": size}]}
    ).encode()
    status, _, body = request(base, "POST", f"/{repo}.git/info/lfs/objects/batch", payload)
    assert status == 200, body
    return json.loads(body)


def run(args: argparse.Namespace) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="lfsrepo-bench-", dir=args.dir))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repository.cli",
            "serve",
            "--data",
            str(work / "data"),
            "--multipart-threshold",
            f"{args.basic_mib}MiB",
            "--chunk-size",
            f"{args.chunk_mib}MiB",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[str, float] = {}
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        sampler = RssSampler(server.pid)
        time.sleep(0.5)

        # 1. basic PUT of a large object vs dd of the same file
        src, size = work / "basic.bin", args.basic_mib * MiB
        oid = random_file(src, size)
        os.sync()  # both writers start with no dirty pages pending
        start = time.perf_counter()
        subprocess.run(
            ["dd", f"if={src}", f"of={work / 'dd.bin'}", "bs=1M", "status=none"], check=True
        )
        dd_s = time.perf_counter() - start
        (work / "dd.bin").unlink()
        href = batch(base, "bench/basic", oid, size, ["basic"])["objects"][0]["actions"]["upload"][
            "href"
        ]
        os.sync()
        idle = sampler.reset()
        start = time.perf_counter()
        status, _, body = request(base, "PUT", href, file=src, count=size)
        put_s = time.perf_counter() - start
        assert status == 200, body
        results.update(
            idle_rss_mb=idle / 1e6,
            basic_peak_rss_mb=sampler.peak / 1e6,
            basic_peak_above_idle_mb=(sampler.peak - idle) / 1e6,
            basic_put_mb_s=size / put_s / 1e6,
            dd_mb_s=size / dd_s / 1e6,
            basic_vs_dd=(size / put_s) / (size / dd_s),
        )
        src.unlink()

        # 2. multipart upload, then time the completion POST alone
        src, size = work / "multipart.bin", args.multipart_mib * MiB
        oid = random_file(src, size)
        action = batch(base, "bench/multipart", oid, size, ["multipart", "basic"])
        upload = action["objects"][0]["actions"]["upload"]
        header = dict(upload["header"])
        chunk = int(header.pop("chunk_size"))
        os.sync()
        sampler.reset()
        parts = []
        start = time.perf_counter()
        for key in sorted(header):
            n = int(key)
            count = min(chunk, size - (n - 1) * chunk)
            status, headers, body = request(
                base, "PUT", header[key], file=src, offset=(n - 1) * chunk, count=count
            )
            assert status == 200, body
            parts.append({"partNumber": n, "etag": headers["ETag"]})
        parts_s = time.perf_counter() - start
        payload = json.dumps({"oid": oid, "parts": parts}).encode()
        start = time.perf_counter()
        status, _, body = request(base, "POST", upload["href"], payload)
        complete_s = time.perf_counter() - start
        assert status == 200, body
        results.update(
            multipart_parts=len(parts),
            multipart_parts_mb_s=size / parts_s / 1e6,
            multipart_complete_s=complete_s,
            multipart_peak_above_idle_mb=(sampler.peak - idle) / 1e6,
        )
        src.unlink()

        # 3. git push of a large incompressible non-LFS file (the pack streams through)
        if args.git_mib:
            clone = work / "clone"
            env = {
                **os.environ,
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(work),
                "GIT_AUTHOR_NAME": "b",
                "GIT_AUTHOR_EMAIL": "b@b",
                "GIT_COMMITTER_NAME": "b",
                "GIT_COMMITTER_EMAIL": "b@b",
            }
            subprocess.run(["git", "init", "-q", "-b", "main", str(clone)], check=True, env=env)
            random_file(clone / "blob.dat", args.git_mib * MiB)
            subprocess.run(["git", "add", "blob.dat"], cwd=clone, check=True, env=env)
            subprocess.run(["git", "commit", "-qm", "big"], cwd=clone, check=True, env=env)
            sampler.reset()
            start = time.perf_counter()
            subprocess.run(
                ["git", "push", "-q", f"{base}/bench/git.git", "main"],
                cwd=clone,
                check=True,
                env=env,
            )
            results.update(
                git_push_s=time.perf_counter() - start,
                git_push_peak_above_idle_mb=(sampler.peak - idle) / 1e6,
            )
        sampler.stop()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--basic-mib", type=int, default=1024, help="basic PUT size (MiB)")
    parser.add_argument("--multipart-mib", type=int, default=2048, help="multipart size (MiB)")
    parser.add_argument("--chunk-mib", type=int, default=64, help="multipart part size (MiB)")
    parser.add_argument("--git-mib", type=int, default=256, help="non-LFS git push size (MiB)")
    parser.add_argument("--dir", default=None, help="work directory (default: system temp)")
    args = parser.parse_args()
    results = run(args)
    width = max(map(len, results))
    for key, value in results.items():
        print(
            f"{key:<{width}}  {value:.3f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )


if __name__ == "__main__":
    main()
