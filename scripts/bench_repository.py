"""Benchmark of the Repository workflow (not a test): auto-tracking git_add, non-blocking push.

In one run, on identical fresh trees of ``--text-files`` small text files and ``--binary-files``
binary files of 1-2 MB:
- ``Repository.git_add(auto_lfs_track=True)`` against plain ``git add -A`` (median of ``--rounds``);
- the time ``git_push(blocking=False)`` takes to return (the push itself runs in the background),
  for the large first push and for a one-file push, against the local server.

Example:
    scripts/bench repository                       # 10,000 text + 20 binary files, 3 rounds
    scripts/bench repository --text-files 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from repository import Repository
from repository.testing import LocalGitServer


def write_tree(root: Path, text_files: int, binary_files: int, seed: int) -> None:
    """Fill ``root`` with the benchmark tree (100 files per folder), the same for the same seed."""
    rng = random.Random(seed)
    for index in range(text_files):
        folder = root / f"texts-{index // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"note {index}.txt").write_text(f"line {index}\n" * rng.randint(1, 20))
    (root / "weights").mkdir(exist_ok=True)
    for index in range(binary_files):
        size = rng.randint(1_000_000, 2_000_000)
        (root / "weights" / f"shard-{index:02d}.bin").write_bytes(rng.randbytes(size))


def plain_clone(bare: Path, target: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(bare), str(target)], check=True, capture_output=True)


def time_add_round(
    workdir: Path, bare: Path, args: argparse.Namespace, seed: int
) -> tuple[float, float]:
    """One round: the same tree in two fresh clones; returns (ours, plain) seconds."""
    logging.getLogger("repository").setLevel(logging.ERROR)  # no "Tracking 20 files" lines
    ours_dir, plain_dir = workdir / f"ours-{seed}", workdir / f"plain-{seed}"
    repo = Repository(ours_dir, clone_from=str(bare), progress_bars=False)
    plain_clone(bare, plain_dir)
    write_tree(ours_dir, args.text_files, args.binary_files, seed)
    write_tree(plain_dir, args.text_files, args.binary_files, seed)
    subprocess.run(["sync"], check=True)

    def run_plain() -> float:
        started = time.perf_counter()
        subprocess.run(["git", "add", "-A"], cwd=plain_dir, check=True)
        return time.perf_counter() - started

    def run_ours() -> float:
        started = time.perf_counter()
        repo.git_add(auto_lfs_track=True)
        return time.perf_counter() - started

    # Alternate which goes first, so neither always gets the warmer cache.
    if seed % 2:
        plain, ours = run_plain(), run_ours()
    else:
        ours, plain = run_ours(), run_plain()

    tracked = subprocess.run(
        ["git", "lfs", "ls-files", "-n"], cwd=ours_dir, check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(tracked) == args.binary_files, f"expected the binaries in LFS, got {len(tracked)}"
    shutil.rmtree(ours_dir)
    shutil.rmtree(plain_dir)
    return ours, plain


def time_non_blocking_pushes(workdir: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """Seconds for git_push(blocking=False) to return: big first push, one-file push; push total."""
    with LocalGitServer() as server:
        url = server.create_repo("bench/push")
        repo = Repository(workdir / "push", clone_from=url, progress_bars=False)
        write_tree(workdir / "push", min(args.text_files, 1000), args.binary_files, 0)
        repo.git_add(auto_lfs_track=True)
        repo.git_commit("big push")
        started = time.perf_counter()
        _, command = repo.git_push(blocking=False)
        big = time.perf_counter() - started
        command.wait()
        total = time.perf_counter() - started
        assert command.status == 0, command.stderr

        (workdir / "push" / "one more.txt").write_text("one more\n")
        repo.git_add()
        repo.git_commit("small push")
        started = time.perf_counter()
        _, command = repo.git_push(blocking=False)
        small = time.perf_counter() - started
        command.wait()
        assert command.status == 0, command.stderr
        assert server.list_refs("bench/push")["refs/heads/main"] == repo.git_head_hash()
    return big, small, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-files", type=int, default=10_000)
    parser.add_argument("--binary-files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lfsrepo-bench-repository-"))
    try:
        bare = workdir / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        ours_times, plain_times = [], []
        for seed in range(1, args.rounds + 1):
            ours, plain = time_add_round(workdir, bare, args, seed)
            ours_times.append(ours)
            plain_times.append(plain)
            print(
                f"round {seed}: git_add(auto_lfs_track=True) {ours:.2f} s, "
                f"git add -A {plain:.2f} s, ratio {ours / plain:.2f}x",
                flush=True,
            )
        ratio = statistics.median(o / p for o, p in zip(ours_times, plain_times, strict=True))
        print(
            f"median: git_add(auto_lfs_track=True) {statistics.median(ours_times):.2f} s, "
            f"git add -A {statistics.median(plain_times):.2f} s, median ratio {ratio:.2f}x "
            f"({args.text_files} text + {args.binary_files} binary files)"
        )
        big, small, total = time_non_blocking_pushes(workdir, args)
        print(
            f"git_push(blocking=False) returned in {big * 1000:.1f} ms for a "
            f"{args.binary_files}-binary push that took {total:.2f} s in all, "
            f"and in {small * 1000:.1f} ms for a one-file push"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("GIT_TERMINAL_PROMPT", "0")
    main()
