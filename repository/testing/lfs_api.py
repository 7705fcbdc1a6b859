"""The Git LFS API of the local server: batch, basic transfers, verify, HF-style multipart.

Routes, under ``/<repo>.git/info/lfs``:
``POST objects/batch``, ``PUT|GET objects/<oid>`` (basic), ``POST verify``,
``PUT multipart/<oid>/<upload>/<part>`` (part, answers an ETag) and
``POST multipart/<oid>/<upload>`` (completion). Object and part URLs are signed (see auth.py);
with ``action_authorization``, basic transfer and verify actions carry an ``Authorization`` header
instead. With a ``storage_url``, every action URL points at that other origin.

Over an :class:`~repository.testing.s3_storage.S3Store`, objects never pass through the server:
transfers are presigned S3 URLs, and the only routes besides batch and verify are multipart
completions, ``POST s3-multipart/<oid>/<size>/<chunk size>/<expiry>/<upload>``, each authorised
by its own signed URL (the clients send no token there) that carries what the completion needs.

Example:
    >>> LfsApi.split_path("/ns/m.git/info/lfs/objects/batch")
    ('ns/m', 'objects/batch')
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from ._http import (
    CHUNK,
    Environ,
    Response,
    body_chunks,
    content_length,
    drop_connection,
    json_response,
    read_json,
    status_line,
)
from .auth import Auth
from .errors import HttpError, InvalidArgumentError, StorageError
from .faults import FaultInjector
from .repos import RepoStore, normalize_name
from .s3_storage import MAX_SINGLE_PUT, S3Store, decode_upload_id, encode_upload_id
from .storage import ObjectStore, check_oid, check_size

LFS_PATH_RE = re.compile(r"(?P<repo>/.+?)(?:\.git)?/info/lfs/(?P<rest>.*)")
MAX_PARTS = 10_000
URL_TTL_S = 3600


class LfsApi:
    """Serves the LFS API over one :class:`ObjectStore` or :class:`S3Store`, shared by all
    repositories (an object pushed to one repository can be fetched from any: objects are
    content-addressed).

    Uploads above ``multipart_threshold`` go multipart for a client that lists it, in parts of
    ``chunk_size`` (more if the object would need over 10,000 parts). ``auto_create``: an upload
    batch for a missing repository creates it. ``injector`` returns the fault setting in force.
    """

    def __init__(
        self,
        store: ObjectStore | S3Store,
        repos: RepoStore,
        auth: Auth,
        *,
        multipart_threshold: int,
        chunk_size: int,
        auto_create: bool,
        injector: Callable[[], FaultInjector],
        action_authorization: bool = False,
    ) -> None:
        self.store = store
        self.repos = repos
        self.auth = auth
        self.multipart_threshold = multipart_threshold
        self.chunk_size = chunk_size
        self.auto_create = auto_create
        self.injector = injector
        self.action_authorization = action_authorization
        self.storage_url: str | None = None  # set by the server once its storage port is bound
        self._received: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def split_path(path: str) -> tuple[str, str] | None:
        """``(repo name, route)`` for an LFS path, None for any other path; a 400
        :class:`HttpError` if the repository name is invalid.

        Example:
            >>> LfsApi.split_path("/a/b/info/lfs/verify"), LfsApi.split_path("/a/b.git/info/refs")
            (('a/b', 'verify'), None)
        """
        match = LFS_PATH_RE.fullmatch(path)
        if not match:
            return None
        try:
            return normalize_name(match["repo"]), match["rest"]
        except InvalidArgumentError as error:
            raise HttpError(400, str(error)) from None

    @property
    def _disk(self) -> ObjectStore:
        """The local store: its routes are served only when there is one (see ``__call__``)."""
        assert isinstance(self.store, ObjectStore)
        return self.store

    def bytes_received(self, oid: str) -> int:
        """All body bytes received for ``oid``: basic PUTs and parts, failed ones included."""
        with self._lock:
            return self._received.get(oid, 0)

    def __call__(self, environ: Environ, name: str, route: str) -> Response:
        """Handle one LFS request for repository ``name`` (``route``: the path after
        ``info/lfs/``); refusals are raised as :class:`HttpError`."""
        method = environ["REQUEST_METHOD"]
        parts = route.split("/")
        try:
            if route == "objects/batch" and method == "POST":
                self.auth.require(environ, lfs=True)
                return self._batch(environ, name)
            if self.action_authorization and parts[0] not in ("multipart", "s3-multipart"):
                self.auth.require_action(environ)
            else:
                self.auth.require(environ, lfs=True, allow_signed=True)
            if route == "verify" and method == "POST":
                return self._verify(environ)
            if isinstance(self.store, S3Store):
                if len(parts) == 6 and parts[0] == "s3-multipart" and method == "POST":
                    return self._complete_s3(environ, self.store, parts[1:])
                raise HttpError(
                    404,
                    f"no LFS route {method} {route[:200]}: objects are stored in S3, and "
                    "transfers go to the URLs the batch API hands out",
                )
            if len(parts) == 2 and parts[0] == "objects" and method == "PUT":
                return self._basic_upload(environ, check_oid(parts[1]))
            if len(parts) == 2 and parts[0] == "objects" and method in ("GET", "HEAD"):
                return self._download(environ, check_oid(parts[1]))
            if len(parts) == 4 and parts[0] == "multipart" and method == "PUT":
                if not parts[3].isdigit():
                    raise HttpError(404, f"invalid part number {parts[3][:20]!r}")
                return self._upload_part(environ, check_oid(parts[1]), parts[2], int(parts[3]))
            if len(parts) == 3 and parts[0] == "multipart" and method == "POST":
                return self._complete(environ, check_oid(parts[1]), parts[2])
        except StorageError as error:
            raise HttpError(error.status, error.message) from None
        except InvalidArgumentError as error:  # a malformed oid or size
            raise HttpError(422, str(error)) from None
        raise HttpError(404, f"no LFS route {method} {route[:200]}")

    # -- batch ------------------------------------------------------------------------------

    def _batch(self, environ: Environ, name: str) -> Response:
        request = read_json(environ)
        if not isinstance(request, dict):
            raise HttpError(422, "batch request must be a JSON object")
        operation = request.get("operation")
        if operation not in ("upload", "download"):
            raise HttpError(422, "'operation' must be 'upload' or 'download'")
        if request.get("hash_algo", "sha256") != "sha256":
            raise HttpError(409, "only hash_algo sha256 is supported")
        transfers = request.get("transfers") or ["basic"]
        objects = request.get("objects")
        if not isinstance(transfers, list) or not isinstance(objects, list) or not objects:
            raise HttpError(422, "'objects' must be a non-empty list and 'transfers' a list")
        wanted: list[tuple[str, int]] = []
        for item in objects:
            if not isinstance(item, dict):
                raise HttpError(422, "each object must be {oid, size}")
            try:
                wanted.append((check_oid(item.get("oid")), check_size(item.get("size"))))
            except InvalidArgumentError as error:
                raise HttpError(422, str(error)) from None
        if not self.repos.exists(name):
            if not (operation == "upload" and self.auto_create):
                raise HttpError(404, f"repository {name} not found")
            self.repos.create(name, exist_ok=True)
        if isinstance(self.store, S3Store) and operation == "upload":
            self.store.sweep_if_due()
        origin = self.storage_url or f"{environ['wsgi.url_scheme']}://{environ['HTTP_HOST']}"
        base = f"{origin}/{name}.git/info/lfs"
        stored = {oid: self.store.size(oid) for oid, _ in wanted}
        if operation == "download":
            # Large downloads go to a multipart-capable client too: the same ranged GET URL, so
            # its agent may fetch ranges in parallel.
            multipart = "multipart" in transfers and any(
                (have or 0) > self.multipart_threshold for have in stored.values()
            )
            return json_response(
                200,
                {
                    "transfer": "multipart" if multipart else "basic",
                    "objects": [
                        self._download_entry(base, oid, size, stored[oid]) for oid, size in wanted
                    ],
                },
            )
        multipart = "multipart" in transfers and any(
            size > self.multipart_threshold and stored[oid] is None for oid, size in wanted
        )
        return json_response(
            200,
            {
                "transfer": "multipart" if multipart else "basic",
                "objects": [
                    self._upload_entry(base, oid, size, stored[oid], multipart)
                    for oid, size in wanted
                ],
            },
        )

    def _action(self, base: str, path: str, *, signed: bool = False) -> dict[str, Any]:
        """An action on ``base/path``: a URL that authorises itself with a signature, as a
        presigned object store URL does, or (per-action mode, unless ``signed``) a plain URL
        with its own ``Authorization`` header."""
        full = base + "/" + path
        local = "/" + full.split("/", 3)[3]
        if signed or not self.action_authorization:
            return {"href": f"{full}?sig={self.auth.sign(local)}", "expires_in": URL_TTL_S}
        return {
            "href": full,
            "header": {"Authorization": self.auth.action_authorization(local)},
            "expires_in": URL_TTL_S,
        }

    def _download_entry(self, base: str, oid: str, size: int, have: int | None) -> dict[str, Any]:
        if have is None:
            return {"oid": oid, "size": size, "error": {"code": 404, "message": "object not found"}}
        if isinstance(self.store, S3Store):
            download = self.store.get_action(oid)
        else:
            download = self._action(base, f"objects/{oid}")
        return {"oid": oid, "size": have, "authenticated": True, "actions": {"download": download}}

    def _upload_entry(
        self, base: str, oid: str, size: int, have: int | None, multipart: bool
    ) -> dict[str, Any]:
        if have is not None:
            if have != size:
                return {
                    "oid": oid,
                    "size": size,
                    "error": {
                        "code": 422,
                        "message": f"object exists with size {have}, not {size}",
                    },
                }
            return {"oid": oid, "size": size, "authenticated": True}
        verify = self._action(base, "verify")
        if isinstance(self.store, S3Store):
            return self._s3_upload_entry(self.store, base, oid, size, multipart, verify)
        if not (multipart and size > self.multipart_threshold):
            return {
                "oid": oid,
                "size": size,
                "authenticated": True,
                "actions": {"upload": self._action(base, f"objects/{oid}"), "verify": verify},
            }
        chunk = max(self.chunk_size, -(-size // MAX_PARTS))
        upload = self._disk.multipart(oid, size, chunk)
        prefix = f"multipart/{oid}/{quote(upload.upload_id)}"
        header = {"chunk_size": str(upload.chunk_size)}
        for n in range(1, upload.part_count + 1):
            header[f"{n:05d}"] = self._action(base, f"{prefix}/{n}", signed=True)["href"]
        action = {**self._action(base, prefix, signed=True), "header": header}
        return {
            "oid": oid,
            "size": size,
            "authenticated": True,
            "actions": {"upload": action, "verify": verify},
        }

    def _s3_upload_entry(
        self,
        store: S3Store,
        base: str,
        oid: str,
        size: int,
        multipart: bool,
        verify: dict[str, Any],
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if not (multipart and size > self.multipart_threshold):
            if size > MAX_SINGLE_PUT:
                message = (
                    f"objects over {MAX_SINGLE_PUT // 1024**3} GiB need the multipart transfer "
                    "(S3 refuses larger single PUTs): run `lfsrepo lfs-enable-largefiles` in "
                    "the clone, then push again"
                )
                return {**entry, "error": {"code": 422, "message": message}}
            return {**entry, "actions": {"upload": store.put_action(oid, size), "verify": verify}}
        upload = store.multipart(oid, size)
        header = {"chunk_size": str(upload.chunk_size)}
        for n, url in enumerate(store.part_urls(oid, upload), 1):
            header[f"{n:05d}"] = url
        ttl = store.part_url_ttl(size)
        expires = int(time.time()) + ttl
        path = f"s3-multipart/{oid}/{size}/{upload.chunk_size}/{expires}"
        action = self._action(base, f"{path}/{encode_upload_id(upload.upload_id)}", signed=True)
        action.update(header=header, expires_in=ttl)
        return {**entry, "actions": {"upload": action, "verify": verify}}

    def _complete_s3(self, environ: Environ, store: S3Store, parts: list[str]) -> Response:
        oid = check_oid(parts[0])
        if not all(part.isdigit() for part in parts[1:4]):
            raise HttpError(404, "invalid completion URL")
        size, chunk_size, expires = (int(part) for part in parts[1:4])
        if time.time() > expires:
            raise HttpError(
                403,
                "this completion URL has expired: run the push again for a fresh one (the "
                "parts already uploaded are kept)",
            )
        body = read_json(environ)
        if not isinstance(body, dict) or body.get("oid") != oid:
            raise HttpError(422, 'completion body must be {"oid": <this oid>, "parts": [...]}')
        listed = body.get("parts")
        expected = max(1, -(-size // chunk_size))
        if isinstance(listed, list) and len(listed) != expected:
            raise HttpError(
                422,
                f"a {size}-byte object in {chunk_size}-byte parts has {expected} parts, "
                f"got {len(listed)}",
            )
        store.complete(oid, decode_upload_id(parts[4]), size, listed)
        return json_response(200, {"oid": oid, "size": size})

    # -- transfers --------------------------------------------------------------------------

    def _counted(self, oid: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            with self._lock:
                self._received[oid] = self._received.get(oid, 0) + len(chunk)
            yield chunk

    def _upload_body(
        self, environ: Environ, oid: str, length: int | None, injector: FaultInjector
    ) -> Iterator[bytes]:
        throttle = injector.throttle()
        if injector.drop_this_body():
            half = (length or 0) // 2
            for _ in self._counted(
                oid, body_chunks(environ, length, throttle=throttle, stop_after=half)
            ):
                pass
            drop_connection(environ)
        return self._counted(oid, body_chunks(environ, length, throttle=throttle))

    def _basic_upload(self, environ: Environ, oid: str) -> Response:
        length = content_length(environ)
        chunks = self._upload_body(environ, oid, length, self.injector())
        self._disk.ingest(oid, length, chunks)
        return status_line(200), [("Content-Length", "0")], []

    def _upload_part(self, environ: Environ, oid: str, upload_id: str, number: int) -> Response:
        upload = self._disk.pending(oid, upload_id)
        start, end = upload.part_range(number)
        length = content_length(environ)
        if length != end - start:
            raise HttpError(400, f"part {number} must be sent with Content-Length {end - start}")
        injector = self.injector()
        if injector.fail_this_part():
            for _ in self._upload_body(environ, oid, length, injector):
                pass
            raise HttpError(500, f"injected failure of part {number}")
        etag = upload.write_part(number, self._upload_body(environ, oid, length, injector))
        return status_line(200), [("ETag", etag), ("Content-Length", "0")], []

    def _complete(self, environ: Environ, oid: str, upload_id: str) -> Response:
        upload = self._disk.pending(oid, upload_id)
        body = read_json(environ)
        if not isinstance(body, dict) or body.get("oid") != oid:
            raise HttpError(422, 'completion body must be {"oid": <this oid>, "parts": [...]}')
        path = upload.complete(body.get("parts"))
        return json_response(200, {"oid": oid, "size": path.stat().st_size})

    def _verify(self, environ: Environ) -> Response:
        body = read_json(environ)
        if not isinstance(body, dict):
            raise HttpError(422, "verify body must be {oid, size}")
        oid, size = check_oid(body.get("oid")), check_size(body.get("size"))
        if isinstance(self.store, S3Store):
            self.store.verify(oid, size)
            return json_response(200, {"oid": oid, "size": size})
        have = self.store.size(oid)
        if have is None:
            raise HttpError(404, f"object {oid} not found")
        if have != size:
            raise HttpError(422, f"object {oid} has size {have}, not {size}")
        return json_response(200, {"oid": oid, "size": size})

    def _download(self, environ: Environ, oid: str) -> Response:
        size = self.store.size(oid)
        if size is None:
            raise HttpError(404, f"object {oid} not found")
        span = _parse_range(environ.get("HTTP_RANGE"), size)
        start, end = span or (0, size)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(end - start)),
            ("Accept-Ranges", "bytes"),
        ]
        status = status_line(200)
        if span is not None:
            status = status_line(206)
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        if environ["REQUEST_METHOD"] == "HEAD":
            return status, headers, []
        injector = self.injector()
        stop = start + (end - start) // 2 if injector.drop_this_body() else None
        return (
            status,
            headers,
            _file_body(environ, self._disk.path(oid), start, end, stop, injector),
        )


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a satisfiable single byte range, None to send the whole object.

    As RFC 9110 section 14: a header that is not one valid ``bytes`` range (another unit, a
    malformed or reversed range, several ranges) is ignored; a valid range that starts past the
    end is a 416 carrying ``Content-Range: bytes */<size>``.
    """
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)-(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first and last and int(last) < int(first):
        return None
    if first == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if last == "" else min(size, int(last) + 1)
    if start >= end:
        raise HttpError(
            416,
            f"Range {header[:100]!r} not satisfiable: the object has {size} bytes",
            [("Content-Range", f"bytes */{size}")],
        )
    return start, end


def _file_body(
    environ: Environ, path: Any, start: int, end: int, stop: int | None, injector: FaultInjector
) -> Iterator[bytes]:
    throttle = injector.throttle()
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        pos = start
        while pos < end:
            if stop is not None and pos >= stop:
                drop_connection(environ)
            want = min(CHUNK, end - pos, (stop - pos) if stop is not None else CHUNK)
            chunk = f.read(want)
            if not chunk:
                return
            pos += len(chunk)
            throttle.sent(len(chunk))
            yield chunk
