"""The agent's protocol handling: exact replies, per-object errors, robustness (hypothesis)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfs_agent.agent import run
from lfs_agent.errors import ProtocolError
from lfs_agent.protocol import MessageWriter, parse_message

INIT = {
    "event": "init",
    "operation": "upload",
    "remote": "origin",
    "concurrent": False,
    "concurrenttransfers": 4,
}
OID = "a" * 64


def agent_process(
    lines: list[bytes], env: dict | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-m", "lfs_agent"],
        input=b"".join(lines),
        capture_output=True,
        timeout=60,
        cwd=cwd,
        check=False,
        env={**os.environ, **(env or {})},
    )


def line(message: object) -> bytes:
    return json.dumps(message).encode() + b"\n"


def in_process(data: bytes, tmp_path: Path) -> tuple[int, list[dict]]:
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # outside any clone: temp files go to the system temp dir
    try:
        code = run(io.BytesIO(data), MessageWriter(fd))
    finally:
        os.chdir(cwd)
        os.close(fd)
    return code, [json.loads(x) for x in out.read_text().splitlines()]


def test_init_then_terminate_answers_exactly_one_empty_object():
    result = agent_process([line(INIT), line({"event": "terminate"})])
    assert result.returncode == 0
    assert result.stdout == b"{}\n"


def test_a_bad_object_fails_alone_and_the_process_carries_on(tmp_path):
    missing = {
        "event": "upload",
        "oid": OID,
        "size": 5,
        "path": str(tmp_path / "nope"),
        "action": {"href": "http://127.0.0.1:9/x"},
    }
    bad_plan = {
        **missing,
        "oid": "b" * 64,
        "action": {
            "href": "http://127.0.0.1:9/x",
            "header": {"chunk_size": "2", "00001": "http://x/1"},
        },
    }
    (tmp_path / "five").write_bytes(b"12345")
    bad_plan["path"] = str(tmp_path / "five")
    result = agent_process(
        [line(INIT), line(missing), line(bad_plan), line({"event": "terminate"})]
    )
    assert result.returncode == 0
    replies = [json.loads(x) for x in result.stdout.splitlines()]
    assert replies[0] == {}
    assert replies[1]["event"] == "complete" and replies[1]["oid"] == OID
    assert "No such file" in replies[1]["error"]["message"]
    assert replies[2]["oid"] == "b" * 64
    assert "needs parts 1..3; missing: 2, 3" in replies[2]["error"]["message"]
    assert len(replies) == 3


def test_stray_prints_and_warnings_never_reach_stdout(tmp_path):
    # Wrap the loop in code that prints, warns and writes to fd 1 directly.
    code = (
        "import os,sys,warnings; from lfs_agent.agent import main; "
        "import lfs_agent.agent as a; orig=a.run\n"
        "def noisy(*x, **k):\n print('stray print'); warnings.warn('stray warning');"
        " os.write(1, b'raw fd write\\n'); return orig(*x, **k)\n"
        "a.run=noisy; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=line(INIT), capture_output=True, timeout=60, check=False
    )
    assert result.stdout == b"{}\n"
    assert b"stray print" in result.stderr and b"raw fd write" in result.stderr


def test_garbage_is_fatal_on_stderr_not_stdout():
    result = agent_process([line(INIT), b"this is not json\n"])
    assert result.returncode == 2
    assert result.stdout == b"{}\n"
    assert b"protocol error" in result.stderr and b"Traceback" not in result.stderr


def test_a_bad_concurrency_variable_is_one_line_on_stderr_not_a_traceback():
    result = agent_process([line(INIT)], env={"LFSREPO_AGENT_CONCURRENCY": "eight"})
    assert result.returncode == 2 and result.stdout == b""
    assert b"LFSREPO_AGENT_CONCURRENCY" in result.stderr and b"Traceback" not in result.stderr


def test_bad_init_is_answered_with_an_error():
    result = agent_process([line({"event": "init", "operation": "sideways"})])
    reply = json.loads(result.stdout)
    assert reply["error"]["message"].startswith("init: operation must be")


def test_debug_log_goes_to_a_file_with_secrets_redacted(tmp_path):
    log = tmp_path / "agent.log"
    request = {
        "event": "upload",
        "oid": OID,
        "size": 1,
        "path": "/nonexistent",
        "action": {
            "href": "http://127.0.0.1:9/c?X-Amz-Signature=topsecret",
            "header": {"Authorization": "Bearer topsecret"},
        },
    }
    agent_process(
        [line(INIT), line(request), line({"event": "terminate"})],
        env={"LFSREPO_AGENT_LOG": str(log)},
    )
    text = log.read_text()
    assert "upload " + OID in text and "topsecret" not in text


@pytest.mark.parametrize(
    "message",
    [
        {"event": "upload", "oid": OID, "size": -1, "path": "/p", "action": {"href": "h"}},
        {"event": "upload", "oid": OID, "size": True, "path": "/p", "action": {"href": "h"}},
        {"event": "upload", "oid": OID, "size": 1, "action": {"href": "h"}},
        {"event": "download", "oid": OID, "size": 1, "action": {"href": ""}},
        {"event": "download", "oid": OID, "size": 1, "action": {"href": "h", "header": {"a": 1}}},
    ],
)
def test_invalid_transfers_name_their_object(message):
    with pytest.raises(ProtocolError) as caught:
        parse_message(json.dumps(message))
    assert caught.value.oid == OID


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.fixed_dictionaries(
    {"event": st.sampled_from(["init", "upload", "download", "terminate", "progress", "bogus"])},
    optional={
        "oid": st.one_of(st.just(OID), json_values),
        "size": json_values,
        "path": json_values,
        "operation": st.sampled_from(["upload", "download", "x"]),
        "concurrenttransfers": json_values,
        "action": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"href": st.just("http://127.0.0.1:9/x")}, optional={"header": json_values}
            ),
        ),
    },
)
raw_lines = st.one_of(
    messages.map(lambda m: json.dumps(m).encode()),
    messages.map(lambda m: json.dumps(m).encode()[: len(json.dumps(m)) // 2]),  # truncated
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)


def check_replies(code: int, replies: list[dict]) -> None:
    assert code in (0, 2)
    for reply in replies:
        assert (
            reply == {} or set(reply) == {"error"} or reply.get("event") in ("complete", "progress")
        )
        if reply.get("event") == "complete":
            assert isinstance(reply["oid"], str) and "error" in reply
            assert set(reply["error"]) == {"code", "message"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(raw_lines, max_size=6), st.booleans())
def test_any_message_stream_gets_protocol_answers(tmp_path, lines, with_init):
    data = (line(INIT) if with_init else b"") + b"\n".join(lines) + b"\n"
    code, replies = in_process(data, tmp_path)
    check_replies(code, replies)


@settings(max_examples=25, deadline=None)
@given(st.lists(raw_lines, min_size=1, max_size=4))
def test_the_real_process_never_prints_a_traceback_on_stdout(lines):
    result = agent_process([line(INIT), b"\n".join(lines) + b"\n"])
    assert b"Traceback" not in result.stdout and b"Traceback" not in result.stderr
    check_replies(result.returncode, [json.loads(x) for x in result.stdout.splitlines()])
