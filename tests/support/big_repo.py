"""A big repository on the local server, made quickly: many small files and large LFS objects.

Committing 20,000 files one ``hash-object`` at a time (LocalGitServer.create_repo) takes minutes;
here one scratch clone adds them all and pushes to the bare repository by path, and the LFS
objects go straight into the server's store.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repository.testing import LocalGitServer

from .git import git

MiB = 1024**2
_BLOCK = MiB


@dataclass(frozen=True)
class BigRepo:
    url: str
    name: str
    files: int  # regular files, besides .gitattributes and the LFS pointers
    lfs_oids: dict[str, str]  # path -> oid


def lfs_pointer(oid: str, size: int) -> str:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def _object_chunks(index: int, size: int, block: bytes) -> Iterator[bytes]:
    """Distinct content per object without generating ``size`` random bytes."""
    for offset in range(0, size, _BLOCK):
        piece = min(_BLOCK, size - offset)
        yield (f"{index:08d}{offset:016d}".encode() + block)[:piece]


def make_big_repo(
    server: LocalGitServer,
    name: str,
    *,
    files: int = 20_000,
    file_bytes: int = 4096,
    per_folder: int = 1000,
    lfs_objects: int = 16,
    lfs_bytes: int = 1024 * MiB,
) -> BigRepo:
    """Create ``name`` on ``server`` with ``files`` text files of ``file_bytes`` (random base64,
    ``per_folder`` to a folder) and ``lfs_objects`` LFS files of ``lfs_bytes`` in all."""
    url = server.create_repo(name)
    block = os.urandom(_BLOCK)
    oids: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lfsrepo-big-") as scratch:
        work = Path(scratch)
        git(work, "init", "-q", "-b", "main")
        git(work, "config", "gc.auto", "0")  # no gc left running while the folder goes
        git(work, "config", "maintenance.auto", "false")
        for index in range(files):
            folder = work / "data" / f"{index // per_folder:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            text = base64.b64encode(os.urandom(file_bytes * 3 // 4)).decode()
            (folder / f"{index:06d}.txt").write_text(text + "\n")
        (work / "models").mkdir()
        size = lfs_bytes // lfs_objects
        for index in range(lfs_objects):
            digest = hashlib.sha256()
            for chunk in _object_chunks(index, size, block):
                digest.update(chunk)
            oid = digest.hexdigest()
            server.store.ingest(oid, size, _object_chunks(index, size, block))
            path = f"models/shard-{index:03d}.bin"
            (work / path).write_text(lfs_pointer(oid, size))
            oids[path] = oid
        (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
        no_filters = ["-c", "filter.lfs.process=", "-c", "filter.lfs.clean=cat"]
        git(work, *no_filters, "-c", "filter.lfs.required=false", "add", "-A")
        git(work, "commit", "-q", "-m", f"{files} files and {lfs_objects} LFS objects")
        git(work, "push", "-q", "--no-verify", str(server.repo_path(name)), "main:main")
    return BigRepo(url, name, files, oids)
