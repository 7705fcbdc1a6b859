"""Benchmark of staging large LFS files (not a test): lfsrepo's fast path against git-lfs.

For each data set (4 x 512 MiB, then 1 x 2 GiB fresh files, the same bytes in every clone), per
round, in alternating order, each step after ``sync`` and a pause (this VM hands freed memory back
to its host; see docs/benchmarks.md):
- ``Repository.git_add()`` with the fast path, with 1 worker and with one per core;
- plain ``git add`` through git-lfs's filter, in a plain clone;
- the machine's limits for the same files: ``cp`` to the same disk, and sha256 of all files in as
  many threads as there are cores.
Steps that write are timed until their writes are on disk (``git add`` and ``cp`` then ``sync``),
as lfsrepo's ``git_add`` returns only then (docs/reliability.md).
Then ``commit()`` end to end once (stage, commit, push through the agent to the local server), with
its parts. Medians of the rounds, and the ratios of each round.

Example:
    scripts/bench staging                 # 3 rounds
    scripts/bench staging --rounds 1 --mib 256
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from repository import Repository
from repository.testing import LocalGitServer

MiB = 1024**2
PAUSE_S = 6.0  # freed memory goes back to the host after ~2 s: every step starts alike
CHUNK = 64 * MiB


def write_files(folder: Path, sizes: list[int], block: bytes) -> list[str]:
    """The data set: distinct files of ``sizes`` bytes, the same bytes every time."""
    names = []
    for index, size in enumerate(sizes):
        name = f"shard-{index}.bin"
        with open(folder / name, "wb") as handle:
            for offset in range(0, size, CHUNK):
                piece = min(CHUNK, size - offset)
                handle.write(f"{index:08d}{offset:016d}".encode() + block[24:piece])
        names.append(name)
    then = time.time() - 10  # finished checkpoints, not files being written
    for name in names:
        os.utime(folder / name, (then, then))
    return names


def settle() -> None:
    subprocess.run(["sync"], check=True)
    time.sleep(PAUSE_S)


def timed(step: Callable[[], object]) -> float:
    settle()
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def durably(step: Callable[[], object]) -> None:
    """Run ``step``, then wait for its writes to reach the disk."""
    step()
    os.sync()


def sha256_all(paths: list[Path], workers: int) -> None:
    def one(path: Path) -> str:
        digest = hashlib.sha256()
        buffer = bytearray(8 * MiB)
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                digest.update(memoryview(buffer)[:count])
        return digest.hexdigest()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))


def one_round(work: Path, url: str, sizes: list[int], block: bytes, order: int) -> dict[str, float]:
    """Every step once, on fresh clones; returns seconds per step."""
    cores = os.cpu_count() or 1
    clones = {}
    for name in ("fast-1", f"fast-{cores}"):
        repo = Repository(work / name, clone_from=url, progress_bars=False)
        repo.lfs_track("*.bin")
        clones[name] = repo
    plain = work / "plain"
    subprocess.run(["git", "clone", "-q", url, str(plain)], check=True, capture_output=True)
    subprocess.run(["git", "lfs", "track", "*.bin"], cwd=plain, check=True, capture_output=True)
    names = []
    for folder in [work / name for name in clones] + [plain]:
        names = write_files(folder, sizes, block)
    source = [plain / name for name in names]
    (work / "copies").mkdir()

    def fast(workers: int) -> Callable[[], None]:
        def run() -> None:
            os.environ["LFSREPO_STAGING_WORKERS"] = str(workers)
            clones[f"fast-{workers}"].git_add()

        return run

    steps: dict[str, Callable[[], object]] = {
        "git_add, 1 worker": fast(1),
        f"git_add, {cores} workers": fast(cores),
        # lfsrepo's add returns with its writes on disk (one syncfs, docs/reliability.md): the
        # others are timed to the same point, or the disk's writeback speed would decide.
        "git add (git-lfs)": lambda: durably(
            lambda: subprocess.run(
                ["git", "add", *names], cwd=plain, check=True, capture_output=True
            )
        ),
        "cp": lambda: durably(
            lambda: [shutil.copyfile(path, work / "copies" / path.name) for path in source]
        ),
        f"sha256, {cores} threads": lambda: sha256_all(source, cores),
    }
    keys = list(steps)
    keys = keys[order % len(keys) :] + keys[: order % len(keys)]
    return {key: timed(steps[key]) for key in keys}


def end_to_end(work: Path, url: str, size: int, block: bytes) -> dict[str, float]:
    """commit() of one new file of ``size`` bytes, then the same steps one by one on another."""
    repo = Repository(work / "e2e", clone_from=url, progress_bars=False)
    repo.lfs_track("*.bin")
    repo.git_add()
    repo.git_commit("track")
    repo.git_push()
    write_files(work / "e2e", [size], block)
    times = {"commit(): stage + commit + push": timed(lambda: _commit(repo))}
    write_files(work / "e2e", [size], block[::-1])  # the next checkpoint: new bytes
    times["git_add"] = timed(repo.git_add)
    times["git_commit"] = timed(lambda: repo.git_commit("step by step"))
    times["git_push"] = timed(repo.git_push)
    return times


def _commit(repo: Repository) -> None:
    with repo.commit("checkpoint"):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=512, help="size of each of the 4 files")
    args = parser.parse_args()
    logging.getLogger("repository").setLevel(logging.ERROR)
    block = os.urandom(CHUNK)
    data_sets = {
        f"4 x {args.mib} MiB": [args.mib * MiB] * 4,
        f"1 x {4 * args.mib} MiB": [4 * args.mib * MiB],
    }
    with LocalGitServer(multipart_threshold=64 * MiB, chunk_size=64 * MiB) as server:
        for label, sizes in data_sets.items():
            rounds = []
            for order in range(args.rounds):
                with tempfile.TemporaryDirectory(prefix="lfsrepo-bench-") as work:
                    url = server.create_repo(f"bench/r{len(label)}-{order}")
                    rounds.append(one_round(Path(work), url, sizes, block, order))
                print(
                    f"{label}, round {order + 1}: "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in rounds[-1].items()),
                    flush=True,
                )
            medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            cores = os.cpu_count() or 1
            fast, plain = f"git_add, {cores} workers", "git add (git-lfs)"
            limit = max(medians["cp"], medians[f"sha256, {cores} threads"])
            print(f"{label}: medians " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
            print(
                f"{label}: git add (git-lfs) / fast git_add = "
                f"{statistics.median(r[plain] / r[fast] for r in rounds):.2f}x (rounds "
                + ", ".join(f"{r[plain] / r[fast]:.2f}" for r in rounds)
                + "; target >= 2x)"
            )
            print(
                f"{label}: fast git_add / slower limit = {medians[fast] / limit:.2f}x "
                "(target <= 1.5x)"
            )
            print(
                f"{label}: 1 worker / {cores} workers = "
                f"{medians['git_add, 1 worker'] / medians[fast]:.2f}x",
                flush=True,
            )
        with tempfile.TemporaryDirectory(prefix="lfsrepo-bench-") as work:
            url = server.create_repo("bench/e2e")
            parts = end_to_end(Path(work), url, 4 * args.mib * MiB, block)
            print(
                "commit() end to end, 1 file of "
                f"{4 * args.mib} MiB (stage + commit + push through the agent): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
            )


if __name__ == "__main__":
    main()
