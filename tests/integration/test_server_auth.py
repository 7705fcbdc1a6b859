"""Token auth for git and LFS: 401 with challenges, Basic and Bearer accepted, no prompting."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from repository.testing import LocalGitServer
from tests.support.server_git import commit_file, git
from tests.support.server_lfs import HTTP_TIMEOUT_S, batch

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server():
    with LocalGitServer(token=TOKEN) as server:
        server.create_repo("ns/private", {"a.txt": b"a", "w.bin": b"weights"})
        yield server


def test_git_without_token_gets_401_and_does_not_prompt(server, tmp_path):
    response = requests.get(
        f"{server.repo_url('ns/private')}/info/refs?service=git-upload-pack", timeout=HTTP_TIMEOUT_S
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    result = git("clone", server.repo_url("ns/private"), str(tmp_path / "c"), check=False)
    assert result.returncode != 0
    assert "terminal prompts disabled" in result.stderr or "401" in result.stderr


def test_lfs_without_token_gets_401_with_lfs_authenticate(server):
    response = requests.post(
        f"{server.repo_url('ns/private')}/info/lfs/objects/batch",
        json={"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}]},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 401
    assert response.headers["LFS-Authenticate"].startswith("Basic")
    assert response.json()["message"]
    unsigned = requests.get(
        f"{server.repo_url('ns/private')}/info/lfs/objects/{'a' * 64}", timeout=HTTP_TIMEOUT_S
    )
    assert unsigned.status_code == 401


def test_basic_password_clone_and_bearer_lfs_push(server, tmp_path):
    url = server.repo_url("ns/private").replace("http://", f"http://user:{TOKEN}@")
    git("clone", url, str(tmp_path / "basic"))
    assert (tmp_path / "basic" / "w.bin").read_bytes() == b"weights"

    bearer = f"http.extraHeader=Authorization: Bearer {TOKEN}"
    clone = tmp_path / "bearer"
    git("-c", bearer, "clone", server.repo_url("ns/private"), str(clone))
    data = os.urandom(200_000)
    commit_file(clone, "more.bin", data)
    git("-c", bearer, "push", "origin", "main", cwd=clone)
    oid = hashlib.sha256(data).hexdigest()
    assert server.lfs_object_size(oid) == len(data)
    # signed object URLs work without credentials, like presigned object-store URLs
    obj = batch(
        server.repo_url("ns/private"),
        "download",
        [{"oid": oid, "size": len(data)}],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )["objects"][0]
    assert requests.get(obj["actions"]["download"]["href"], timeout=HTTP_TIMEOUT_S).content == data


def test_wrong_token_is_refused(server):
    response = requests.get(
        f"{server.repo_url('ns/private')}/info/refs?service=git-upload-pack",
        headers={"Authorization": "Bearer wrong"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 401


def test_basic_token_as_username_with_an_empty_password_is_accepted(server):
    # GitHub's documented https://<token>@host form: curl and git send "<token>:".
    response = requests.get(
        f"{server.repo_url('ns/private')}/info/refs?service=git-upload-pack",
        auth=(TOKEN, ""),
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200
    assert (
        requests.get(
            f"{server.repo_url('ns/private')}/info/refs?service=git-upload-pack",
            auth=("user", ""),
            timeout=HTTP_TIMEOUT_S,
        ).status_code
        == 401
    )


@pytest.fixture(scope="module")
def per_action_server():
    with LocalGitServer(token=TOKEN, action_authorization=True, separate_storage=True) as server:
        yield server


def test_per_action_headers_must_arrive_exactly_as_given(per_action_server):
    url = per_action_server.create_repo("ns/per-action")
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    answer = batch(
        url,
        "upload",
        [{"oid": oid, "size": len(data)}],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    action = answer["objects"][0]["actions"]["upload"]
    assert action["href"].startswith(per_action_server.storage_url + "/")
    assert "?" not in action["href"] and set(action["header"]) == {"Authorization"}
    own = action["header"]["Authorization"]
    user = f"Bearer {TOKEN}"
    for headers, status in [
        ({}, 401),
        ({"Authorization": user}, 403),  # replaced
        ({"Authorization": f"{own},{user}"}, 403),
    ]:  # doubled, as WSGI joins
        response = requests.put(action["href"], data=data, headers=headers, timeout=HTTP_TIMEOUT_S)
        assert response.status_code == status, response.text
    assert per_action_server.lfs_object_size(oid) is None
    assert (
        requests.put(
            action["href"], data=data, headers=action["header"], timeout=HTTP_TIMEOUT_S
        ).status_code
        == 200
    )
    assert per_action_server.lfs_object_size(oid) == len(data)
    verify = answer["objects"][0]["actions"]["verify"]
    assert (
        requests.post(
            verify["href"],
            json={"oid": oid, "size": len(data)},
            headers=verify["header"],
            timeout=HTTP_TIMEOUT_S,
        ).status_code
        == 200
    )


def test_the_storage_origin_serves_objects_only_and_records_requests(per_action_server):
    storage = per_action_server.storage_url
    assert storage is not None and storage != per_action_server.base_url
    per_action_server.create_repo("ns/storage-only")
    refs = requests.get(
        f"{storage}/ns/storage-only.git/info/refs?service=git-upload-pack", timeout=HTTP_TIMEOUT_S
    )
    lfs_batch = requests.post(
        f"{storage}/ns/storage-only.git/info/lfs/objects/batch", json={}, timeout=HTTP_TIMEOUT_S
    )
    assert (refs.status_code, lfs_batch.status_code) == (404, 404)
    recorded = per_action_server.storage_requests[-2:]
    assert [(r.method, r.authorization) for r in recorded] == [("GET", None), ("POST", None)]
