"""Each fault knob of the local server, observed from a client.

Timings are checked from below only: a fault must cost at least what it says. How fast the server
is otherwise is for scripts/bench, not for tests.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from repository.testing import Faults
from tests.support.server_lfs import HTTP_TIMEOUT_S, MiB, batch, complete, upload_action

pytestmark = pytest.mark.timeout(120)  # only keeps a broken test from hanging


def start_multipart(repo, data: bytes) -> tuple[str, dict]:
    return hashlib.sha256(data).hexdigest(), upload_action(repo.url, data, ("multipart",))


def basic_hrefs(repo, data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), upload_action(repo.url, data)["href"]


def test_fail_every_nth_part(remote_repo):
    server = remote_repo.server
    data = os.urandom(12 * MiB)
    oid, action = start_multipart(remote_repo, data)
    server.faults = Faults(fail_every_nth_part=2)
    chunk, statuses, parts = 5 * MiB, [], []
    for n in (1, 2, 3):
        body = data[(n - 1) * chunk : n * chunk]
        while True:  # retry each part until it succeeds, as a client would
            response = requests.put(action["header"][f"{n:05d}"], data=body, timeout=HTTP_TIMEOUT_S)
            statuses.append(response.status_code)
            if response.status_code == 200:
                parts.append({"partNumber": n, "etag": response.headers["ETag"]})
                break
            assert "injected" in response.json()["message"]
    assert statuses == [200, 500, 200, 500, 200]
    assert complete(action, oid, parts).status_code == 200
    # failed parts were read in full before the 500: parts 2 and 3 were received twice
    assert server.bytes_received(oid) == len(data) + 5 * MiB + 2 * MiB


def test_drop_every_nth_body_on_upload_and_download(remote_repo):
    server = remote_repo.server
    data = os.urandom(4 * MiB)
    oid, href = basic_hrefs(remote_repo, data)
    server.faults = Faults(drop_every_nth_body=2)
    assert requests.put(href, data=data, timeout=HTTP_TIMEOUT_S).status_code == 200  # body 1: fine
    server.faults = Faults(drop_every_nth_body=1)
    other = os.urandom(4 * MiB)
    other_oid, other_href = basic_hrefs(remote_repo, other)
    with pytest.raises(requests.ConnectionError):
        requests.put(other_href, data=other, timeout=HTTP_TIMEOUT_S)
    assert server.bytes_received(other_oid) == len(other) // 2
    assert server.lfs_object_path(other_oid) is None
    assert not list((server.data_dir / "lfs" / "tmp").glob(f"{other_oid}*"))

    down = batch(remote_repo.url, "download", [{"oid": oid, "size": len(data)}])["objects"][0]
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(down["actions"]["download"]["href"], timeout=HTTP_TIMEOUT_S).raise_for_status()
    server.faults = Faults()
    assert requests.get(down["actions"]["download"]["href"], timeout=HTTP_TIMEOUT_S).content == data


def test_drop_mid_part_then_resend(remote_repo):
    server = remote_repo.server
    data = os.urandom(9 * MiB)
    oid, action = start_multipart(remote_repo, data)
    server.faults = Faults(drop_every_nth_body=1)
    with pytest.raises(requests.ConnectionError):
        requests.put(action["header"]["00001"], data=data[: 5 * MiB], timeout=HTTP_TIMEOUT_S)
    server.faults = Faults()
    parts = []
    for n in (1, 2):
        r = requests.put(
            action["header"][f"{n:05d}"],
            data=data[(n - 1) * 5 * MiB : n * 5 * MiB],
            timeout=HTTP_TIMEOUT_S,
        )
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    assert complete(action, oid, parts).status_code == 200
    assert server.lfs_object_path(oid).read_bytes() == data


def test_bandwidth_cap_per_connection(remote_repo):
    server = remote_repo.server
    data = os.urandom(2 * MiB)
    oid, href = basic_hrefs(remote_repo, data)
    server.faults = Faults(bandwidth_bytes_per_s=4 * MiB)
    start = time.monotonic()
    assert requests.put(href, data=data, timeout=HTTP_TIMEOUT_S).status_code == 200
    upload_s = time.monotonic() - start
    down = batch(remote_repo.url, "download", [{"oid": oid, "size": len(data)}])["objects"][0]
    start = time.monotonic()
    assert requests.get(down["actions"]["download"]["href"], timeout=HTTP_TIMEOUT_S).content == data
    download_s = time.monotonic() - start
    # 2 MiB at 4 MiB/s: half a second at least, each way
    assert upload_s >= 0.45 and download_s >= 0.45, (upload_s, download_s)


def test_latency_per_request(remote_repo):
    server = remote_repo.server
    server.faults = Faults(latency_s=0.3)
    start = time.monotonic()
    batch(remote_repo.url, "download", [{"oid": "a" * 64, "size": 1}])
    requests.get(f"{remote_repo.url}/info/refs?service=git-upload-pack", timeout=HTTP_TIMEOUT_S)
    assert time.monotonic() - start >= 0.6
