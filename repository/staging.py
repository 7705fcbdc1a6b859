"""Staging large LFS files at the speed of the disk: no per-byte pipe through git, every core busy.

``git add`` of an LFS file streams every byte through a pipe to git-lfs's clean filter, which
hashes it and copies it into the object store, one file after another. Here each large file is
read once and hashed, while the kernel copies each block just hashed (or the file is reflinked,
where the filesystem can), files in parallel, into ``.git/lfs/objects`` by an atomic rename.
Then git itself stages them, with a clean filter that answers each path with its pointer instead
of reading the file, so the index is exactly what a plain ``git add`` writes, real stat data
included.

Safety: a file's pointer is only ever given for the content it was made from. A file is taken only
once it has been quiet for a second (its mtime a second old), so any later write moves its mtime
to a later clock tick; its identity (device, inode, size, mtime and ctime in nanoseconds) is taken
before the read and again after it, and the filter checks it once more when git stages the file:
any difference, and git-lfs's own filter cleans what git read instead. Not taken at all (git-lfs's
filter does them): small files, LFS extensions, a relocated ``lfs.storage``.

Example:
    >>> print(pointer("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", 1))
    version https://git-lfs.github.com/spec/v1
    oid sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
    size 1
    <BLANKLINE>
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import queue
import shlex
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from .git import GitRunner
from .lfs import escape_pattern

# Below this, git-lfs's own filter is as quick as anything here (one filter process for all).
FAST_PATH_MIN_BYTES = 1024**2
# A file is taken once its last write is this old (see the module docstring).
QUIET_S = 1.0
WORKERS_VARIABLE = "LFSREPO_STAGING_WORKERS"
_BUFFER_BYTES = 8 * 1024**2  # one block hashed while the kernel copies the one before
_NO_REFLINK = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.EPERM)
_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks (btrfs, XFS), no bytes copied
_FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_clean_filter.py")
FILTER_DRIVER = "lfsrepo-staged"
ATTRIBUTES_BEGIN = "# lfsrepo: files being staged (removed when done; safe to delete)"
ATTRIBUTES_END = "# lfsrepo: end"


@dataclass(frozen=True)
class Identity:
    """What tells one version of a file from another without reading it."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> Identity:
        return cls(
            status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
        )


@dataclass(frozen=True)
class Stored:
    """A file whose LFS object is in the store: its pointer, and the version it was made from."""

    path: str  # relative to the clone, as git names it
    pointer: str
    identity: Identity


def pointer(oid: str, size: int) -> str:
    """The pointer file ``git lfs clean`` writes for content of ``size`` bytes (empty content
    has an empty pointer)."""
    if size == 0:
        return ""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def workers(files: int, environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """How many files are stored at once: ``LFSREPO_STAGING_WORKERS``, else one per core.

    Example:
        >>> workers(8, {"LFSREPO_STAGING_WORKERS": "2"}), workers(1, {})
        (2, 1)
    """
    wanted = environ.get(WORKERS_VARIABLE, "")
    count = int(wanted) if wanted.isdigit() and int(wanted) > 0 else (os.cpu_count() or 1)
    return max(1, min(count, files))


def fast_path_usable(git: GitRunner) -> bool:
    """Whether the clone stores LFS objects the default way (no extension, no ``lfs.storage``)."""
    config = git.run(["config", "--get-regexp", r"^lfs\.(extension\..*|storage)$"], check=False)
    return config.returncode == 1  # none of those keys is set


def store_all(workdir: str, git_dir: str, paths: Sequence[str]) -> list[Stored]:
    """Put the LFS objects of the large files among ``paths`` into the store, in parallel; the
    files that are small, or that changed while being read, are left to git-lfs's filter."""
    large = [path for path in paths if _size(os.path.join(workdir, path)) >= FAST_PATH_MIN_BYTES]
    if not large:
        return []
    temp = os.path.join(git_dir, "lfs", "tmp")
    os.makedirs(temp, exist_ok=True)
    with ThreadPoolExecutor(workers(len(large)), thread_name_prefix="lfsrepo-stage") as pool:
        results = pool.map(lambda path: store(workdir, git_dir, temp, path), large)
        return [stored for stored in results if stored is not None]


def store(workdir: str, git_dir: str, temp: str, path: str) -> Stored | None:
    """Store one file's LFS object; None if it changed while being read (or is not a file)."""
    full = os.path.join(workdir, path)
    before = _quiet_identity(full)
    if before is None:
        return None
    source = os.open(full, os.O_RDONLY)
    try:
        descriptor, partial = tempfile.mkstemp(dir=temp, prefix="lfsrepo-")
        try:
            with os.fdopen(descriptor, "wb", buffering=0) as target:
                digest = _copy_and_hash(source, target.fileno())
            after = Identity.of(os.fstat(source))
            if after != before or Identity.of(os.stat(full)) != before:
                return None
            oid = digest.hexdigest()
            if before.size:
                _place(partial, os.path.join(git_dir, "lfs", "objects", oid[:2], oid[2:4], oid))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
    finally:
        os.close(source)
    return Stored(path, pointer(oid, before.size), before)


@contextlib.contextmanager
def clean_filter(git_dir: str, stored: Sequence[Stored]) -> Iterator[list[str]]:
    """While it lasts, ``git add`` of the stored files takes their pointers without reading them
    (see _clean_filter.py); yields the ``git -c`` options that define the filter.

    git has no way to swap the filter of one command but attributes: the stored paths get a
    filter of their own in ``.git/info/attributes`` (which outranks ``.gitattributes``), between
    two marker lines, removed when done, or by recovery.py after a kill.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="lfsrepo-staged-") as manifest:
        json.dump(
            {item.path: {"pointer": item.pointer, **asdict(item.identity)} for item in stored},
            manifest,
        )
        manifest.flush()
        command = shlex.join([sys.executable, "-I", _FILTER, manifest.name]) + " %f"
        lines = [f"{escape_pattern(item.path)} filter={FILTER_DRIVER}" for item in stored]
        with _attributes_added(git_dir, lines):
            yield [
                "-c",
                f"filter.{FILTER_DRIVER}.clean={command}",
                "-c",
                f"filter.{FILTER_DRIVER}.required=true",
            ]


def remove_attributes(git_dir: str) -> bool:
    """Take lfsrepo's lines out of ``.git/info/attributes`` (a killed staging left them);
    return whether there were any.

    Example:
        >>> remove_attributes("/nonexistent/.git")
        False
    """
    path = os.path.join(git_dir, "info", "attributes")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return False
    if ATTRIBUTES_BEGIN not in text:
        return False
    before, _, rest = text.partition(ATTRIBUTES_BEGIN)
    _, _, after = rest.partition(ATTRIBUTES_END)
    _write_atomically(path, before + after.removeprefix("\n"))
    return True


@contextlib.contextmanager
def _attributes_added(git_dir: str, lines: Sequence[str]) -> Iterator[None]:
    path = os.path.join(git_dir, "info", "attributes")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, encoding="utf-8") as handle:
            original = handle.read()
    except FileNotFoundError:
        original = ""
    block = "\n".join([ATTRIBUTES_BEGIN, *lines, ATTRIBUTES_END]) + "\n"
    separator = "" if not original or original.endswith("\n") else "\n"
    _write_atomically(path, original + separator + block)
    try:
        yield
    finally:
        remove_attributes(git_dir)


def _write_atomically(path: str, text: str) -> None:
    partial = f"{path}.lfsrepo-{os.getpid()}"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def _quiet_identity(full: str) -> Identity | None:
    """The file's identity once its last write is QUIET_S old (waiting if need be)."""
    for _ in range(3):
        try:
            status = os.stat(full)
        except OSError:
            return None
        age = time.time() - status.st_mtime
        if age >= QUIET_S:
            return Identity.of(status) if _is_regular(status) else None
        if age < 0:
            return None  # a write time in the future: the clock cannot tell versions apart
        time.sleep(QUIET_S - age + 0.01)
    return None  # still being written: git-lfs's filter takes it


def _copy_and_hash(source: int, target: int) -> hashlib._Hash:
    """sha256 of ``source``, copied into ``target``: shared blocks where the filesystem can,
    else copied by the kernel (``copy_file_range``) in a second thread, one block behind the
    hashing, so each block is read from disk once and no byte of the copy passes through Python.
    """
    digest = hashlib.sha256()
    try:
        fcntl.ioctl(target, _FICLONE, source)
    except OSError as error:
        if error.errno not in _NO_REFLINK:
            raise
    else:
        _hash_blocks(source, digest, lambda offset, count: None)
        return digest
    hashed: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
    failures: list[OSError] = []

    def copy_hashed_blocks() -> None:
        while (block := hashed.get()) is not None:
            if not failures:
                try:
                    _copy_range(source, target, *block)
                except OSError as error:  # a full disk, say: reported by the hashing thread
                    failures.append(error)

    copier = threading.Thread(target=copy_hashed_blocks, name="lfsrepo-stage-copy")
    copier.start()
    try:
        _hash_blocks(source, digest, lambda offset, count: hashed.put((offset, count)), failures)
    finally:
        hashed.put(None)
        copier.join()
    if failures:
        raise failures[0]
    return digest


def _hash_blocks(
    source: int,
    digest: hashlib._Hash,
    then: Callable[[int, int], None],
    failures: Sequence[OSError] = (),
) -> None:
    """Hash ``source`` from its start; ``then(offset, count)`` after each block."""
    buffer = bytearray(_BUFFER_BYTES)
    offset = 0
    while not failures and (count := os.preadv(source, [buffer], offset)):
        digest.update(memoryview(buffer)[:count])
        then(offset, count)
        offset += count


def _copy_range(source: int, target: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` from ``source`` to the same offset of ``target``."""
    while count:
        try:
            copied = os.copy_file_range(source, target, count, offset, offset)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            copied = os.pwrite(target, os.pread(source, count, offset), offset)
        if not copied:  # the source got shorter: the identity check refuses the copy
            return
        offset += copied
        count -= copied


def _place(partial: str, final: str) -> None:
    """Move a complete object into the store, unless it is already there."""
    if os.path.exists(final):
        return
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.chmod(partial, 0o644)
    os.replace(partial, final)


def _is_regular(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode)


def _size(full: str) -> int:
    try:
        status = os.lstat(full)
    except OSError:
        return 0
    return status.st_size if _is_regular(status) else 0
