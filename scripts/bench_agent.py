"""Benchmark of the multipart agent (not a test): throughput, time to first byte, memory.

Runs ``lfsrepo serve`` as a separate process (multipart above 8 MiB, 64 MiB parts) and measures,
in one run:
- a raw ``curl -T`` PUT of the file to the server's basic upload URL (the server's ingest limit);
- ``git push`` of the file with git-lfs's own ``basic`` transfer;
- ``git push`` of the file through the agent, with the time from git-lfs's batch response to the
  agent's first bytes on the wire and the agent processes' total peak RSS;
- with a per-connection bandwidth cap (a remote object store's limit, simulated): the agent
  against the same agent held to one part at a time.

Example:
    scripts/bench agent                          # 2 GiB, cap 50 MB/s, RSS also for 1 GiB
    scripts/bench agent --mib 512 --cap-mb 0     # quick, no throttled runs
    scripts/bench agent --rss-mib 1024 8192      # the memory check at 8 GiB too (24 GB of disk)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent


class AgentRss:
    """Polls /proc for agent processes working under ``root`` and keeps their summed RSS's peak."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.peak = 0
        self.processes = 0
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            total = 0
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                    if b"lfs_agent" not in argv or b"python" not in argv[0] or \
                            not os.readlink(f"/proc/{entry}/cwd").startswith(self.root):
                        continue
                    status = Path(f"/proc/{entry}/status").read_text()
                except OSError:
                    continue
                self._seen.add(int(entry))
                total += int(re.search(r"VmRSS:\s+(\d+)", status)[1]) * 1024
            self.peak = max(self.peak, total)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        return self.peak, len(self._seen)


class Server:
    """``lfsrepo serve`` in its own process."""

    def __init__(self, work: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "repository.cli", "serve", "--data", str(work / "server"),
             "--multipart-threshold", str(8 * MiB), "--chunk-size", str(64 * MiB), *extra],
            stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip().rstrip("/")
        self.count = 0

    def new_repo(self) -> str:
        self.count += 1
        return f"{self.url}/bench/r{self.count}.git"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def make_file(path: Path, size: int) -> str:
    """A file of ``size`` bytes with fresh content (a new oid every time); returns its oid."""
    block = os.urandom(16 * MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(4096) if left == size else block[: min(left, len(block))]
            piece = piece[:left]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def git(cwd: Path, *args: str, env: dict | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **(env or {})})


def prepared_clone(server: Server, work: Path, size: int, agent: bool) -> Path:
    clone = work / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    git(work, "init", "-q", "-b", "main", str(clone))  # the push creates the repository
    git(clone, "remote", "add", "origin", server.new_repo())
    git(clone, "lfs", "track", "*.bin")
    if agent:
        from lfs_agent.setup import enable_largefiles

        enable_largefiles(clone)
    make_file(clone / "big.bin", size)
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "big")
    return clone


def timed_push(clone: Path, env: dict | None = None) -> float:
    os.sync()  # dirty pages from writing the file would otherwise be flushed mid-measurement
    started = time.monotonic()
    git(clone, "push", "-q", "origin", "main", env=env)
    return time.monotonic() - started


def upload_action(server: Server, oid: str, size: int, transfer: str) -> dict:
    """Ask the server's batch API for an upload action, as git-lfs would."""
    batch = requests.post(f"{server.new_repo()}/info/lfs/objects/batch", timeout=30, data=json.dumps(
        {"operation": "upload", "transfers": [transfer], "objects": [{"oid": oid, "size": size}]}),
        headers={"Accept": "application/vnd.git-lfs+json",
                 "Content-Type": "application/vnd.git-lfs+json"}).json()
    return batch["objects"][0]["actions"]["upload"]


def agent_alone(server: Server, work: Path, size: int) -> float:
    """The agent process fed the protocol by this script: the upload without git or git-lfs."""
    path = work / "alone.bin"
    oid = make_file(path, size)
    action = upload_action(server, oid, size, "multipart")
    os.sync()
    started = time.monotonic()
    agent = subprocess.Popen([sys.executable, "-I", "-m", "lfs_agent"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    agent.stdin.write(json.dumps({"event": "init", "operation": "upload",
                                  "concurrenttransfers": 8}) + "\n")
    agent.stdin.write(json.dumps({"event": "upload", "oid": oid, "size": size, "path": str(path),
                                  "action": action}) + "\n")
    agent.stdin.flush()
    for line in agent.stdout:
        if json.loads(line).get("event") == "complete":
            assert "error" not in json.loads(line), line
            break
    elapsed = time.monotonic() - started
    agent.stdin.write('{"event": "terminate"}\n')
    agent.stdin.close()
    agent.wait()
    path.unlink()
    return elapsed


def curl_put(server: Server, work: Path, size: int) -> float:
    path = work / "raw.bin"
    oid = make_file(path, size)
    action = upload_action(server, oid, size, "basic")
    headers = [f"-H{k}: {v}" for k, v in (action.get("header") or {}).items()]
    os.sync()
    started = time.monotonic()
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(path), *headers,
                    action["href"]], check=True)
    elapsed = time.monotonic() - started
    path.unlink()
    return elapsed


def agent_push(server: Server, work: Path, size: int,
               env: dict | None = None) -> tuple[float, float | None, int, int]:
    """Push through the agent; return seconds, batch-to-first-byte seconds, peak RSS, processes."""
    clone = prepared_clone(server, work, size, agent=True)
    trace, log = work / "trace.txt", work / "agent.log"
    for f in (trace, log):
        f.unlink(missing_ok=True)
    rss = AgentRss(work)
    elapsed = timed_push(clone, {"GIT_TRACE": str(trace), "LFSREPO_AGENT_LOG": str(log),
                                 **(env or {})})
    peak, processes = rss.stop()
    return elapsed, first_byte_delay(trace, log), peak, processes


def first_byte_delay(trace: Path, log: Path) -> float | None:
    """From git-lfs's batch response (GIT_TRACE) to the agent's first progress (its log)."""
    lines = trace.read_text(errors="replace").splitlines()
    batch_at = None
    for i, line in enumerate(lines):
        if "objects/batch" in line and "POST" in line:
            for later in lines[i + 1:]:
                if "HTTP: 200" in later:
                    batch_at = later.split()[0]
                    break
    first = next((line.split()[0] for line in log.read_text().splitlines()
                  if "first bytes on the wire" in line), None)
    if batch_at is None or first is None:
        return None
    delay = datetime.strptime(first, "%H:%M:%S.%f") - datetime.strptime(batch_at, "%H:%M:%S.%f")
    return delay.total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=2048, help="file size for the push runs")
    parser.add_argument("--cap-mb", type=float, default=50,
                        help="per-connection cap in MB/s for the throttled runs (0: skip)")
    parser.add_argument("--rss-mib", type=int, nargs="*", default=[1024],
                        help="more file sizes for the memory check")
    parser.add_argument("--workdir", default=None, help="where to put files (default: /tmp)")
    args = parser.parse_args()
    size = args.mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lfsrepo-bench-agent-", dir=args.workdir))
    mb = size / 1e6
    results: list[str] = []

    def report(text: str) -> None:
        print(text, flush=True)
        results.append(text)

    try:
        server = Server(work)
        try:
            curl = curl_put(server, work, size)
            report(f"curl -T (single PUT, basic URL)   {curl:6.2f} s  {mb / curl:7.1f} MB/s")
            alone = agent_alone(server, work, size)
            report(f"agent alone (no git), 8 in flight {alone:6.2f} s  {mb / alone:7.1f} MB/s"
                   f"  = {curl / alone:.2f}x curl")
            basic = timed_push(prepared_clone(server, work, size, agent=False))
            report(f"git push, git-lfs basic            {basic:6.2f} s  {mb / basic:7.1f} MB/s")
            agent, ttfb, peak, procs = agent_push(server, work, size)
            report(f"git push, multipart agent          {agent:6.2f} s  {mb / agent:7.1f} MB/s"
                   f"  = {curl / agent:.2f}x curl, {agent / basic - 1:+.1%} time vs basic")
            report(f"  batch response -> first byte     {ttfb:6.3f} s" if ttfb is not None
                   else "  batch response -> first byte     n/a")
            report(f"  agent peak RSS ({args.mib} MiB)        {peak / MiB:6.1f} MiB"
                   f" in {procs} process(es)")
            for extra in args.rss_mib:
                if extra == args.mib:
                    continue
                _, _, peak, procs = agent_push(server, work, extra * MiB)
                report(f"  agent peak RSS ({extra} MiB)        {peak / MiB:6.1f} MiB"
                       f" in {procs} process(es)")
        finally:
            server.stop()
        if args.cap_mb:
            shutil.rmtree(work / "server", ignore_errors=True)
            server = Server(work, "--bandwidth", str(int(args.cap_mb * 1e6)))
            try:
                parallel, *_ = agent_push(server, work, size)
                one, *_ = agent_push(server, work, size, {"LFSREPO_AGENT_CONCURRENCY": "1"})
                report(f"capped at {args.cap_mb:g} MB/s per connection: agent {parallel:.2f} s,"
                       f" one part at a time {one:.2f} s: {one / parallel:.1f}x")
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
