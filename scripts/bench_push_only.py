"""Benchmark of adding one small file to a big repository (not a test): push-only clone against a
full clone and a ``skip_lfs_files=True`` clone.

The repository (on the local server, in-process): 20,000 text files of 4 KiB in folders of 1,000
plus 16 LFS files of 64 MiB (1 GiB). Each way, per round in rotating order after ``sync`` and a
pause: ``Repository(clone_from=...)``, then one new 1 KiB file added, committed and pushed. Bytes
are what the clone received: its packs (git keeps a clone's pack as it came) and LFS objects.

Example:
    scripts/bench push-only                # 3 rounds
    scripts/bench push-only --rounds 1 --files 2000 --lfs-mib 128
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from repository import Repository
from repository.testing import LocalGitServer
from tests.support.big_repo import make_big_repo

MiB = 1024**2
PAUSE_S = 6.0  # this VM hands freed memory back to its host after ~2 s: every step starts alike
WAYS = {
    "full clone": {},
    "skip_lfs_files=True": {"skip_lfs_files": True},
    "push_only=True": {"push_only": True},
}


def received_bytes(clone: Path) -> int:
    packs = clone / ".git" / "objects" / "pack"
    lfs = clone / ".git" / "lfs" / "objects"
    files = [*packs.glob("*.pack"), *(p for p in lfs.rglob("*") if p.is_file())]
    return sum(path.stat().st_size for path in files)


def one_way(
    work: Path, url: str, options: dict[str, bool], label: str, number: int
) -> dict[str, float]:
    subprocess.run(["sync"], check=True)
    time.sleep(PAUSE_S)
    clone = work / label.replace(" ", "-").replace("=", "-")
    started = time.perf_counter()
    repo = Repository(clone, clone_from=url, progress_bars=False, **options)
    cloned = time.perf_counter()
    (clone / "notes").mkdir(exist_ok=True)
    # A file the repository does not have yet (an earlier round's would be nothing to push).
    (clone / "notes" / f"round-{number}-{label}.txt").write_text("x" * 1023 + "\n")
    assert repo.push_to_hub(f"one file, {label}") is not None
    done = time.perf_counter()
    return {
        "clone s": cloned - started,
        "add+commit+push s": done - cloned,
        "total s": done - started,
        "MB received": received_bytes(clone) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--lfs-mib", type=int, default=1024)
    args = parser.parse_args()
    logging.getLogger("repository").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lfsrepo-bench-") as scratch:
        with LocalGitServer(Path(scratch) / "server") as server:
            made = time.perf_counter()
            big = make_big_repo(server, "bench/big", files=args.files, lfs_bytes=args.lfs_mib * MiB)
            print(f"repository made in {time.perf_counter() - made:.1f} s", flush=True)
            results: dict[str, list[dict[str, float]]] = {label: [] for label in WAYS}
            labels = list(WAYS)
            for number in range(args.rounds):
                order = labels[number % 3 :] + labels[: number % 3]
                with tempfile.TemporaryDirectory(prefix="round-", dir=scratch) as work:
                    for label in order:
                        figures = one_way(Path(work), big.url, WAYS[label], label, number)
                        results[label].append(figures)
                        print(
                            f"round {number + 1}, {label}: "
                            + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()),
                            flush=True,
                        )
        print("medians:")
        for label, rounds in results.items():
            medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            print(f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))
        skip = statistics.median(r["MB received"] for r in results["skip_lfs_files=True"])
        only = statistics.median(r["MB received"] for r in results["push_only=True"])
        print(f"data: skip_lfs_files=True / push_only=True = {skip / only:.1f}x (target >= 10x)")
        full_t = statistics.median(r["total s"] for r in results["full clone"])
        skip_t = statistics.median(r["total s"] for r in results["skip_lfs_files=True"])
        only_t = statistics.median(r["total s"] for r in results["push_only=True"])
        print(
            f"time: full / push-only = {full_t / only_t:.1f}x, "
            f"skip_lfs_files / push-only = {skip_t / only_t:.1f}x"
        )


if __name__ == "__main__":
    os.environ.setdefault("GIT_AUTHOR_NAME", "lfsrepo bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@lfsrepo.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "lfsrepo bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@lfsrepo.invalid")
    main()
