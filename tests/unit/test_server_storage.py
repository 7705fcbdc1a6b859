"""Pure logic of the local server: object store, multipart assembly, names, sizes, auth, faults."""

from __future__ import annotations

import argparse
import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repository.testing import Faults, InvalidArgumentError
from repository.testing.auth import Auth
from repository.testing.cli import parse_size
from repository.testing.errors import StorageError
from repository.testing.faults import FaultInjector
from repository.testing.repos import normalize_name
from repository.testing.storage import ObjectStore


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_ingest_verifies_and_is_atomic(tmp_path):
    store = ObjectStore(tmp_path)
    data = b"x" * 3000
    with pytest.raises(StorageError, match="size mismatch"):
        store.ingest(oid_of(data), 1, [data])
    with pytest.raises(StorageError, match="does not match"):
        store.ingest(oid_of(b"other"), None, [data])

    def broken():
        yield data
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.ingest(oid_of(data), len(data), broken())
    assert store.size(oid_of(data)) is None and not list(store.tmp.iterdir())
    assert store.ingest(oid_of(data), len(data), [data[:10], data[10:]]).read_bytes() == data


@pytest.mark.parametrize("bad", ["", "a" * 63, "A" * 64, "../" + "a" * 61, "g" * 64, None, 5])
def test_bad_oids_are_rejected(tmp_path, bad):
    with pytest.raises(InvalidArgumentError, match="invalid oid"):
        ObjectStore(tmp_path).path(bad)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), chunk=st.integers(1, 64), seed=st.randoms())
def test_multipart_any_order_with_resends(tmp_path_factory, data, chunk, seed):
    store = ObjectStore(tmp_path_factory.mktemp("store"))
    upload = store.multipart(oid_of(data), len(data), chunk)
    numbers = list(range(1, upload.part_count + 1))
    seed.shuffle(numbers)
    order = numbers + seed.sample(numbers, k=min(2, len(numbers)))  # some parts sent twice
    etags = {}
    for n in order:
        start, end = upload.part_range(n)
        etags[n] = upload.write_part(n, [data[start:end]])
    parts = [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]
    assert upload.complete(parts).read_bytes() == data
    assert store.size(oid_of(data)) == len(data)


def test_multipart_rejects_mismatched_resend(tmp_path):
    data = b"abcdefgh"
    store = ObjectStore(tmp_path)
    upload = store.multipart(oid_of(data), 8, 4)
    tag1 = upload.write_part(1, [b"abcd"])
    tag2 = upload.write_part(2, [b"efgh"])
    upload.write_part(1, [b"ABCD"])  # content changed after it was hashed
    with pytest.raises(StorageError, match="etag"):
        upload.complete([{"partNumber": 1, "etag": tag1}, {"partNumber": 2, "etag": tag2}])
    tag1 = upload.write_part(1, [b"ABCD"])
    with pytest.raises(StorageError, match="does not match"):
        upload.complete([{"partNumber": 1, "etag": tag1}, {"partNumber": 2, "etag": tag2}])
    assert store.size(oid_of(data)) is None and not list(store.tmp.iterdir())
    with pytest.raises(StorageError):
        store.pending(oid_of(data), upload.upload_id)


def test_multipart_pending_upload_is_reused(tmp_path):
    store = ObjectStore(tmp_path)
    first = store.multipart("a" * 64, 100, 10)
    assert store.multipart("a" * 64, 100, 50) is first
    assert store.pending("a" * 64, first.upload_id) is first
    with pytest.raises(StorageError, match="out of range"):
        first.part_range(11)


@pytest.mark.parametrize(
    "name,expected",
    [("ns/m", "ns/m"), ("/ns/m.git", "ns/m"), ("solo", "solo"), ("a/b/c.d-e_f", "a/b/c.d-e_f")],
)
def test_repo_names(name, expected):
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "../x",
        "ns/../x",
        "ns/.hidden",
        "a/b/c/d/e",
        "ns/x.git.git",
        "ns//x",
        "ns/x y",
        "ns/" + "x" * 101,
    ],
)
def test_bad_repo_names(name):
    with pytest.raises(InvalidArgumentError, match="invalid repository name"):
        normalize_name(name)


def test_parse_size():
    assert parse_size("8MiB") == 8 * 1024**2
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("1.5k") == 1500
    assert parse_size("100") == 100
    for bad in ("", "-1", "5 parsecs", "1e9"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_auth():
    auth = Auth("tok")
    basic = "Basic " + base64.b64encode(b"anyone:tok").decode()
    assert auth.header_ok({"HTTP_AUTHORIZATION": basic})
    assert auth.header_ok({"HTTP_AUTHORIZATION": "bearer tok"})
    assert not auth.header_ok({"HTTP_AUTHORIZATION": "Bearer nope"})
    assert not auth.header_ok({"HTTP_AUTHORIZATION": "Basic !!!"})
    assert not auth.header_ok({})
    assert auth.signature_ok("/p", auth.sign("/p")) and not auth.signature_ok("/q", auth.sign("/p"))


def test_fault_counters():
    injector = FaultInjector(Faults(fail_every_nth_part=3, drop_every_nth_body=2))
    assert [injector.fail_this_part() for _ in range(6)] == [False, False, True] * 2
    assert [injector.drop_this_body() for _ in range(4)] == [False, True] * 2


@pytest.mark.parametrize(
    "knobs",
    [
        {"fail_every_nth_part": -1},
        {"drop_every_nth_body": -2},
        {"bandwidth_bytes_per_s": 0},
        {"latency_s": -1},
        {"latency_s": float("nan")},
        {"latency_s": float("inf")},
    ],
)
def test_faults_that_cannot_work_are_refused_as_value_errors(knobs):
    with pytest.raises(InvalidArgumentError) as error:
        Faults(**knobs)
    assert isinstance(error.value, ValueError)
