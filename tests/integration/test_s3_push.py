"""Real git + git-lfs + the agent, pushing to and cloning from the server with its LFS objects in
SeaweedFS (a real S3 API that checks SigV4 and expiry), behind a proxy that refuses what AWS
refuses and records what the clients sent."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from lfs_agent import enable_largefiles
from repository.testing import LocalGitServer, s3_storage
from repository.testing import server as server_module
from tests.support.agent import INIT, agent_clone, commit, run_agent_as_git_lfs, server_sha256
from tests.support.git import git
from tests.support.s3_proxy import S3Request, StrictS3Proxy

MiB = 1024**2
CHUNK = 5 * MiB
ETAG_XML = re.compile(rb"<PartNumber>(\d+)</PartNumber>\s*<ETag>([^<]*)</ETag>")


@pytest.fixture(scope="module")
def proxy(seaweedfs):
    proxy = StrictS3Proxy(seaweedfs.endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def server(seaweedfs, proxy):
    # Multipart above 1 MiB, so a 3 MiB file is a single-part multipart upload.
    options = {**seaweedfs.server_options(prefix="push/"), "s3_endpoint": proxy.endpoint}
    with LocalGitServer(multipart_threshold=1 * MiB, chunk_size=CHUNK, **options) as server:
        yield server


@pytest.fixture
def clone(server, proxy, tmp_path, request):
    proxy.clear()
    return agent_clone(server, tmp_path, request.node.name)


def assert_clean_presigned_requests(requests: list[S3Request]) -> None:
    """What AWS requires of a presigned request, checked on each one a client sent."""
    assert requests
    for request in requests:
        assert "authorization" not in request.headers, request
        assert request.unsigned_amz_headers() == [], request
        if request.method == "PUT":
            assert "transfer-encoding" not in request.headers, request
            assert int(request.headers["content-length"]) == request.body_bytes, request
        assert request.status in (200, 206), request


def test_push_and_clone_multipart_objects_through_s3(server, proxy, clone, tmp_path):
    sizes = {
        "exact.bin": 4 * CHUNK,  # also over the agent's 16 MiB ranged-download threshold
        "over.bin": 2 * CHUNK + 1,
        "single.bin": 3 * MiB,
        "small.bin": 1000,
    }
    oids = commit(clone, sizes)
    git(clone, "push", "-q", "origin", "main")
    for name, oid in oids.items():
        assert server_sha256(server, oid) == oid, name
        assert server.lfs_object_size(oid) == sizes[name]
    pushed = proxy.presigned()
    assert_clean_presigned_requests(pushed)
    parts = [r for r in pushed if r.part_number is not None]
    assert len(parts) == 4 + 3 + 1
    assert {len(r.query["uploadId"]) > 0 for r in parts} == {True}
    # The server completed each upload with the ETags S3 answered, byte for byte.
    answered = {(r.query["uploadId"], r.part_number): r.response_headers["etag"] for r in parts}
    completions = [r for r in proxy.requests if r.method == "POST" and "uploadId" in r.query]
    assert len(completions) == 3
    for completion in completions:
        for number, etag in ETAG_XML.findall(completion.body):
            expected = answered[(completion.query["uploadId"], int(number))]
            assert etag.decode().replace("&#34;", '"').replace("&quot;", '"') == expected
    # small.bin went in the same batch as one PUT whose signed checksum S3 checked.
    single_puts = [r for r in pushed if r.method == "PUT" and r.part_number is None]
    assert [r.headers["x-amz-checksum-sha256"] for r in single_puts] == [
        s3_storage.checksum(oids["small.bin"])
    ]

    proxy.clear()
    fresh = tmp_path / "fresh"
    url = git(clone, "remote", "get-url", "origin").stdout.strip()
    git(tmp_path, "clone", "-q", url, str(fresh), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    enable_largefiles(fresh)  # the agent downloads too: ranged GETs in parallel
    git(fresh, "lfs", "pull")
    for name, oid in oids.items():
        assert hashlib.sha256((fresh / name).read_bytes()).hexdigest() == oid, name
    fetched = proxy.presigned()
    assert_clean_presigned_requests(fetched)
    ranged = [r for r in fetched if "range" in r.headers and r.status == 206]
    assert len({r.headers["range"] for r in ranged}) >= 2  # the agent fetched ranges in parallel


def test_git_lfs_without_the_agent_pushes_basic_puts_to_s3(server, proxy, tmp_path):
    url = server.create_repo("push/plain")
    clone = tmp_path / "plain"
    git(tmp_path, "clone", "-q", url, str(clone))
    git(clone, "lfs", "track", "*.bin")
    oids = commit(clone, {"a.bin": 6 * MiB, "b.bin": 10})
    git(clone, "push", "-q", "origin", "main")
    for oid in oids.values():
        assert server_sha256(server, oid) == oid
    assert_clean_presigned_requests(proxy.presigned())


def test_agent_sends_no_netrc_credentials_to_presigned_urls(server, proxy, clone, tmp_path):
    """requests adds ~/.netrc (or $NETRC) credentials for a matching host unless told not to;
    git-lfs reads no $NETRC. AWS answers such a request 400 (two auth mechanisms)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    oid = commit(clone, {"netrc.bin": 2 * CHUNK})["netrc.bin"]
    git(clone, "push", "-q", "origin", "main", env={"NETRC": str(netrc)})
    assert server_sha256(server, oid) == oid
    assert_clean_presigned_requests(proxy.presigned())


def test_a_killed_push_resumes_sending_only_the_missing_parts(server, proxy, clone):
    size = 8 * CHUNK
    oid = commit(clone, {"resume.bin": size})["resume.bin"]
    proxy.bandwidth = 8 * MiB  # per part: two parts in flight, ~5 s for the whole object
    try:
        push = subprocess.Popen(
            ["git", "push", "-q", "origin", "main"],
            cwd=clone,
            env={**os.environ, "LFSREPO_AGENT_CONCURRENCY": "2"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while len(finished_parts(proxy)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(push.pid, signal.SIGKILL)  # git, git-lfs and the agent at once
        push.wait()
    finally:
        proxy.bandwidth = None
    time.sleep(1)  # a part in flight when the kill came may still land
    journal = clone / ".git" / "lfsrepo" / "multipart" / f"lfsrepo-multipart-{oid}.json"
    journalled = {int(n) for n in json.loads(journal.read_text())["etags"]}
    first = {r.query["uploadId"] for r in finished_parts(proxy)}
    assert len(journalled) >= 2 and len(first) == 1
    assert server_sha256(server, oid) is None

    proxy.clear()
    git(clone, "push", "-q", "origin", "main")
    resent = [r for r in proxy.presigned() if r.part_number is not None]
    assert {r.query["uploadId"] for r in resent} == first  # the same upload, resumed
    assert sorted(r.part_number for r in resent) == sorted(set(range(1, 9)) - journalled)
    assert server_sha256(server, oid) == oid
    assert not journal.exists()


def finished_parts(proxy: StrictS3Proxy) -> list[S3Request]:
    return [r for r in proxy.presigned() if r.part_number is not None and r.status == 200]


def test_an_expired_part_url_is_reported_as_expiry_saying_what_to_do(seaweedfs, server, clone):
    oid = commit(clone, {"late.bin": CHUNK + 10})["late.bin"]
    # An upload handed out with part URLs that expire in a second, used after they did.
    client = seaweedfs.client()
    key = "expiry-test/late.bin"
    upload_id = client.create_multipart_upload(Bucket=seaweedfs.bucket, Key=key)["UploadId"]
    header = {"chunk_size": str(CHUNK)}
    for number in (1, 2):
        header[f"{number:05d}"] = client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": seaweedfs.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
            },
            ExpiresIn=1,
        )
    time.sleep(2)
    message = {
        "event": "upload",
        "oid": oid,
        "size": CHUNK + 10,
        "path": str(clone / "late.bin"),
        "action": {"href": f"{server.base_url}/unused", "header": header},
    }
    result = run_agent_as_git_lfs(clone, [INIT, message, {"event": "terminate"}])
    client.abort_multipart_upload(Bucket=seaweedfs.bucket, Key=key, UploadId=upload_id)
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    error = next(r["error"] for r in replies if r.get("event") == "complete")
    assert error["code"] == 403
    assert "expired" in error["message"] and "run the push or pull again" in error["message"]
    assert "X-Amz-Signature" not in error["message"]
    # What it says to do works: a push asks for fresh URLs.
    git(clone, "push", "-q", "origin", "main")
    assert server_sha256(server, oid) == oid


def test_a_part_under_5_mib_is_refused_by_s3_and_reported(seaweedfs, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_storage, "MIN_PART_SIZE", MiB)  # a server misconfigured below S3's
    monkeypatch.setattr(server_module, "MIN_PART_SIZE", MiB)
    options = seaweedfs.server_options(prefix="small-parts/")
    with LocalGitServer(multipart_threshold=MiB, chunk_size=MiB, **options) as server:
        clone = agent_clone(server, tmp_path, "small-parts")
        oid = commit(clone, {"small-parts.bin": 3 * MiB})["small-parts.bin"]
        result = git(clone, "push", "origin", "main", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert oid in output and "EntityTooSmall" in output and "at least 5 MiB" in output
        assert server.lfs_object_size(oid) is None
