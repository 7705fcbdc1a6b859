"""The server's S3 backend at the HTTP level, against SeaweedFS: completion (ETags, wrong objects,
retries), resume, stale uploads, the refusals that come before anything is started, the CLI."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from repository.testing import InvalidArgumentError, LocalGitServer, S3Error
from tests.support.server_lfs import HTTP_TIMEOUT_S, batch, complete, multipart_upload

MiB = 1024**2


def repo(server: LocalGitServer, name: str) -> str:
    return server.create_repo(f"s3/{name}").removesuffix(".git")


def pending_ids(seaweedfs, server: LocalGitServer, oid: str) -> list[str]:
    key = server.store.key(oid)
    uploads = seaweedfs.client().list_multipart_uploads(Bucket=seaweedfs.bucket, Prefix=key)
    return [u["UploadId"] for u in uploads.get("Uploads", []) if u["Key"] == key]


def object_exists(seaweedfs, server: LocalGitServer, oid: str) -> bool:
    found = seaweedfs.client().list_objects_v2(
        Bucket=seaweedfs.bucket, Prefix=server.store.key(oid)
    )
    return found.get("KeyCount", 0) > 0


def test_the_fixture_server_hands_out_presigned_s3_urls(s3_git_server):
    url = repo(s3_git_server, "fixture")
    data = os.urandom(100)
    oid = hashlib.sha256(data).hexdigest()
    answer = batch(url, "upload", [{"oid": oid, "size": len(data)}])
    upload = answer["objects"][0]["actions"]["upload"]
    assert "X-Amz-Signature=" in upload["href"] and upload["expires_in"] == 3600
    assert requests.put(upload["href"], data=data, headers=upload["header"]).status_code == 200
    assert s3_git_server.lfs_object_size(oid) is None  # not verified yet: not stored
    verify = answer["objects"][0]["actions"]["verify"]
    assert requests.post(verify["href"], json={"oid": oid, "size": 100}).status_code == 200
    assert s3_git_server.lfs_object_size(oid) == 100
    download = batch(url, "download", [{"oid": oid, "size": 100}])["objects"][0]["actions"]
    ranged = requests.get(download["download"]["href"], headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]


def test_a_put_of_other_bytes_is_refused_by_s3_itself(s3_git_server):
    url = repo(s3_git_server, "bad-put")
    oid = hashlib.sha256(b"right").hexdigest()
    answer = batch(url, "upload", [{"oid": oid, "size": 5}])["objects"][0]["actions"]
    put = requests.put(answer["upload"]["href"], data=b"wrong", headers=answer["upload"]["header"])
    assert put.status_code == 400 and "BadDigest" in put.text
    verify = requests.post(answer["verify"]["href"], json={"oid": oid, "size": 5})
    assert verify.status_code == 404 and "upload it first" in verify.json()["message"]


def test_a_tampered_etag_is_refused_at_completion_and_the_upload_stays_fixable(
    seaweedfs, s3_git_server
):
    url = repo(s3_git_server, "etag")
    data = os.urandom(11 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    action, parts = multipart_upload(url, data)
    assert [p["etag"][0] + p["etag"][-1] for p in parts] == ['""'] * 3  # quoted, as S3 sends
    tampered = [dict(p) for p in parts]
    tampered[1]["etag"] = '"' + "0" * 32 + '"'
    refused = complete(action, oid, tampered)
    assert refused.status_code == 422
    assert "InvalidPart" in refused.json()["message"]
    assert "exactly as S3 answered it" in refused.json()["message"]
    assert s3_git_server.lfs_object_size(oid) is None
    accepted = complete(action, oid, parts)
    assert accepted.status_code == 200, accepted.text
    assert s3_git_server.lfs_object_size(oid) == len(data)
    assert pending_ids(seaweedfs, s3_git_server, oid) == []


def test_a_wrong_object_is_deleted_at_completion_and_uploaded_anew(seaweedfs, s3_git_server):
    url = repo(s3_git_server, "wrong")
    data = os.urandom(11 * MiB)
    claimed = hashlib.sha256(b"something else" + data[14:]).hexdigest()
    answer = batch(url, "upload", [{"oid": claimed, "size": len(data)}], ("multipart",))
    action = answer["objects"][0]["actions"]["upload"]
    header = dict(action["header"])
    chunk = int(header.pop("chunk_size"))
    parts = []
    for key in sorted(header):
        n = int(key)
        put = requests.put(header[key], data=data[(n - 1) * chunk : n * chunk])
        parts.append({"partNumber": n, "etag": put.headers["ETag"]})
    refused = complete(action, claimed, parts)
    assert refused.status_code == 422
    message = refused.json()["message"]
    assert f"not {claimed}" in message and hashlib.sha256(data).hexdigest() in message
    assert "deleted" in message
    assert not object_exists(seaweedfs, s3_git_server, claimed)
    assert s3_git_server.lfs_object_size(claimed) is None
    again = batch(url, "upload", [{"oid": claimed, "size": len(data)}], ("multipart",))
    assert again["objects"][0]["actions"]["upload"]["href"] != action["href"]  # a new upload


def test_a_retried_completion_succeeds(s3_git_server):
    url = repo(s3_git_server, "idempotent")
    data = os.urandom(9 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    action, parts = multipart_upload(url, data)
    assert complete(action, oid, parts).status_code == 200
    again = complete(action, oid, parts)
    assert again.status_code == 200 and again.json() == {"oid": oid, "size": len(data)}
    assert (
        batch(url, "upload", [{"oid": oid, "size": len(data)}])["objects"][0].get("actions") is None
    )  # stored: nothing to upload


def test_a_repeated_batch_resumes_the_pending_upload(seaweedfs, s3_git_server):
    url = repo(s3_git_server, "resume")
    data = os.urandom(16 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    first, parts = multipart_upload(url, data, skip_parts=(2, 4))
    assert len(pending_ids(seaweedfs, s3_git_server, oid)) == 1
    answer = batch(url, "upload", [{"oid": oid, "size": len(data)}], ("multipart",))
    second = answer["objects"][0]["actions"]["upload"]
    upload_id = second["href"].split("?")[0].rsplit("/", 1)[1]
    assert upload_id == first["href"].split("?")[0].rsplit("/", 1)[1]  # the same upload
    chunk = int(second["header"]["chunk_size"])
    for n in (2, 4):
        put = requests.put(second["header"][f"{n:05d}"], data=data[(n - 1) * chunk : n * chunk])
        parts.append({"partNumber": n, "etag": put.headers["ETag"]})
    parts.sort(key=lambda p: p["partNumber"])
    assert complete(second, oid, parts).status_code == 200
    stream = s3_git_server.open_lfs_object(oid)
    assert stream is not None and hashlib.sha256(stream.read()).hexdigest() == oid


def test_a_stale_pending_upload_is_aborted_and_replaced(seaweedfs):
    options = seaweedfs.server_options(prefix="stale/")
    with LocalGitServer(
        multipart_threshold=MiB, chunk_size=5 * MiB, **options, s3_pending_max_age=1
    ) as server:
        url = repo(server, "stale")
        data = os.urandom(6 * MiB)
        oid = hashlib.sha256(data).hexdigest()
        first, _ = multipart_upload(url, data, skip_parts=(2,))
        [stale] = pending_ids(seaweedfs, server, oid)
        time.sleep(2)
        second, _ = multipart_upload(url, data, skip_parts=(2,))
        assert second["href"] != first["href"]
        assert stale not in pending_ids(seaweedfs, server, oid)
        time.sleep(2)
        assert server.store.abort_stale() == [server.store.key(oid)]  # the hourly sweep
        assert pending_ids(seaweedfs, server, oid) == []


def test_an_expired_completion_url_is_refused_saying_what_to_do(s3_git_server):
    url = repo(s3_git_server, "expired-completion")
    data = os.urandom(9 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    action, parts = multipart_upload(url, data)
    path, query = action["href"].split("?")
    segments = path.split("/")
    segments[-2] = str(int(time.time()) - 1)  # this server has no token: the URL is not checked
    expired = complete({"href": "/".join(segments) + "?" + query}, oid, parts)
    assert expired.status_code == 403
    assert "expired: run the push again" in expired.json()["message"]
    assert s3_git_server.lfs_object_size(oid) is None
    assert complete(action, oid, parts).status_code == 200


@pytest.mark.parametrize(
    "options,words",
    [
        ({"chunk_size": MiB}, "chunk_size must be 5 MiB to 5 GiB"),
        ({"chunk_size": 6 * 1024**3}, "chunk_size must be 5 MiB to 5 GiB"),
        ({"multipart_threshold": 6 * 1024**3}, "multipart_threshold must be at most 5 GiB"),
        ({"separate_storage": True}, "cannot go with s3_bucket"),
        ({"s3_pending_max_age": 0}, "s3_pending_max_age"),
    ],
)
def test_options_s3_would_refuse_are_refused_at_once(options, words):
    with pytest.raises(InvalidArgumentError, match=words):
        LocalGitServer(s3_bucket="b", s3_endpoint="http://127.0.0.1:9", **options)


def test_a_missing_bucket_or_wrong_credentials_stop_the_start_saying_what_to_fix(seaweedfs):
    options = seaweedfs.server_options()
    with pytest.raises(S3Error, match="does not exist: create it first"):
        LocalGitServer(**{**options, "s3_bucket": "no-such-bucket"}).start()
    wrong = {**options, "s3_credentials": (seaweedfs.access_key, "wrong")}
    with pytest.raises(S3Error, match="refused the credentials"):
        LocalGitServer(**wrong).start()


def test_serve_with_s3_bucket_from_the_standard_aws_environment(seaweedfs, tmp_path):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
    }
    command = [sys.executable, "-m", "repository.cli", "serve", "--data", str(tmp_path / "d")]
    s3 = [
        "--s3-bucket",
        seaweedfs.bucket,
        "--s3-endpoint",
        seaweedfs.endpoint,
        "--s3-region",
        seaweedfs.region,
        "--s3-prefix",
        "cli",
        "--chunk-size",
        "5MiB",
        "--multipart-threshold",
        "5MiB",
        "--s3-pending-max-age",
        "1d",
    ]
    proc = subprocess.Popen(
        command + s3, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:"), proc.stderr.read()
        oid = "a" * 64
        answer = batch(
            f"{base}/ns/cli.git", "upload", [{"oid": oid, "size": 6 * MiB}], ("multipart",)
        )
        header = answer["objects"][0]["actions"]["upload"]["header"]
        assert f"/{seaweedfs.bucket}/cli/objects/aa/aa/{oid}?" in header["00001"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=HTTP_TIMEOUT_S)
    no_bucket = subprocess.run(
        [*command, "--s3-prefix", "x"], env=env, capture_output=True, text=True, check=False
    )
    assert no_bucket.returncode == 2 and "--s3-prefix need --s3-bucket" in no_bucket.stderr
    missing = subprocess.run(
        [*command, "--s3-bucket", "nope", "--s3-endpoint", seaweedfs.endpoint],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
