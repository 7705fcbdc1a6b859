"""Content-addressed LFS object store: every object verified (sha256 + size), written atomically.

Objects live at ``<root>/objects/ab/cd/<oid>``; uploads in progress at ``<root>/tmp``. A pending
multipart upload writes its parts straight into one preallocated file and hashes them in order as
they arrive, so completing it is a check and a rename, not a re-read.

Example:
    >>> import hashlib, pathlib, tempfile
    >>> data = b"hello world"
    >>> oid = hashlib.sha256(data).hexdigest()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = ObjectStore(pathlib.Path(tmp))
    ...     upload = store.multipart(oid, len(data), chunk_size=6)  # parts: 6 bytes, then 5
    ...     second = upload.write_part(2, [data[6:]])  # parts arrive in any order
    ...     first = upload.write_part(1, [data[:6]])
    ...     parts = [{"partNumber": 1, "etag": first}, {"partNumber": 2, "etag": second}]
    ...     upload.complete(parts).read_bytes(), store.size(oid)
    (b'hello world', 11)
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from ._http import CHUNK
from .errors import InvalidArgumentError, StorageError

OID_RE = re.compile(r"[0-9a-f]{64}")
MAX_OBJECT_SIZE = 5 * 1024**4  # 5 TiB, as S3


def check_oid(oid: object) -> str:
    """``oid`` if it is an LFS object id (a sha256: 64 lowercase hex digits), else
    :class:`InvalidArgumentError`. Only such ids ever become paths.

    Example:
        >>> check_oid("../../etc/passwd")
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: invalid oid '../../etc/passwd': expected ...
    """
    if not isinstance(oid, str) or not OID_RE.fullmatch(oid):
        raise InvalidArgumentError(
            f"invalid oid {str(oid)[:80]!r}: expected 64 lowercase hex digits"
        )
    return oid


def check_size(size: object) -> int:
    """``size`` if it is an object size, an int from 0 to 5 TiB (as S3), else
    :class:`InvalidArgumentError`; a JSON ``true`` is no size.

    Example:
        >>> check_size(True)
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: invalid size 'True': expected 0...
    """
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_OBJECT_SIZE:
        raise InvalidArgumentError(
            f"invalid size {str(size)[:40]!r}: expected 0..{MAX_OBJECT_SIZE}"
        )
    return size


class ObjectStore:
    """The verified object store of one server, plus its pending multipart uploads; safe to use
    from threads. Leftovers of a previous run in ``<root>/tmp`` are removed when it opens.

    Example:
        >>> import hashlib, pathlib, tempfile
        >>> oid = hashlib.sha256(b"hello").hexdigest()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ObjectStore(pathlib.Path(tmp))
        ...     stored = store.ingest(oid, 5, [b"hel", b"lo"])
        ...     stored.read_bytes(), store.size(oid), store.size("0" * 64)
        (b'hello', 5, None)
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)  # leftovers of a previous run are garbage
        self.tmp.mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(parents=True, exist_ok=True)
        self._uploads: dict[str, MultipartUpload] = {}
        self._lock = threading.Lock()

    def path(self, oid: str) -> Path:
        """Where ``oid`` is (or would be) stored; :class:`InvalidArgumentError` for a malformed
        oid, so that no other string ever becomes a path."""
        check_oid(oid)
        return self.root / "objects" / oid[:2] / oid[2:4] / oid

    def size(self, oid: str) -> int | None:
        """Size of the stored object, or None if it is not stored."""
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def ingest(self, oid: str, size: int | None, chunks: Iterable[bytes | memoryview]) -> Path:
        """Write ``chunks`` as object ``oid`` and return its path, accepting it only if its
        sha256 is ``oid`` and its length ``size`` (None: any length).

        A mismatch is a 422 :class:`StorageError`; an exception from ``chunks`` (a client gone
        away) goes through. Either way nothing of the object is left behind, and a reader never
        sees it half written.
        """
        check_oid(oid)
        digest = hashlib.sha256()
        written = 0
        tmp = self.tmp / f"{oid}.{secrets.token_hex(8)}"
        try:
            with open(tmp, "wb", buffering=0) as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
            if size is not None and written != size:
                raise StorageError(422, f"size mismatch for {oid}: expected {size}, got {written}")
            if digest.hexdigest() != oid:
                raise StorageError(422, f"content does not match oid {oid}")
            return self._publish(tmp, oid)
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, tmp: Path, oid: str) -> Path:
        final = self.path(oid)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return final

    def multipart(self, oid: str, size: int, chunk_size: int) -> MultipartUpload:
        """The pending multipart upload of ``oid``, created if there is none.

        Asked again for the same ``size``, it returns the same upload, whatever ``chunk_size``,
        so that a client that repeats its batch request resumes where it stopped. Another size
        replaces the pending upload (and its data).
        """
        check_oid(oid)
        check_size(size)
        with self._lock:
            upload = self._uploads.get(oid)
            if upload is not None and upload.size == size:
                return upload
            if upload is not None:
                # Not upload.discard(): that takes self._lock again, which is not reentrant.
                upload.file.unlink(missing_ok=True)
            upload = MultipartUpload(self, oid, size, chunk_size)
            self._uploads[oid] = upload
            return upload

    def pending(self, oid: str, upload_id: str) -> MultipartUpload:
        """The pending upload with this id; a 404 :class:`StorageError` if it was completed,
        replaced, discarded, or never existed."""
        with self._lock:
            upload = self._uploads.get(oid)
        if upload is None or upload.upload_id != upload_id:
            raise StorageError(404, f"no pending upload {upload_id} for {oid}")
        return upload

    def _finished(self, upload: MultipartUpload) -> None:
        with self._lock:
            if self._uploads.get(upload.oid) is upload:
                del self._uploads[upload.oid]


class MultipartUpload:
    """One pending multipart upload: parts written in place, hashed in order as they arrive.

    Made by :meth:`ObjectStore.multipart`. Part ``n`` (1-based) covers bytes
    ``[(n - 1) * chunk_size, n * chunk_size)``; the last one may be shorter.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     upload = ObjectStore(pathlib.Path(tmp)).multipart("0" * 64, 10, chunk_size=4)
        ...     upload.part_count, upload.part_range(3)
        (3, (8, 10))
    """

    def __init__(self, store: ObjectStore, oid: str, size: int, chunk_size: int) -> None:
        if chunk_size <= 0:
            raise InvalidArgumentError("chunk_size must be positive")
        self.store = store
        self.oid = oid
        self.size = size
        self.chunk_size = chunk_size
        self.part_count = max(1, -(-size // chunk_size))
        self.upload_id = secrets.token_hex(12)
        self.file = store.tmp / f"{oid}.multipart.{self.upload_id}"
        with open(self.file, "wb") as f:
            f.truncate(size)
        self._etags: dict[int, str] = {}
        # _states[k] is the sha256 of parts 1..k; rewound when a hashed part is sent again.
        self._states = [hashlib.sha256()]
        self._sends: dict[int, int] = {}
        self._lock = threading.Lock()

    def part_range(self, number: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of part ``number``; a 404 :class:`StorageError` if the
        upload has no such part."""
        if not 1 <= number <= self.part_count:
            raise StorageError(404, f"part {number} out of range 1..{self.part_count}")
        start = (number - 1) * self.chunk_size
        return start, min(start + self.chunk_size, self.size)

    def write_part(self, number: int, chunks: Iterable[bytes | memoryview]) -> str:
        """Store part ``number`` from ``chunks`` and return its ETag (quoted).

        The part must have exactly its length (else a 400 :class:`StorageError`). A part sent
        again replaces the earlier one, and its earlier ETag no longer completes the upload.
        """
        start, end = self.part_range(number)
        with self._lock:
            self._etags.pop(number, None)
            if len(self._states) > number:  # the part is sent again: forget hashes built on it
                del self._states[number:]
            self._sends[number] = send = self._sends.get(number, 0) + 1
            # The part next in line is hashed as it streams, saving the read-back.
            base = self._states[-1] if len(self._states) == number else None
            inline = base.copy() if base is not None else None
        offset = start
        fd = self._open(os.O_WRONLY)
        try:
            for chunk in chunks:
                if offset + len(chunk) > end:
                    raise StorageError(400, f"part {number} longer than {end - start} bytes")
                if inline is not None:
                    inline.update(chunk)
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(fd, view, offset)
                    offset += n
                    view = view[n:]
        finally:
            os.close(fd)
        if offset != end:
            raise StorageError(
                400, f"part {number} must be {end - start} bytes, got {offset - start}"
            )
        etag = f'"{secrets.token_hex(16)}"'
        with self._lock:
            self._etags[number] = etag
            if inline is not None and self._states[-1] is base and self._sends[number] == send:
                self._states.append(inline)
            self._hash_ready_parts()
        return etag

    def _hash_ready_parts(self) -> None:
        # Called with the lock held; reads just-written parts back from the page cache.
        with os.fdopen(self._open(os.O_RDONLY), "rb", buffering=0) as f:
            buf = memoryview(bytearray(CHUNK))
            while len(self._states) <= self.part_count and len(self._states) in self._etags:
                number = len(self._states)
                start, end = self.part_range(number)
                state = self._states[-1].copy()
                f.seek(start)
                left = end - start
                while left:
                    n = f.readinto(buf[: min(CHUNK, left)])
                    if not n:
                        raise StorageError(500, f"part {number} is short on disk")
                    state.update(buf[:n])
                    left -= n
                self._states.append(state)

    def _open(self, flags: int) -> int:
        # The file is gone once the upload is completed, discarded or replaced by another size.
        try:
            return os.open(self.file, flags)
        except FileNotFoundError:
            raise StorageError(
                404, f"upload {self.upload_id} of {self.oid} is no longer pending"
            ) from None

    def complete(self, parts: object) -> Path:
        """Check the client's part list, verify the sha256, publish the object; return its path.

        ``parts`` is the completion request's list of ``{"partNumber": n, "etag": ...}``, every
        part in order. A list that does not match the parts received is a 422
        :class:`StorageError` and changes nothing, so the client may fix it; content that does
        not match the oid is a 422 too, and discards the upload.
        """
        if not isinstance(parts, list):
            raise StorageError(422, "'parts' must be a list of {partNumber, etag}")
        with self._lock:
            if len(parts) != self.part_count:
                raise StorageError(422, f"expected {self.part_count} parts, got {len(parts)}")
            for expected, part in enumerate(parts, 1):
                if not isinstance(part, dict):
                    raise StorageError(422, f"part entry {expected} is not an object")
                number, etag = part.get("partNumber"), part.get("etag")
                if number != expected:
                    raise StorageError(
                        422, f"part {expected}: got partNumber {number!r} (parts go in order)"
                    )
                have = self._etags.get(number)
                if have is None:
                    raise StorageError(422, f"part {number} was never received")
                if not isinstance(etag, str) or etag.strip('"') != have.strip('"'):
                    raise StorageError(422, f"part {number}: etag {etag!r} does not match {have}")
            self._hash_ready_parts()
            if self._states[-1].hexdigest() != self.oid or len(self._states) != self.part_count + 1:
                self.discard()
                raise StorageError(
                    422, f"assembled content does not match oid {self.oid}; upload discarded"
                )
            path = self.store._publish(self.file, self.oid)
            self.store._finished(self)
            return path

    def discard(self) -> None:
        """Drop this upload and its data; its parts are refused from now on."""
        self.file.unlink(missing_ok=True)
        self.store._finished(self)
