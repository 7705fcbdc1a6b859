"""`lfsrepo serve` as a separate process: prints its URL first, serves, stops on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.server_git import commit_file, git
from tests.support.server_lfs import HTTP_TIMEOUT_S, batch


def test_serve_prints_url_serves_and_stops_on_ctrl_c(tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repository.cli",
            "serve",
            "--data",
            str(data),
            "--token",
            "tok",
            "--multipart-threshold",
            "8MiB",
            "--chunk-size",
            "5MiB",
            "--latency",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        clone = tmp_path / "c"
        git("init", "-q", str(clone))
        commit_file(clone, "a.txt", b"a")
        git("push", base.replace("http://", "http://u:tok@") + "/ns/cli.git", "main", cwd=clone)
        assert (data / "repos" / "ns" / "cli.git" / "HEAD").is_file()
        answer = batch(
            f"{base}/ns/cli.git",
            "upload",
            [{"oid": "a" * 64, "size": 9 * 1024**2}],
            ("multipart",),
            headers={"Authorization": "Bearer tok"},
        )
        assert answer["objects"][0]["actions"]["upload"]["header"]["chunk_size"] == str(5 * 1024**2)
        unauthorized = requests.get(f"{base}/ns/cli.git/info/refs", timeout=HTTP_TIMEOUT_S)
        assert unauthorized.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0  # only keeps a server that never stops from hanging
    assert "Traceback" not in proc.stderr.read()


def serve(data: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `lfsrepo serve --data DATA OPTIONS...` to its end (for options it must refuse)."""
    return subprocess.run(
        [sys.executable, "-m", "repository.cli", "serve", "--data", str(data), *options],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_rejects_bad_size(tmp_path):
    result = serve(tmp_path, "--chunk-size", "5 parsecs")
    assert result.returncode == 2 and "invalid size" in result.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_rejects_a_port_out_of_range(tmp_path, port):
    result = serve(tmp_path, f"--port={port}")
    assert result.returncode == 2 and "invalid port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "option",
    [
        "--fail-every-nth-part=-1",
        "--drop-every-nth-body=-2",
        "--drop-every-nth-body=x",
        "--bandwidth=0",
        "--chunk-size=0",
        "--latency=-1",
        "--latency=nan",
        "--latency=inf",
        "--lfs-server=ftp://h",
        "--lfs-server=http://h:99999",
    ],
)
def test_serve_rejects_bad_fault_and_size_values_as_usage_errors(tmp_path, option):
    # These used to reach Faults/LocalGitServer and end as "unexpected ValueError ... report it".
    result = serve(tmp_path, option)
    assert result.returncode == 2, result.stderr
    assert "invalid" in result.stderr and "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_port_in_use_exits_1_with_the_reason(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, f"--port={port}")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("lfsrepo serve: cannot listen on 127.0.0.1:")
    assert "Traceback" not in result.stderr and result.stdout == ""
