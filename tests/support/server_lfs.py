"""A minimal LFS client for the local server's tests, written here from the protocol (batch API,
basic and multipart transfers) rather than taken from git-lfs or the transfer agent."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import requests

LFS_JSON = "application/vnd.git-lfs+json"
MiB = 1024**2
# Only keeps a broken test from hanging; no request here is meant to take long.
HTTP_TIMEOUT_S = 30


def batch(
    repo_url: str,
    operation: str,
    objects: list[dict[str, Any]],
    transfers: Iterable[str] = ("basic",),
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a batch request and return the parsed answer, asserting a 200."""
    response = requests.post(
        f"{repo_url}/info/lfs/objects/batch",
        json={"operation": operation, "transfers": list(transfers), "objects": objects},
        headers={"Accept": LFS_JSON, "Content-Type": LFS_JSON, **(headers or {})},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    return response.json()


def upload_action(repo_url: str, data: bytes, transfers: Iterable[str] = ("basic",)) -> Any:
    """The upload action the batch API hands out for ``data``."""
    oid = hashlib.sha256(data).hexdigest()
    answer = batch(repo_url, "upload", [{"oid": oid, "size": len(data)}], transfers)
    return answer["objects"][0]["actions"]["upload"]


def multipart_upload(
    repo_url: str, data: bytes, skip_parts: Iterable[int] = ()
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Upload ``data`` the Hugging Face way, one PUT per part (but ``skip_parts``), without the
    completion POST; return the action and the ``parts`` list that completes it."""
    oid = hashlib.sha256(data).hexdigest()
    answer = batch(repo_url, "upload", [{"oid": oid, "size": len(data)}], ("basic", "multipart"))
    assert answer["transfer"] == "multipart"
    action = answer["objects"][0]["actions"]["upload"]
    header = dict(action["header"])
    chunk = int(header.pop("chunk_size"))
    parts = []
    for key in sorted(header):
        number = int(key)
        if number in skip_parts:
            continue
        body = data[(number - 1) * chunk : number * chunk]
        response = requests.put(header[key], data=body, timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200, response.text
        parts.append({"partNumber": number, "etag": response.headers["ETag"]})
    return action, parts


def complete(action: dict[str, Any], oid: str, parts: list[dict[str, Any]]) -> requests.Response:
    """POST the completion of a multipart upload."""
    return requests.post(action["href"], json={"oid": oid, "parts": parts}, timeout=HTTP_TIMEOUT_S)
