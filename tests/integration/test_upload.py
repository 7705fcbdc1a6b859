"""``lfsrepo upload``: a folder or file into a repository, in batches, resumable after a kill."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from repository import Repository, upload
from repository.testing import LocalGitServer

from ..support.git import git
from ..support.kill_loop import Job

MiB = 1024**2


def lfsrepo_upload(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repository.cli", "upload", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def remote_files(server: LocalGitServer, name: str) -> dict[str, str]:
    """path -> blob sha of every file on the remote's main."""
    listing = git(server.repo_path(name), "ls-tree", "-r", "main").stdout
    return {
        line.split("\t", 1)[1]: line.split()[2] for line in listing.splitlines() if "\t" in line
    }


def blob_shas(root: Path, paths: list[str]) -> list[str]:
    result = subprocess.run(
        ["git", "hash-object", "--no-filters", "--stdin-paths"],
        input="\n".join(paths),
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    return result.stdout.split()


def commits_on_remote(server: LocalGitServer, name: str) -> int:
    refs = server.list_refs(name)
    if "refs/heads/main" not in refs:
        return 0
    return int(git(server.repo_path(name), "rev-list", "--count", "main").stdout)


def test_an_upload_killed_after_two_commits_resumes_and_every_file_lands_once(git_server, tmp_path):
    url = git_server.create_repo("ns/upload-killed")
    folder = tmp_path / "rows"
    for index in range(5000):
        sub = folder / f"part-{index // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{index:05d}.json").write_text(f'{{"row": {index}}}\n')
    args = [
        url,
        str(folder),
        "data",
        "--files-per-commit",
        "1000",
        "--work-dir",
        str(tmp_path / "w"),
    ]

    argv = [sys.executable, "-m", "repository.cli", "upload", *args]
    with Job(argv, token="upload-kill", out=tmp_path / "out", err=tmp_path / "err") as job:
        while commits_on_remote(git_server, "ns/upload-killed") < 2:
            assert job.wait(0.02) is None, job.output()
        job.kill()

    assert commits_on_remote(git_server, "ns/upload-killed") < 5
    resumed = lfsrepo_upload(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    files = remote_files(git_server, "ns/upload-killed")
    relative = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json"))
    assert sorted(files) == [f"data/{path}" for path in relative]
    expected = blob_shas(folder, relative)
    assert [files[f"data/{path}"] for path in relative] == expected
    # Each file was committed once: five batches, however the kill fell.
    log = git(git_server.repo_path("ns/upload-killed"), "log", "--format=%s", "main").stdout
    assert sorted(log.split("\n")[:5]) == [f"Upload rows ({n}/5)" for n in range(1, 6)]
    assert len(log.strip().split("\n")) == 5


def test_files_a_killed_run_placed_are_committed_with_their_own_batch(git_server, tmp_path):
    url = git_server.create_repo("ns/upload-placed", files={"x.txt": b"old\n"})
    folder = tmp_path / "rows"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "x.txt"):
        (folder / name).write_text(f"{name} new\n")
    # A run killed in its second batch (c.txt, x.txt) after placing c, staging it, and placing x.
    work = tmp_path / "w"
    Repository(work, clone_from=url, push_only=True)
    for name in ("c.txt", "x.txt"):
        os.link(folder / name, work / name)
    git(work, "add", "--sparse", "c.txt")

    upload(url, folder, files_per_commit=2, work_dir=work)

    repo_path = git_server.repo_path("ns/upload-placed")
    log = git(repo_path, "log", "--format=%s", "main").stdout.splitlines()
    assert log[:2] == ["Upload rows (2/2)", "Upload rows (1/2)"]
    for commit, files in (("main~1", "a.txt\nb.txt"), ("main", "c.txt\nx.txt")):
        assert git(repo_path, "show", "--format=", "--name-only", commit).stdout.strip() == files
    assert remote_files(git_server, "ns/upload-placed")["x.txt"] == blob_shas(folder, ["x.txt"])[0]
    assert (folder / "c.txt").read_text() == "c.txt new\n"  # the source, only unlinked in the clone


def test_an_upload_of_what_the_repository_has_already_commits_nothing(git_server, tmp_path):
    url = git_server.create_repo("ns/upload-again")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(3 * MiB))
    first = lfsrepo_upload(url, str(weights), "models/w.bin", "--work-dir", str(tmp_path / "w"))
    assert first.returncode == 0, first.stderr
    oid = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert git_server.lfs_object_path(oid) is not None
    head = git_server.list_refs("ns/upload-again")["refs/heads/main"]

    # Another machine (no cache folder): compared by content, nothing to commit.
    again = upload(url, weights, "models/w.bin", work_dir=tmp_path / "elsewhere")
    assert again.commits == []
    assert git_server.list_refs("ns/upload-again")["refs/heads/main"] == head
    assert not [p for p in (tmp_path / "elsewhere" / ".git").rglob("lfs/objects/*/*/*")]


def test_bad_arguments_and_refused_credentials_get_their_exit_codes(tmp_path):
    with LocalGitServer(tmp_path / "server", token="s3cret") as server:
        url = server.create_repo("ns/private")
        missing = lfsrepo_upload(url, str(tmp_path / "nope"), "--work-dir", str(tmp_path / "w"))
        assert missing.returncode == 2
        assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr

        (tmp_path / "f.txt").write_text("x\n")
        refused = lfsrepo_upload(
            url,
            str(tmp_path / "f.txt"),
            "--work-dir",
            str(tmp_path / "w2"),
            env={"LFSREPO_TOKEN": "wrong"},
        )
        assert refused.returncode == 3, refused.stderr
        assert "wrong" not in refused.stderr and "Traceback" not in refused.stderr

        accepted = lfsrepo_upload(
            url,
            str(tmp_path / "f.txt"),
            "--work-dir",
            str(tmp_path / "w3"),
            env={"LFSREPO_TOKEN": "s3cret"},
        )
        assert accepted.returncode == 0, accepted.stderr
        assert "1/1 files: pushed" in accepted.stderr
        assert "s3cret" not in accepted.stderr
