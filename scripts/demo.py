"""The main job end to end, against the embedded local git + LFS server.

Starts a server (multipart threshold lowered to 8 MiB so the parallel-part agent is exercised),
creates an empty repository, clones it with `Repository`, enables the multipart agent, writes a
config file, a 12 MB checkpoint and a 40 MiB dataset shard inside `with repo.commit(...)`, pushes
(the last commit without blocking, followed through `repo.command_queue`), then checks on the
server that every LFS object arrived with the right sha256 and that the commit is on the remote.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from repository import Repository
from repository.testing import LocalGitServer

MiB = 1024 * 1024


def write_random(path: Path, size: int) -> str:
    """Write `size` pseudo-random bytes to `path` and return their sha256."""
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as out:
        for offset in range(0, size, MiB):
            chunk = block[: min(MiB, size - offset)]
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="lfsrepo-demo-") as workdir,
        LocalGitServer(multipart_threshold=8 * MiB, chunk_size=5 * MiB) as server,
    ):
        remote_url = server.create_repo("demo/model")
        print(f"server:  {server.base_url}  (repository {remote_url})")

        repo = Repository(
            Path(workdir) / "model",
            clone_from=remote_url,
            git_user="Demo",
            git_email="demo@lfsrepo.invalid",
        )
        repo.lfs_enable_largefiles()

        started = time.monotonic()
        expected: dict[str, str] = {}
        with repo.commit("Add config and a first checkpoint"):
            Path("config.json").write_text('{"hidden_size": 256}\n')
            expected["checkpoint.bin"] = write_random(Path("checkpoint.bin"), 12 * 1000 * 1000)

        with repo.commit("Add a dataset shard", blocking=False):
            Path("data").mkdir(exist_ok=True)
            expected["data/shard-00000.arrow"] = write_random(
                Path("data/shard-00000.arrow"), 40 * MiB
            )
        push = repo.command_queue[-1]
        print(f"push:    non-blocking, {push!r}")
        repo.wait_for_commands()
        if push.failed:
            print(f"demo: the push failed:\n{push.stderr}", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - started

        head = repo.git_head_hash()
        remote_head = server.list_refs("demo/model").get(f"refs/heads/{repo.current_branch}")
        problems = [] if remote_head == head else [f"remote branch is at {remote_head}, not {head}"]
        for name, oid in expected.items():
            stored = server.lfs_object_path(oid)
            if stored is None:
                problems.append(f"{name}: not on the server")
                continue
            with open(stored, "rb") as stored_file:
                if hashlib.file_digest(stored_file, "sha256").hexdigest() != oid:
                    problems.append(f"{name}: stored bytes do not match {oid}")

        for name, oid in expected.items():
            size = os.path.getsize(Path(repo.local_dir) / name)
            received = server.bytes_received(oid) / MiB
            print(
                f"object:  {name:<24} {size / MiB:7.1f} MiB  sha256 {oid[:16]}…  "
                f"server received {received:.1f} MiB  "
                f"{'ok' if server.lfs_object_path(oid) else 'MISSING'}"
            )
        print(
            f"commit:  {head[:12]} on {repo.current_branch} "
            f"({'on the remote' if remote_head == head else 'NOT on the remote'})"
        )
        print(f"time:    {elapsed:.1f} s for two commits and pushes")
        if problems:
            print("demo: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print("demo: OK, every object arrived with the right sha256")
        return 0


if __name__ == "__main__":
    sys.exit(main())
