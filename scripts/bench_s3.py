"""Benchmark of pushes into the S3-backed server (not a test): the agent against boto3.

Starts SeaweedFS (``weed mini``, loopback only) and a LocalGitServer keeping LFS objects in its
bucket (multipart above 64 MiB, 64 MiB parts). For each size, in each round (the order of the two
steps alternates from round to round), a fresh file of random bytes is written and committed
(untimed), then:
- uploaded by boto3's ``upload_file`` (s3transfer) straight into the same bucket, with the same
  part size and the same concurrency as the agent (8, git-lfs's concurrenttransfers);
- pushed with ``git push`` through git-lfs and the agent into the server: presigned part PUTs,
  then the completion, which has the server read the object back to check its sha256.
Nothing is deleted from the bucket until the end: deleted objects leave garbage that SeaweedFS
compacts in the background (vacuum), at times that fall in one step or the other.
Before each timed step the page cache is flushed (``sync``, untimed) and the machine left idle for
a few seconds: otherwise the step that runs second pays for the first one's writeback (SeaweedFS
writes what it receives, and the kernel flushes it 30 s later, in the middle of the next step).
It prints both throughputs and their ratio, the server's completion time (CompleteMultipartUpload
plus verification) per GiB, and the agent's peak RSS (from its own log).

Example:
    scripts/bench s3                      # 1 GiB and 4 GiB, 3 rounds
    scripts/bench s3 --gib 1 --rounds 1   # quick look
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from lfs_agent import enable_largefiles
from repository.testing import LocalGitServer, SeaweedFS

MiB = 1024**2
GiB = 1024**3
CHUNK = 64 * MiB
CONCURRENCY = 8
SETTLE_S = 3.0


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
        f.write(os.urandom(size % (16 * MiB)))
        f.flush()
        os.fsync(f.fileno())


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **(env or {})}
    )


def boto3_upload(s3: SeaweedFS, path: Path, key: str) -> float:
    client = s3.client()
    config = TransferConfig(
        multipart_threshold=CHUNK,
        multipart_chunksize=CHUNK,
        max_concurrency=CONCURRENCY,
        use_threads=True,
    )
    start = time.perf_counter()
    client.upload_file(str(path), s3.bucket, key, Config=config)
    return time.perf_counter() - start


def agent_push(server: LocalGitServer, clone: Path, log: Path) -> dict[str, Any]:
    """Push what is committed (staged before the round: staging a file writes it again, and
    that writeback must not land in the push's time)."""
    log.unlink(missing_ok=True)
    completions: list[float] = []
    original = server.store.complete

    def timed(*args: Any) -> None:
        start = time.perf_counter()
        original(*args)
        completions.append(time.perf_counter() - start)

    server.store.complete = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    try:
        git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_LOG": str(log)})
    finally:
        del server.store.complete
    elapsed = time.perf_counter() - start
    text = log.read_text()
    rss = [int(m) for m in re.findall(r"peak rss (\d+) MiB", text)]
    first = [clock(m) for m in re.findall(r"^(\S+) \d+ \S+: first bytes on the wire", text, re.M)]
    parts = [clock(m) for m in re.findall(r"^(\S+) \d+ part \d+ done", text, re.M)]
    return {
        "seconds": elapsed,
        "transfer": max(parts) - min(first),
        "completion": sum(completions),
        "rss_mib": max(rss, default=0),
    }


def clock(stamp: str) -> float:
    """Seconds since midnight of the agent log's ``HH:MM:SS.ffffff``."""
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # A SIGTERM (a `timeout`, CI) unwinds like Ctrl-C, so SeaweedFS and the server are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="lfsrepo-bench-s3-") as tmp_dir:
        tmp = Path(tmp_dir)
        with (
            SeaweedFS(tmp / "seaweedfs") as s3,
            LocalGitServer(
                tmp / "server",
                multipart_threshold=CHUNK,
                chunk_size=CHUNK,
                **s3.server_options(prefix="bench/"),
            ) as server,
        ):
            url = server.create_repo("bench/s3")
            clone = tmp / "clone"
            git(tmp, "clone", "-q", url, str(clone))
            git(clone, "lfs", "track", "*.bin")
            enable_largefiles(clone)
            print(f"SeaweedFS {s3.endpoint}, parts {CHUNK // MiB} MiB, concurrency {CONCURRENCY}")
            for gib in args.gib:
                size = int(gib * GiB)
                results: dict[str, list[float]] = {
                    "boto3": [],
                    "agent": [],
                    "transfer": [],
                    "completion": [],
                }
                rss: list[int] = []
                for round_number in range(args.rounds):
                    path = clone / f"data-{gib:g}-{round_number}.bin"
                    write_random(path, size)
                    git(clone, "add", path.name)
                    git(clone, "commit", "-q", "-m", path.name)
                    steps = ["boto3", "agent"] if round_number % 2 == 0 else ["agent", "boto3"]
                    for step in steps:
                        os.sync()
                        time.sleep(SETTLE_S)
                        if step == "boto3":
                            seconds = boto3_upload(s3, path, f"boto3/{path.name}")
                            results["boto3"].append(seconds)
                        else:
                            pushed = agent_push(server, clone, tmp / "agent.log")
                            results["agent"].append(pushed["seconds"])
                            results["transfer"].append(pushed["transfer"])
                            results["completion"].append(pushed["completion"])
                            rss.append(pushed["rss_mib"])
                        detail = (
                            f" (parts {results['transfer'][-1]:.1f} s, completion "
                            f"{results['completion'][-1]:.1f} s)"
                            if step == "agent"
                            else ""
                        )
                        print(
                            f"  {gib:g} GiB round {round_number + 1} {step}: "
                            f"{results[step][-1]:.1f} s{detail}",
                            flush=True,
                        )
                    path.unlink()
                    shutil.rmtree(clone / ".git" / "lfs" / "objects")  # pushed: only disk space
                boto3_s = statistics.median(results["boto3"])
                agent_s = statistics.median(results["agent"])
                transfer_s = statistics.median(results["transfer"])
                completion_s = statistics.median(results["completion"])
                print(
                    f"{gib:g} GiB: boto3 upload_file {size / boto3_s / 1e6:.0f} MB/s; agent: parts "
                    f"{size / transfer_s / 1e6:.0f} MB/s (ratio {boto3_s / transfer_s:.2f}x), "
                    f"whole git push {size / agent_s / 1e6:.0f} MB/s (ratio "
                    f"{boto3_s / agent_s:.2f}x); server completion {completion_s:.1f} s "
                    f"({completion_s / gib:.1f} s/GiB); agent peak RSS {max(rss)} MiB",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
