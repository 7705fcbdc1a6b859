"""Benchmark of the multipart agent (not a test): throughput, time to first byte, memory.

Runs ``lfsrepo serve`` as a separate process (multipart above 8 MiB, 64 MiB parts) and measures,
in each of several rounds (the order of the steps rotates from round to round):
- ``dd`` copying the file into the server's data folder (the machine's one-stream write limit);
- a raw ``curl -T`` PUT of the file to the server's basic upload URL (the server's ingest limit);
- the agent process alone, fed the protocol by this script (no git, no git-lfs);
- ``git push`` of the file with git-lfs's own ``basic`` transfer;
- ``git push`` of the file through the agent, with the time from git-lfs's batch response to the
  agent's first bytes on the wire and the agent processes' total peak RSS;
then, with a per-connection bandwidth cap (a remote object store's limit, simulated), the agent
against the same agent held to one part at a time.

Every timed step starts from the same state: its input files written and synced, then a pause
(``--settle``) so that the virtual machine has handed freed memory back to its host. Without it,
a step that happens to reuse memory freed a moment before writes its page cache several times
faster than one that does not, and that, not the tools, decides the ranking.

Example:
    scripts/bench agent                          # 2 GiB, 3 rounds, cap 50 MB/s, RSS also for 1 GiB
    scripts/bench agent --mib 512 --rounds 1 --cap-mb 0 --rss-mib   # quick look
    scripts/bench agent --rss-mib 1024 8192      # the memory check at 8 GiB too (24 GB of disk)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
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
SETTLE_S = 6.0  # the guest reports free memory to the host about 2 s after it is freed


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
                    if (
                        not any(b"lfs_agent" in arg for arg in argv[1:])
                        or b"python" not in argv[0]
                        or not os.readlink(f"/proc/{entry}/cwd").startswith(self.root)
                    ):
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
            [
                sys.executable,
                "-m",
                "repository.cli",
                "serve",
                "--data",
                str(work / "server"),
                "--multipart-threshold",
                str(8 * MiB),
                "--chunk-size",
                str(64 * MiB),
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
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
    subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **(env or {})}
    )


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


def settle() -> None:
    """Flush dirty pages and let freed memory go back to the host, so every step starts alike."""
    os.sync()  # dirty pages from writing the file would otherwise be flushed mid-measurement
    time.sleep(SETTLE_S)


def timed_push(clone: Path, env: dict | None = None) -> float:
    settle()
    started = time.monotonic()
    git(clone, "push", "-q", "origin", "main", env=env)
    return time.monotonic() - started


def upload_action(server: Server, oid: str, size: int, transfer: str) -> dict:
    """Ask the server's batch API for an upload action, as git-lfs would."""
    batch = requests.post(
        f"{server.new_repo()}/info/lfs/objects/batch",
        timeout=30,
        data=json.dumps(
            {
                "operation": "upload",
                "transfers": [transfer],
                "objects": [{"oid": oid, "size": size}],
            }
        ),
        headers={
            "Accept": "application/vnd.git-lfs+json",
            "Content-Type": "application/vnd.git-lfs+json",
        },
    ).json()
    return batch["objects"][0]["actions"]["upload"]


def agent_alone(server: Server, work: Path, size: int) -> float:
    """The agent process fed the protocol by this script: the upload without git or git-lfs."""
    path = work / "alone.bin"
    oid = make_file(path, size)
    action = upload_action(server, oid, size, "multipart")
    settle()
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-I", "-m", "lfs_agent"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    agent.stdin.write(
        json.dumps({"event": "init", "operation": "upload", "concurrenttransfers": 8}) + "\n"
    )
    agent.stdin.write(
        json.dumps(
            {"event": "upload", "oid": oid, "size": size, "path": str(path), "action": action}
        )
        + "\n"
    )
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


def dd_copy(server: Server, work: Path, size: int) -> float:
    """The machine's limit for one stream: ``dd`` from the cached file into the server's folder."""
    path, target = work / "raw.bin", work / "server" / "dd.bin"
    make_file(path, size)
    settle()
    started = time.monotonic()
    subprocess.run(["dd", f"if={path}", f"of={target}", "bs=1M", "status=none"], check=True)
    elapsed = time.monotonic() - started
    path.unlink()
    target.unlink()
    return elapsed


def curl_put(server: Server, work: Path, size: int) -> float:
    path = work / "raw.bin"
    oid = make_file(path, size)
    action = upload_action(server, oid, size, "basic")
    headers = [f"-H{k}: {v}" for k, v in (action.get("header") or {}).items()]
    settle()
    started = time.monotonic()
    subprocess.run(
        ["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(path), *headers, action["href"]],
        check=True,
    )
    elapsed = time.monotonic() - started
    path.unlink()
    return elapsed


def agent_push(
    server: Server, work: Path, size: int, env: dict | None = None
) -> tuple[float, float | None, int, int]:
    """Push through the agent; return seconds, batch-to-first-byte seconds, peak RSS, processes."""
    clone = prepared_clone(server, work, size, agent=True)
    trace, log = work / "trace.txt", work / "agent.log"
    for f in (trace, log):
        f.unlink(missing_ok=True)
    rss = AgentRss(work)
    elapsed = timed_push(
        clone, {"GIT_TRACE": str(trace), "LFSREPO_AGENT_LOG": str(log), **(env or {})}
    )
    peak, processes = rss.stop()
    return elapsed, first_byte_delay(trace, log), peak, processes


def first_byte_delay(trace: Path, log: Path) -> float | None:
    """From git-lfs's batch response (GIT_TRACE) to the agent's first progress (its log)."""
    lines = trace.read_text(errors="replace").splitlines()
    batch_at = None
    for i, line in enumerate(lines):
        if "objects/batch" in line and "POST" in line:
            for later in lines[i + 1 :]:
                if "HTTP: 200" in later:
                    batch_at = later.split()[0]
                    break
    first = next(
        (
            line.split()[0]
            for line in log.read_text().splitlines()
            if "first bytes on the wire" in line
        ),
        None,
    )
    if batch_at is None or first is None:
        return None
    delay = datetime.strptime(first, "%H:%M:%S.%f") - datetime.strptime(batch_at, "%H:%M:%S.%f")
    return delay.total_seconds()


def forget_objects(work: Path) -> None:
    """Delete the big objects the server stored, so page cache and disk do not pile up."""
    for path in (work / "server").rglob("*"):
        if path.is_file() and path.stat().st_size > 8 * MiB and "objects" in path.parts:
            path.unlink()


def median_line(name: str, times: list[float], mb: float, extra: str = "") -> str:
    each = ", ".join(f"{t:.2f}" for t in times)
    median = statistics.median(times)
    return f"{name:36} {median:6.2f} s {mb / median:7.1f} MB/s  (rounds: {each}){extra}"


def ratio_line(name: str, ratios: list[float], fmt: str) -> str:
    each = ", ".join(format(r, fmt) for r in ratios)
    return f"{name:36} {format(statistics.median(ratios), fmt):>8}  (rounds: {each})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=2048, help="file size for the push runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the uncapped steps")
    parser.add_argument(
        "--cap-mb",
        type=float,
        default=50,
        help="per-connection cap in MB/s for the throttled runs (0: skip)",
    )
    parser.add_argument(
        "--rss-mib",
        type=int,
        nargs="*",
        default=[1024],
        help="more file sizes for the memory check",
    )
    parser.add_argument("--workdir", default=None, help="where to put files (default: /tmp)")
    args = parser.parse_args()
    size = args.mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lfsrepo-bench-agent-", dir=args.workdir))
    mb = size / 1e6
    times: dict[str, list[float]] = {}
    first_bytes: list[float] = []
    peaks: list[tuple[int, int]] = []

    def agent_push_step(server: Server, work: Path, size: int) -> float:
        elapsed, ttfb, peak, processes = agent_push(server, work, size)
        if ttfb is not None:
            first_bytes.append(ttfb)
        peaks.append((peak, processes))
        return elapsed

    steps = {
        "dd": dd_copy,
        "curl": curl_put,
        "alone": agent_alone,
        "basic": lambda s, w, n: timed_push(prepared_clone(s, w, n, agent=False)),
        "agent": agent_push_step,
    }
    try:
        server = Server(work)
        try:
            for round_index in range(args.rounds):
                order = (
                    list(steps)[round_index % len(steps) :]
                    + list(steps)[: round_index % len(steps)]
                )
                for name in order:
                    times.setdefault(name, []).append(steps[name](server, work, size))
                    forget_objects(work)
                print(
                    f"round {round_index + 1}: "
                    + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in steps),
                    flush=True,
                )
            rss_checks = []
            for extra in args.rss_mib:
                _, _, peak, processes = agent_push(server, work, extra * MiB)
                forget_objects(work)
                rss_checks.append((extra, peak, processes))
        finally:
            server.stop()
        capped = None
        if args.cap_mb:
            shutil.rmtree(work / "server", ignore_errors=True)
            server = Server(work, "--bandwidth", str(int(args.cap_mb * 1e6)))
            try:
                parallel, *_ = agent_push(server, work, size)
                one, *_ = agent_push(server, work, size, {"LFSREPO_AGENT_CONCURRENCY": "1"})
                capped = parallel, one
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    curl = times["curl"]
    print(f"\n{args.mib} MiB, {args.rounds} round(s), medians:")
    print(median_line("dd into the server's folder", times["dd"], mb))
    print(median_line("curl -T (single PUT, basic URL)", curl, mb))
    print(median_line("agent alone (no git), 8 in flight", times["alone"], mb))
    print(median_line("git push, git-lfs basic", times["basic"], mb))
    print(median_line("git push, multipart agent", times["agent"], mb))
    print(
        ratio_line(
            "curl / dd throughput", [d / c for d, c in zip(times["dd"], curl, strict=True)], ".2f"
        )
    )
    print(
        ratio_line(
            "agent alone / curl throughput",
            [c / a for c, a in zip(curl, times["alone"], strict=True)],
            ".2f",
        )
    )
    print(
        ratio_line(
            "agent push / curl throughput (>=0.8)",
            [c / a for c, a in zip(curl, times["agent"], strict=True)],
            ".2f",
        )
    )
    print(
        ratio_line(
            "agent push time vs basic (within 5%)",
            [a / b - 1 for a, b in zip(times["agent"], times["basic"], strict=True)],
            "+.1%",
        )
    )
    if first_bytes:
        print(
            f"{'batch response -> first byte':36} {statistics.median(first_bytes):6.3f} s"
            f"  (max {max(first_bytes):.3f} s)"
        )
    peak, processes = max(peaks)
    print(
        f"{'agent peak RSS (' + str(args.mib) + ' MiB)':36} {peak / MiB:6.1f} MiB"
        f" in {processes} process(es)"
    )
    for extra, peak, processes in rss_checks:
        print(
            f"{'agent peak RSS (' + str(extra) + ' MiB)':36} {peak / MiB:6.1f} MiB"
            f" in {processes} process(es)"
        )
    if capped:
        parallel, one = capped
        print(
            f"capped at {args.cap_mb:g} MB/s per connection: agent {parallel:.2f} s,"
            f" one part at a time {one:.2f} s: {one / parallel:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
