"""Several writers at once: processes sharing one clone, and clones racing on one branch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from repository import Repository

CYCLES = 20

SHARED_CLONE_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from repository import Repository
    clone, writer, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3])
    repo = Repository(clone)
    for cycle in range(cycles):
        name = f"{writer}-{cycle}.txt"
        (Path(clone) / name).write_text(f"{writer} {cycle}\\n")
        repo.git_add(name)
        try:
            repo.git_commit(f"{writer} {cycle}")
        except OSError as error:
            # The other process's commit may already have taken this file along.
            if "nothing" not in str(error):
                raise
        repo.git_push()
""")

CLONE_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from repository import Repository
    url, clone, writer, cycles = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    repo = Repository(clone, clone_from=url)
    for cycle in range(cycles):
        with repo.commit(f"{writer} {cycle}"):
            Path(f"{writer}-{cycle}.txt").write_text(f"{writer} {cycle}\\n")
""")


def run_writers(script: str, argument_lists: list[list[str]], tmp_path: Path) -> None:
    path = tmp_path / "writer.py"
    path.write_text(script)
    processes = [
        subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in argument_lists
    ]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err


def remote_files(url: str, tmp_path: Path) -> dict[str, str]:
    target = tmp_path / "inspect"
    subprocess.run(["git", "clone", "-q", url, str(target)], check=True, capture_output=True)
    return {p.name: p.read_text() for p in target.glob("*.txt")}


def test_two_processes_commit_and_push_through_one_clone(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-shared", files={"seed.txt": b"seed\n"})
    clone = tmp_path / "clone"
    Repository(clone, clone_from=url)
    run_writers(
        SHARED_CLONE_WRITER,
        [[str(clone), writer, str(CYCLES)] for writer in ("p1", "p2")],
        tmp_path,
    )
    files = remote_files(url, tmp_path)
    for writer in ("p1", "p2"):
        for cycle in range(CYCLES):
            assert files[f"{writer}-{cycle}.txt"] == f"{writer} {cycle}\n"
    log = subprocess.run(
        ["git", "log", "--format=%s", "origin/main"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert log.count("\n") >= CYCLES  # at least one commit per cycle of one writer


def test_three_clones_commit_to_one_branch_at_once(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-race", files={"seed.txt": b"seed\n"})
    cycles = 5
    writers = ("a", "b", "c")
    run_writers(
        CLONE_WRITER,
        [[url, str(tmp_path / f"clone-{w}"), w, str(cycles)] for w in writers],
        tmp_path,
    )
    files = remote_files(url, tmp_path)
    log = subprocess.run(
        ["git", "log", "--format=%s"],
        cwd=tmp_path / "inspect",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for writer in writers:
        for cycle in range(cycles):
            assert files[f"{writer}-{cycle}.txt"] == f"{writer} {cycle}\n"
            assert f"{writer} {cycle}" in log
