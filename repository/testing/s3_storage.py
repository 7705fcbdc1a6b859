"""LFS objects in an S3 bucket: presigned transfers, and multipart objects verified before they
count as stored.

Keys under the prefix: ``objects/ab/cd/<oid>`` holds an object (and its pending multipart
upload); ``verified/ab/cd/<oid>`` is written, holding the size, once the object's size and sha256
were checked. Only an object with that marker is stored: a download batch never hands out an
object that is half verified, or left behind by a server killed while verifying.

A single PUT carries the oid as its signed ``x-amz-checksum-sha256`` header, so S3 refuses wrong
bytes itself and the ``verify`` call only reads S3's answer (HEAD); a store that keeps no such
checksum gets the object read back instead. A multipart object has no whole-object checksum in
S3: its completion reads it back (streamed GetObject) and hashes it.

The boto3 client signs with SigV4, uses path-style addressing on a custom endpoint, and adds
checksums only where the operation requires them (boto3 1.36+ adds CRC32 headers by default,
which many S3-compatible stores refuse).

Example:
    >>> chunk_size_for(50 * 10**9, preferred=5 * MiB) // MiB, chunk_size_for(10 * MiB, 64 * MiB)
    (5, 67108864)
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from .errors import MissingDependencyError, S3Error, StorageError

MiB = 1024**2
GiB = 1024**3
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 * GiB
URL_TTL_S = 3600
# Part URLs live long enough for the whole object at this rate (at most 7 days, SigV4's limit):
# a slow link must not outlive the URLs it was handed.
SLOWEST_RATE = 1_000_000
MAX_URL_TTL_S = 7 * 24 * 3600
PENDING_MAX_AGE_S = 7 * 24 * 3600.0
SWEEP_INTERVAL_S = 3600.0
# Reading an object back: ranges this large, this many in flight (at most 64 MiB buffered).
VERIFY_RANGE = 16 * MiB
VERIFY_STREAMS = 4
S3_EXTRA = "lfsrepo[s3]"
UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_-]+")

T = TypeVar("T")


def make_client(
    endpoint: str | None,
    region: str | None,
    credentials: tuple[str, str] | None = None,
    pool_size: int = 32,
) -> Any:
    """A boto3 S3 client as the server uses it; credentials from the standard AWS chain
    (environment, ``~/.aws``, instance role) unless given as ``(access key, secret key)``."""
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError as error:
        raise MissingDependencyError(
            f"storing LFS objects in S3 needs boto3: pip install '{S3_EXTRA}'", name="boto3"
        ) from error
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=pool_size,
        retries={"max_attempts": 5, "mode": "standard"},
    )
    access_key, secret_key = credentials or (None, None)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def chunk_size_for(size: int, preferred: int) -> int:
    """The part size for an object of ``size`` bytes: ``preferred`` unless the object would then
    need more than 10,000 parts (S3's cap), in which case the smallest whole number of MiB that
    fits; never under 5 MiB (S3's minimum part).

    Example:
        >>> chunk_size_for(5 * 1024**4, preferred=64 * MiB) // MiB  # 5 TiB, the largest object
        525
    """
    needed = -(-size // MAX_PARTS)
    return max(preferred, MIN_PART_SIZE, -(-needed // MiB) * MiB)


def encode_upload_id(upload_id: str) -> str:
    """An S3 upload id as one URL path segment (stores pick their own alphabets).

    Example:
        >>> decode_upload_id(encode_upload_id("a/b+c=")) == "a/b+c="
        True
    """
    return base64.urlsafe_b64encode(upload_id.encode()).decode().rstrip("=")


def decode_upload_id(segment: str) -> str:
    """The upload id of :func:`encode_upload_id`'s segment; a 404 :class:`StorageError` if it
    is none."""
    try:
        if not UPLOAD_ID_RE.fullmatch(segment):
            raise ValueError(segment)
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()
    except ValueError:
        raise StorageError(404, f"invalid upload id {segment[:40]!r}") from None


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload in S3, new or resumed: ``parts`` maps the number of each part S3
    already holds to its size."""

    upload_id: str
    size: int
    chunk_size: int
    parts: dict[int, int]

    @property
    def part_count(self) -> int:
        """How many parts the object has (the last one may be shorter)."""
        return max(1, -(-self.size // self.chunk_size))

    def consistent(self) -> bool:
        """Whether the parts S3 holds fit this object's size and part size (a pending upload
        begun with another part size, or for a wrong size, does not).

        Example:
            >>> PendingUpload("u", 12 * MiB, 5 * MiB, {1: 5 * MiB, 3: 2 * MiB}).consistent()
            True
        """
        count = self.part_count
        last = self.size - (count - 1) * self.chunk_size
        return all(
            1 <= n <= count and length == (last if n == count else self.chunk_size)
            for n, length in self.parts.items()
        )


class S3Store:
    """The LFS objects of one server in ``bucket`` under ``prefix``; safe to use from threads.

    ``chunk_size``: the preferred part size (see :func:`chunk_size_for`). A pending multipart
    upload older than ``pending_max_age`` seconds is aborted, when a batch asks for its object
    and in a sweep at most hourly. Nothing talks to S3 until used; :meth:`check` proves the
    bucket reachable with the credentials given.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        credentials: tuple[str, str] | None = None,
        chunk_size: int = 64 * MiB,
        pending_max_age: float = PENDING_MAX_AGE_S,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.chunk_size = chunk_size
        self.pending_max_age = pending_max_age
        self.client = make_client(endpoint, region, credentials)
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error = ClientError
        self._boto_error = BotoCoreError
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}
        self._last_sweep = 0.0

    # -- keys -------------------------------------------------------------------------------

    def key(self, oid: str) -> str:
        """The object's key (also the key of its pending multipart upload)."""
        return f"{self.prefix}objects/{oid[:2]}/{oid[2:4]}/{oid}"

    def marker_key(self, oid: str) -> str:
        """The key whose presence says the object was verified; it holds the size."""
        return f"{self.prefix}verified/{oid[:2]}/{oid[2:4]}/{oid}"

    # -- calls ------------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[..., T], **params: Any) -> T:
        """``call(Bucket=..., **params)``; S3's refusal is a 502 :class:`StorageError`, no
        answer at all a 503 (the client may retry), both naming S3's own code and words."""
        try:
            return call(Bucket=self.bucket, **params)
        except self._client_error as error:
            code, message = self._error(error)
            raise StorageError(502, f"S3 refused {what}: {code}: {message}") from None
        except self._boto_error as error:
            raise StorageError(503, f"S3 did not answer {what}: {error}") from None

    @staticmethod
    def _error(error: Any) -> tuple[str, str]:
        details = error.response.get("Error", {})
        return str(details.get("Code", "")), str(details.get("Message", ""))

    def _missing(self, error: Any) -> bool:
        code = self._error(error)[0]
        return code in ("404", "NoSuchKey", "NotFound")

    @contextlib.contextmanager
    def _locked(self, oid: str) -> Iterator[None]:
        """One batch, completion or verification of ``oid`` at a time (in this process)."""
        with self._guard:
            entry = self._locks.setdefault(oid, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._locks[oid]

    def check(self) -> None:
        """Raise :class:`~repository.testing.S3Error` saying what to fix unless the bucket
        answers HeadBucket with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._client_error as error:
            code, message = self._error(error)
            where = f"bucket {self.bucket!r}" + (f" at {self.endpoint}" if self.endpoint else "")
            if code in ("404", "NoSuchBucket"):
                raise S3Error(f"{where} does not exist: create it first") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise S3Error(
                    f"{where} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials, and that they "
                    "may read and write the bucket"
                ) from None
            raise S3Error(f"{where}: HeadBucket failed: {code} {message}".strip()) from None
        except self._boto_error as error:
            raise S3Error(
                f"cannot use S3 bucket {self.bucket!r}: {error} (AWS credentials are read from "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws; the endpoint "
                "from --s3-endpoint)"
            ) from None

    # -- stored objects ---------------------------------------------------------------------

    def size(self, oid: str) -> int | None:
        """Size of the verified object, or None if it is not stored (or not verified yet)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.marker_key(oid))["Body"]
        except self._client_error as error:
            if self._missing(error):
                return None
            code, message = self._error(error)
            raise StorageError(
                502, f"S3 refused reading {oid}'s marker: {code}: {message}"
            ) from None
        except self._boto_error as error:
            raise StorageError(503, f"S3 did not answer reading {oid}'s marker: {error}") from None
        with contextlib.closing(body):
            return int(body.read())

    def open(self, oid: str) -> IO[bytes] | None:
        """The verified object's bytes as a stream (close it), or None if it is not stored."""
        if self.size(oid) is None:
            return None
        body: IO[bytes] = self._call("GetObject", self.client.get_object, Key=self.key(oid))["Body"]
        return body

    def ingest(self, oid: str, size: int | None, chunks: Iterable[bytes | memoryview]) -> None:
        """Store ``chunks`` as object ``oid`` (checked here, then by S3 against its sha256) and
        mark it verified: what ``create_repo`` puts in the store."""
        data = b"".join(chunks)
        if size is not None and len(data) != size:
            raise StorageError(422, f"size mismatch for {oid}: expected {size}, got {len(data)}")
        if hashlib.sha256(data).hexdigest() != oid:
            raise StorageError(422, f"content does not match oid {oid}")
        self._call(
            "PutObject",
            self.client.put_object,
            Key=self.key(oid),
            Body=data,
            ChecksumSHA256=checksum(oid),
        )
        self._mark(oid, len(data))

    def _mark(self, oid: str, size: int) -> None:
        self._call(
            "PutObject (marker)",
            self.client.put_object,
            Key=self.marker_key(oid),
            Body=str(size).encode(),
            ContentType="text/plain",
        )

    # -- presigned transfers ----------------------------------------------------------------

    def _presign(self, operation: str, params: dict[str, Any], ttl: int) -> str:
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=ttl
        )
        return url

    def put_action(self, oid: str, size: int) -> dict[str, Any]:
        """A basic upload action: a presigned PUT whose signed checksum header makes S3 refuse
        any bytes but the object's."""
        params = {"Key": self.key(oid), "ChecksumSHA256": checksum(oid)}
        return {
            "href": self._presign("put_object", params, URL_TTL_S),
            "header": {"x-amz-checksum-sha256": checksum(oid)},
            "expires_in": URL_TTL_S,
        }

    def get_action(self, oid: str) -> dict[str, Any]:
        """A download action: a presigned GET, which honours ``Range``."""
        return {
            "href": self._presign("get_object", {"Key": self.key(oid)}, URL_TTL_S),
            "expires_in": URL_TTL_S,
        }

    @staticmethod
    def part_url_ttl(size: int) -> int:
        """Seconds part URLs live: an hour, or long enough to send ``size`` bytes at 1 MB/s,
        at most 7 days.

        Example:
            >>> S3Store.part_url_ttl(10 * MiB), S3Store.part_url_ttl(50 * 10**9)
            (3600, 50000)
        """
        return min(MAX_URL_TTL_S, max(URL_TTL_S, size // SLOWEST_RATE))

    def part_urls(self, oid: str, upload: PendingUpload) -> list[str]:
        """Presigned UploadPart URLs, parts 1..n in order."""
        ttl = self.part_url_ttl(upload.size)
        params = {"Key": self.key(oid), "UploadId": upload.upload_id}
        return [
            self._presign("upload_part", {**params, "PartNumber": n}, ttl)
            for n in range(1, upload.part_count + 1)
        ]

    # -- multipart uploads ------------------------------------------------------------------

    def multipart(self, oid: str, size: int) -> PendingUpload:
        """The pending multipart upload of ``oid``: the newest one S3 holds whose parts fit
        ``size``, so that a client that asks again resumes it, else a new one. Uploads older
        than ``pending_max_age``, or that do not fit, are aborted on the way."""
        key = self.key(oid)
        chunk = chunk_size_for(size, self.chunk_size)
        with self._locked(oid):
            for upload_id, _ in sorted(self._pending(key), key=lambda u: u[1], reverse=True):
                parts = self._list_parts(key, upload_id)
                if parts is None:
                    continue  # completed or aborted meanwhile
                upload = PendingUpload(upload_id, size, chunk, parts)
                if upload.consistent():
                    return upload
                self._abort(key, upload_id)
            created = self._call(
                "CreateMultipartUpload",
                self.client.create_multipart_upload,
                Key=key,
                ContentType="application/octet-stream",
            )
            return PendingUpload(created["UploadId"], size, chunk, {})

    def _pending(self, key: str) -> list[tuple[str, float]]:
        """``(upload id, age in seconds)`` of the pending uploads of ``key`` that are not
        stale; stale ones are aborted."""
        now = time.time()
        found = []
        for upload in self._uploads(key):
            if upload["Key"] != key:
                continue  # the listing is by prefix
            initiated = upload["Initiated"].timestamp()
            if now - initiated > self.pending_max_age:
                self._abort(key, upload["UploadId"])
            else:
                found.append((upload["UploadId"], initiated))
        return found

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Uploads", [])
        except self._client_error as error:
            code, message = self._error(error)
            raise StorageError(502, f"S3 refused ListMultipartUploads: {code}: {message}") from None
        except self._boto_error as error:
            raise StorageError(503, f"S3 did not answer ListMultipartUploads: {error}") from None

    def _list_parts(self, key: str, upload_id: str) -> dict[int, int] | None:
        parts: dict[int, int] = {}
        paginator = self.client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                parts.update((p["PartNumber"], p["Size"]) for p in page.get("Parts", []))
        except self._client_error as error:
            if self._error(error)[0] == "NoSuchUpload":
                return None
            code, message = self._error(error)
            raise StorageError(502, f"S3 refused ListParts: {code}: {message}") from None
        except self._boto_error as error:
            raise StorageError(503, f"S3 did not answer ListParts: {error}") from None
        return parts

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(StorageError):  # gone already, or S3 will age it out
            self._call(
                "AbortMultipartUpload",
                self.client.abort_multipart_upload,
                Key=key,
                UploadId=upload_id,
            )

    def abort_stale(self, now: float | None = None) -> list[str]:
        """Abort every pending upload under the prefix older than ``pending_max_age``; return
        their keys. Failures are left for the next sweep (or the bucket's lifecycle rule)."""
        now = time.time() if now is None else now
        self._last_sweep = now
        aborted = []
        for upload in self._uploads(f"{self.prefix}objects/"):
            if now - upload["Initiated"].timestamp() > self.pending_max_age:
                self._abort(upload["Key"], upload["UploadId"])
                aborted.append(upload["Key"])
        return aborted

    def sweep_if_due(self) -> None:
        """:meth:`abort_stale`, if the last sweep was over an hour ago."""
        if time.time() - self._last_sweep > SWEEP_INTERVAL_S:
            with contextlib.suppress(StorageError):
                self.abort_stale()

    def complete(self, oid: str, upload_id: str, size: int, parts: object) -> None:
        """Complete the upload with the client's part list (ETags as they came), then verify
        size and sha256 and mark the object stored.

        Idempotent: a completion of an object already stored succeeds. A part list S3 refuses
        is a 422 naming S3's reason (the upload stays pending, so the client may fix it); an
        object that is not what the oid says is deleted, and a 422.
        """
        entries = _part_list(parts)
        key = self.key(oid)
        with self._locked(oid):
            if self._stored_already(oid, size):
                return
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": entries},
                )
            except self._client_error as error:
                code, message = self._error(error)
                if code != "NoSuchUpload" or not self._exists(key):
                    raise StorageError(*_completion_refusal(code, message, oid)) from None
                # Completed before (the answer was lost), not verified yet: verify it now.
            except self._boto_error as error:
                raise StorageError(
                    503, f"S3 did not answer CompleteMultipartUpload: {error}"
                ) from None
            self._verify_stream(oid, size)
            self._mark(oid, size)

    def _stored_already(self, oid: str, size: int) -> bool:
        """Whether ``oid`` is stored (verified) already; a 422 if it is, with another size."""
        have = self.size(oid)
        if have is not None and have != size:
            raise StorageError(422, f"object {oid} is stored with size {have}, not {size}")
        return have is not None

    def verify(self, oid: str, size: int) -> None:
        """After a basic upload: check the object S3 holds and mark it stored. S3's own sha256
        check of the PUT is enough when S3 reports it; otherwise the object is read back. A
        wrong object is deleted (422); a missing one is a 404."""
        key = self.key(oid)
        with self._locked(oid):
            if self._stored_already(oid, size):
                return
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            except self._client_error as error:
                if self._missing(error):
                    raise StorageError(404, f"object {oid} not found: upload it first") from None
                code, message = self._error(error)
                raise StorageError(502, f"S3 refused HeadObject: {code}: {message}") from None
            except self._boto_error as error:
                raise StorageError(503, f"S3 did not answer HeadObject: {error}") from None
            if head["ContentLength"] != size:
                self._reject(oid, f"it has {head['ContentLength']} bytes, not {size}")
            if head.get("ChecksumSHA256") != checksum(oid):
                self._verify_stream(oid, size)
            self._mark(oid, size)

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self._client_error as error:
            if self._missing(error):
                return False
            raise StorageError(502, f"S3 refused HeadObject: {self._error(error)}") from None
        except self._boto_error as error:
            raise StorageError(503, f"S3 did not answer HeadObject: {error}") from None
        return True

    def _verify_stream(self, oid: str, size: int) -> None:
        """Read the object back and hash it; :meth:`_reject` it unless it is ``oid``.

        Ranges are fetched a few at a time and hashed in order: one GetObject stream is
        slower than hashing, and hashlib hashes while the other ranges arrive.
        """
        key = self.key(oid)
        length = self._call("HeadObject", self.client.head_object, Key=key)["ContentLength"]
        if length != size:
            self._reject(oid, f"it has {length} bytes, not {size}")
        digest = hashlib.sha256()
        starts = iter(range(0, size, VERIFY_RANGE))
        with ThreadPoolExecutor(VERIFY_STREAMS, "lfsrepo-verify") as pool:
            pending = collections.deque(
                pool.submit(self._read_range, key, start, size)
                for start in itertools.islice(starts, VERIFY_STREAMS)
            )
            while pending:
                block = pending.popleft().result()
                for start in itertools.islice(starts, 1):
                    pending.append(pool.submit(self._read_range, key, start, size))
                digest.update(block)
        if digest.hexdigest() != oid:
            self._reject(oid, f"its sha256 is {digest.hexdigest()}")

    def _read_range(self, key: str, start: int, size: int) -> bytes:
        end = min(start + VERIFY_RANGE, size) - 1
        body = self._call(
            "GetObject", self.client.get_object, Key=key, Range=f"bytes={start}-{end}"
        )["Body"]
        try:
            with contextlib.closing(body):
                data: bytes = body.read()
        except self._boto_error as error:
            raise StorageError(503, f"reading {key} back from S3 failed: {error}") from None
        if len(data) != end + 1 - start:
            raise StorageError(
                503, f"S3 sent {len(data)} bytes of {key} for a range of {end + 1 - start}"
            )
        return data

    def _reject(self, oid: str, why: str) -> None:
        self._call("DeleteObject", self.client.delete_object, Key=self.key(oid))
        raise StorageError(
            422,
            f"the uploaded object is not {oid}: {why}. It was deleted; upload it again "
            "(git push runs a new upload)",
        )


def checksum(oid: str) -> str:
    """The ``x-amz-checksum-sha256`` value of an object: its sha256 (the oid), base64.

    Example:
        >>> checksum("00" * 32)
        'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
    """
    return base64.b64encode(bytes.fromhex(oid)).decode()


def _part_list(parts: object) -> list[dict[str, Any]]:
    """The completion's ``[{partNumber, etag}]`` as S3 takes it, ETags untouched; a 422
    :class:`StorageError` for anything else.

    Example:
        >>> _part_list([{"partNumber": 1, "etag": '"a"'}])
        [{'PartNumber': 1, 'ETag': '"a"'}]
    """
    if not isinstance(parts, list) or not parts:
        raise StorageError(422, "'parts' must be a non-empty list of {partNumber, etag}")
    entries = []
    for position, part in enumerate(parts, 1):
        if not isinstance(part, dict):
            raise StorageError(422, f"part entry {position} is not an object")
        number, etag = part.get("partNumber"), part.get("etag")
        if number != position or isinstance(number, bool):
            raise StorageError(
                422,
                f"part entry {position}: got partNumber {number!r} (parts go 1, 2, ... in order)",
            )
        if not isinstance(etag, str) or not etag:
            raise StorageError(422, f"part {number}: 'etag' must be the ETag S3 answered")
        entries.append({"PartNumber": number, "ETag": etag})
    return entries


def _completion_refusal(code: str, message: str, oid: str) -> tuple[int, str]:
    """Status and message for a refused CompleteMultipartUpload, saying what to do."""
    if code == "NoSuchUpload":
        return 404, (
            f"the multipart upload of {oid} is no longer pending (aborted as stale, or "
            "completed with other parts): run the push again; it starts a new upload"
        )
    if code in ("InvalidPart", "InvalidPartOrder"):
        return 422, (
            f"S3 refused the part list ({code}: {message}): every part must be uploaded and "
            "its ETag passed back exactly as S3 answered it, quotes included"
        )
    if code == "EntityTooSmall":
        return 422, (
            f"S3 refused the parts ({code}: {message}): every part but the last must be at "
            "least 5 MiB, S3's minimum"
        )
    return 502, f"S3 refused CompleteMultipartUpload: {code}: {message}"
