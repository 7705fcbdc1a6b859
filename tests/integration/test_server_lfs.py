"""The LFS API over HTTP with a minimal client written here: batch, basic, verify, multipart."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from tests.support.server_lfs import (
    HTTP_TIMEOUT_S,
    LFS_JSON,
    MiB,
    batch,
    complete,
    multipart_upload,
)


def test_multipart_upload_over_threshold(remote_repo):
    server = remote_repo.server
    data = os.urandom(12 * MiB + 123)  # threshold 8 MiB, parts of 5 MiB: 3 parts
    oid = hashlib.sha256(data).hexdigest()
    action, parts = multipart_upload(remote_repo.url, data)
    assert len(action["header"]) == 4 and action["header"]["chunk_size"] == str(5 * MiB)
    assert sorted(action["header"])[:3] == ["00001", "00002", "00003"]
    assert server.lfs_object_size(oid) is None  # nothing is accepted before completion
    response = complete(action, oid, parts)
    assert response.status_code == 200, response.text
    assert server.lfs_object_path(oid).read_bytes() == data
    assert server.bytes_received(oid) == len(data)
    # the object now exists: no actions on upload, a download href that serves it
    again = batch(remote_repo.url, "upload", [{"oid": oid, "size": len(data)}], ("multipart",))
    assert "actions" not in again["objects"][0]
    down = batch(remote_repo.url, "download", [{"oid": oid, "size": len(data)}])["objects"][0]
    assert requests.get(down["actions"]["download"]["href"], timeout=HTTP_TIMEOUT_S).content == data


def test_multipart_only_when_client_asks_and_above_threshold(remote_repo):
    small, big = {"oid": "a" * 64, "size": 8 * MiB}, {"oid": "b" * 64, "size": 8 * MiB + 1}
    assert batch(remote_repo.url, "upload", [big])["transfer"] == "basic"
    assert batch(remote_repo.url, "upload", [small], ("basic", "multipart"))["transfer"] == "basic"
    mixed = batch(remote_repo.url, "upload", [small, big], ("basic", "multipart"))
    assert mixed["transfer"] == "multipart"
    small_action = mixed["objects"][0]["actions"]["upload"]
    assert "chunk_size" not in small_action.get("header", {})  # a plain single PUT


def test_repeated_batch_resumes_pending_upload(remote_repo):
    data = os.urandom(11 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    first, parts = multipart_upload(remote_repo.url, data, skip_parts={3})
    assert complete(first, oid, parts).json()["message"] == "expected 3 parts, got 2"
    second = batch(remote_repo.url, "upload", [{"oid": oid, "size": len(data)}], ("multipart",))
    action = second["objects"][0]["actions"]["upload"]
    assert action == first  # same upload, same part URLs
    chunk = 5 * MiB
    response = requests.put(
        action["header"]["00003"], data=data[2 * chunk :], timeout=HTTP_TIMEOUT_S
    )
    parts.append({"partNumber": 3, "etag": response.headers["ETag"]})
    assert complete(action, oid, parts).status_code == 200
    assert remote_repo.server.bytes_received(oid) == len(data)  # nothing was sent twice


def test_completion_errors_are_clear(remote_repo):
    data = os.urandom(9 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    action, parts = multipart_upload(remote_repo.url, data)
    bad_etag = [parts[0], {"partNumber": 2, "etag": '"nope"'}]
    response = complete(action, oid, bad_etag)
    assert response.status_code == 422 and "etag" in response.json()["message"]
    response = complete(action, oid, parts[::-1])
    assert response.status_code == 422 and "in order" in response.json()["message"]
    response = requests.post(action["href"], data=b"{not json", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 400 and "malformed JSON" in response.json()["message"]
    wrong_size = requests.put(action["header"]["00001"], data=b"short", timeout=HTTP_TIMEOUT_S)
    assert wrong_size.status_code == 400
    assert complete(action, oid, parts).status_code == 200  # the rejected PUT changed nothing


def test_multipart_corrupt_content_is_rejected(remote_repo):
    data = os.urandom(9 * MiB)
    claimed = hashlib.sha256(b"something else").hexdigest()
    answer = batch(remote_repo.url, "upload", [{"oid": claimed, "size": len(data)}], ("multipart",))
    action = answer["objects"][0]["actions"]["upload"]
    chunk = int(action["header"]["chunk_size"])
    parts = []
    for n in (1, 2):
        r = requests.put(
            action["header"][f"{n:05d}"],
            data=data[(n - 1) * chunk : n * chunk],
            timeout=HTTP_TIMEOUT_S,
        )
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    response = complete(action, claimed, parts)
    assert response.status_code == 422 and "does not match" in response.json()["message"]
    assert remote_repo.server.lfs_object_path(claimed) is None
    assert not list((remote_repo.server.data_dir / "lfs" / "tmp").glob(f"{claimed}*"))


def test_basic_upload_verify_download_range(remote_repo):
    data = os.urandom(300_000)
    oid = hashlib.sha256(data).hexdigest()
    obj = batch(remote_repo.url, "upload", [{"oid": oid, "size": len(data)}])["objects"][0]
    verify = obj["actions"]["verify"]["href"]
    assert (
        requests.post(
            verify, json={"oid": oid, "size": len(data)}, timeout=HTTP_TIMEOUT_S
        ).status_code
        == 404
    )
    assert (
        requests.put(
            obj["actions"]["upload"]["href"], data=b"x" * 10, timeout=HTTP_TIMEOUT_S
        ).status_code
        == 422
    )
    assert (
        requests.put(
            obj["actions"]["upload"]["href"], data=data, timeout=HTTP_TIMEOUT_S
        ).status_code
        == 200
    )
    assert (
        requests.post(
            verify, json={"oid": oid, "size": len(data)}, timeout=HTTP_TIMEOUT_S
        ).status_code
        == 200
    )
    assert (
        requests.post(verify, json={"oid": oid, "size": 1}, timeout=HTTP_TIMEOUT_S).status_code
        == 422
    )
    down = batch(remote_repo.url, "download", [{"oid": oid, "size": len(data)}])["objects"][0]
    href = down["actions"]["download"]["href"]
    part = requests.get(href, headers={"Range": "bytes=100-199"}, timeout=HTTP_TIMEOUT_S)
    assert part.status_code == 206 and part.content == data[100:200]
    missing = batch(remote_repo.url, "download", [{"oid": "c" * 64, "size": 1}])["objects"][0]
    assert missing["error"]["code"] == 404


@pytest.mark.parametrize(
    "payload,status",
    [
        (b"{not json", 400),
        (b"[]", 422),
        (b'{"operation": "delete", "objects": [{"oid": "' + b"a" * 64 + b'", "size": 1}]}', 422),
        (b'{"operation": "upload", "objects": [{"oid": "../../etc/passwd", "size": 1}]}', 422),
        (b'{"operation": "upload", "objects": [{"oid": "' + b"A" * 64 + b'", "size": 1}]}', 422),
        (b'{"operation": "upload", "objects": [{"oid": "' + b"a" * 64 + b'", "size": -1}]}', 422),
        (b'{"operation": "upload", "objects": [{"oid": "' + b"a" * 64 + b'", "size": "1"}]}', 422),
        (b'{"operation": "upload", "objects": []}', 422),
    ],
)
def test_bad_batch_requests_get_4xx_json(remote_repo, payload, status):
    response = requests.post(
        f"{remote_repo.url}/info/lfs/objects/batch",
        data=payload,
        headers={"Content-Type": LFS_JSON},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == status
    assert response.json()["message"]


def test_bad_paths_get_4xx_json_and_write_nothing_outside(git_server, tmp_path):
    before = set(git_server.data_dir.parent.iterdir())
    base = git_server.base_url
    urls = [
        ("PUT", f"{base}/ns/x.git/info/lfs/objects/..%2F..%2Fescape"),
        ("PUT", f"{base}/ns/x.git/info/lfs/objects/{'a' * 63}g"),
        ("POST", f"{base}/..%2F..%2Fescape/x.git/info/lfs/objects/batch"),
        ("GET", f"{base}/ns/..%2F..%2Fescape.git/info/refs?service=git-upload-pack"),
        ("GET", f"{base}/ns/x.git/info/lfs/objects/{'a' * 64}"),
        ("PUT", f"{base}/ns/x.git/info/lfs/multipart/{'a' * 64}/nope/1"),
        ("GET", f"{base}/ns/missing.git/info/refs?service=git-upload-pack"),
        ("DELETE", f"{base}/ns/x.git/info/lfs/objects/batch"),
    ]
    for method, url in urls:
        response = requests.request(method, url, data=b"payload", timeout=HTTP_TIMEOUT_S)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
        assert response.json()["message"]
    assert set(git_server.data_dir.parent.iterdir()) == before
    assert not any("escape" in str(p) for p in git_server.data_dir.rglob("*"))


def test_batch_with_another_size_for_a_pending_upload_replaces_it(remote_repo):
    # Used to deadlock the store: every later batch and part request hung.
    oid = "d" * 64
    first = batch(remote_repo.url, "upload", [{"oid": oid, "size": 9 * MiB}], ("multipart",))
    second = requests.post(
        f"{remote_repo.url}/info/lfs/objects/batch",
        timeout=HTTP_TIMEOUT_S,
        headers={"Content-Type": LFS_JSON},
        json={
            "operation": "upload",
            "transfers": ["multipart"],
            "objects": [{"oid": oid, "size": 10 * MiB}],
        },
    ).json()
    old, new = (a["objects"][0]["actions"]["upload"] for a in (first, second))
    assert old["href"] != new["href"]
    response = requests.put(old["header"]["00001"], data=b"x" * 5 * MiB, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 404  # the replaced upload is gone
    tmp = remote_repo.server.data_dir / "lfs" / "tmp"
    assert len(list(tmp.glob(f"{oid}.multipart.*"))) == 1
    assert batch(remote_repo.url, "upload", [{"oid": "e" * 64, "size": 1}])["transfer"] == "basic"


@pytest.mark.parametrize(
    "header,status,content_range,body",
    [
        ("bytes=-3", 206, "bytes 7-9/10", b"789"),
        ("bytes=8-", 206, "bytes 8-9/10", b"89"),
        ("bytes=2-100", 206, "bytes 2-9/10", b"23456789"),
        ("bytes=10-", 416, "bytes */10", None),
        ("bytes=100-200", 416, "bytes */10", None),
        ("bytes=-0", 416, "bytes */10", None),
        # RFC 9110: a Range that is not one valid byte range is ignored, the whole object sent
        ("bytes=5-3", 200, None, b"0123456789"),
        ("bytes=0-1,3-4", 200, None, b"0123456789"),
        ("items=0-1", 200, None, b"0123456789"),
        ("bytes=abc", 200, None, b"0123456789"),
    ],
)
def test_download_range_edge_cases(git_server, header, status, content_range, body):
    name = "ns/range-" + hashlib.sha256(header.encode()).hexdigest()[:12]
    url = git_server.create_repo(name, {"w.bin": b"0123456789"})
    oid = hashlib.sha256(b"0123456789").hexdigest()
    href = batch(url, "download", [{"oid": oid, "size": 10}])["objects"][0]["actions"]["download"]
    response = requests.get(href["href"], headers={"Range": header}, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == status, response.text
    assert response.headers.get("Content-Range") == content_range
    if body is not None:
        assert response.content == body
        assert response.headers["Content-Length"] == str(len(body))
    head = requests.head(href["href"], headers={"Range": header}, timeout=HTTP_TIMEOUT_S)
    assert head.status_code == status and head.headers.get("Content-Range") == content_range
