"""Repository against the local git + LFS server: every verb, with real outcomes on the remote."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

import repository
from lfs_agent.setup import agent_settings
from repository import (
    CloneConflictError,
    NotAGitRepositoryError,
    NothingToCommitError,
    Repository,
    RepositoryError,
    RevisionNotFoundError,
)


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def remote_tree(url: str, tmp_path: Path, branch: str = "main") -> Path:
    """A fresh plain-git clone of ``url`` (LFS content smudged) to inspect what the remote holds."""
    target = tmp_path / f"inspect-{len(list(tmp_path.iterdir()))}"
    subprocess.run(
        ["git", "clone", "-q", "-b", branch, url, str(target)], check=True, capture_output=True
    )
    return target


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_clone_commit_push_lands_on_remote_with_lfs_object(remote_repo, tmp_path):
    repo = Repository(tmp_path / "clone", clone_from=remote_repo.url)
    weights = os.urandom(300_000)
    with repo.commit("Add weights"):
        Path("weights.bin").write_bytes(weights)
        Path("config.json").write_text('{"a": 1}')
    refs = remote_repo.server.list_refs(remote_repo.name)
    assert refs["refs/heads/main"] == repo.git_head_hash()
    assert remote_repo.server.lfs_object_size(sha256(weights)) == len(weights)
    stored = remote_repo.server.lfs_object_path(sha256(weights))
    assert sha256(stored.read_bytes()) == sha256(weights)
    inspect = remote_tree(remote_repo.url, tmp_path)
    assert (inspect / "weights.bin").read_bytes() == weights
    assert "filter: lfs" in git(inspect, "check-attr", "filter", "weights.bin")


def test_first_push_into_empty_remote_with_push_to_hub(remote_repo, tmp_path):
    repo = Repository(tmp_path / "clone", clone_from=remote_repo.url)
    assert remote_repo.server.list_refs(remote_repo.name) == {}
    (tmp_path / "clone" / "README.md").write_text("hello\n")
    url = repo.push_to_hub("first commit")
    assert url == f"{remote_repo.url.removesuffix('.git')}/commit/{repo.git_head_hash()}"
    assert remote_repo.server.list_refs(remote_repo.name)["refs/heads/main"] == repo.git_head_hash()
    assert repo.push_to_hub("nothing") is None  # clean_ok
    with pytest.raises(NothingToCommitError, match="nothing to commit"):
        repo.git_commit("again")


def test_reuse_existing_clone_and_refuse_conflicts(remote_repo, git_server, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files={"a.txt": b"a"})
    first = Repository(tmp_path / "clone", clone_from=url)
    head = first.git_head_hash()
    again = Repository(tmp_path / "clone", clone_from=url.removesuffix(".git"))
    assert again.git_head_hash() == head
    assert Repository(tmp_path / "clone").git_head_hash() == head

    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("x")
    with pytest.raises(CloneConflictError, match="not empty and is not a git clone"):
        Repository(tmp_path / "stuff", clone_from=url)
    with pytest.raises(CloneConflictError, match="is a clone of"):
        Repository(tmp_path / "clone", clone_from=remote_repo.url)
    with pytest.raises(NotAGitRepositoryError):
        Repository(tmp_path / "stuff")

    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    git(unrelated, "init", "-q")
    git(unrelated, "remote", "add", "origin", url)
    (unrelated / "other.txt").write_text("other")
    git(unrelated, "add", "other.txt")
    git(unrelated, "commit", "-q", "-m", "unrelated")
    with pytest.raises(CloneConflictError, match="unrelated"):
        Repository(unrelated, clone_from=url)


def test_clone_from_local_path_and_file_url(tmp_path):
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    repo = Repository(tmp_path / "a", clone_from=str(bare))
    (tmp_path / "a" / "x.txt").write_text("x")
    repo.push_to_hub("x")
    other = Repository(tmp_path / "b", clone_from=f"file://{bare}")
    assert other.git_head_hash() == repo.git_head_hash()
    assert is_file_in(bare, "x.txt")


def is_file_in(bare: Path, name: str) -> bool:
    return name in git(bare, "ls-tree", "-r", "--name-only", "main").split("\n")


def test_revision_checks_out_or_creates_branch(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-rev", files={"a.txt": b"a"})
    repo = Repository(tmp_path / "c", clone_from=url, revision="feature")
    assert repo.current_branch == "feature"
    with repo.commit("on feature"):
        Path("f.txt").write_text("f")
    assert (
        git_server.list_refs(f"{remote_repo.name}-rev")["refs/heads/feature"]
        == repo.git_head_hash()
    )
    repo.git_checkout("main")
    assert repo.current_branch == "main"
    with pytest.raises(RevisionNotFoundError):
        repo.git_checkout("no-such-branch")
    other = Repository(tmp_path / "d", clone_from=url, revision="feature")
    assert other.git_head_hash() == git(tmp_path / "c", "rev-parse", "feature").strip()
    assert (tmp_path / "d" / "f.txt").read_text() == "f"


def test_pull_rebase_and_lfs_pull(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-pull", files={"a.txt": b"a"})
    writer = Repository(tmp_path / "w", clone_from=url)
    reader = Repository(tmp_path / "r", clone_from=url)
    data = os.urandom(50_000)
    with writer.commit("add blob"):
        Path("blob.bin").write_bytes(data)
    (tmp_path / "r" / "local.txt").write_text("local")
    reader.git_add("local.txt")
    reader.git_commit("local change")
    reader.git_pull(rebase=True)
    assert (tmp_path / "r" / "blob.bin").read_bytes() == data
    reader.git_pull(lfs=True)
    assert writer.git_head_hash() in git(tmp_path / "r", "log", "--format=%H")


def test_skip_lfs_files_leaves_pointers(git_server, remote_repo, tmp_path):
    data = b"\0" * 2_000_000
    url = git_server.create_repo(f"{remote_repo.name}-skip", files={"w.bin": data})
    repo = Repository(tmp_path / "c", clone_from=url, skip_lfs_files=True)
    content = (tmp_path / "c" / "w.bin").read_bytes()
    assert content.startswith(b"version https://git-lfs.github.com/spec/v1")
    full = Repository(tmp_path / "full", clone_from=url)
    assert (tmp_path / "full" / "w.bin").read_bytes() == data
    assert repo.is_repo_clean() and full.is_repo_clean()


def test_clone_and_push_without_global_lfs_install(remote_repo, tmp_path, monkeypatch):
    home = tmp_path / "fresh-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    assert (
        subprocess.run(
            ["git", "config", "--global", "filter.lfs.process"], capture_output=True, check=False
        ).returncode
        == 1
    )
    repo = Repository(
        tmp_path / "c",
        clone_from=remote_repo.url,
        git_user="Ada Lovelace",
        git_email="ada@example.com",
    )
    data = os.urandom(20_000)
    with repo.commit("lfs without global install"):
        Path("w.bin").write_bytes(data)
    assert remote_repo.server.lfs_object_size(sha256(data)) == len(data)
    # (The test environment's GIT_AUTHOR_* variables win over config for the commit itself.)
    assert git(tmp_path / "c", "config", "user.name").strip() == "Ada Lovelace"
    assert git(tmp_path / "c", "config", "user.email").strip() == "ada@example.com"


def test_lfs_track_untrack_and_auto_tracking(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    root = tmp_path / "c"
    repo.lfs_track(["*.ckpt", "my model *.pt"])
    attributes = (root / ".gitattributes").read_text()
    assert "*.ckpt filter=lfs" in attributes
    assert repository.is_tracked_with_lfs(root / "my model 1.pt")
    assert not repository.is_tracked_with_lfs(root / "my model.bin")
    repo.lfs_untrack("*.ckpt")
    assert "*.ckpt" not in (root / ".gitattributes").read_text()

    (root / "text.txt").write_text("plain text\n" * 100)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0" + os.urandom(100))
    (root / "big.csv").write_bytes(b"1,2,3\n" * (11 * 1024 * 1024 // 6))
    (root / ".gitignore").write_text("ignored.bin\n")
    (root / "ignored.bin").write_bytes(b"\0\1\2")
    assert repo.auto_track_large_files() == ["big.csv"]
    assert repo.auto_track_binary_files() == ["image.png"]
    assert repo.auto_track_binary_files() == []  # already tracked
    assert repository.is_tracked_with_lfs(root / "image.png")
    assert repository.is_git_ignored(root / "ignored.bin")
    assert not repository.is_tracked_with_lfs(root / "text.txt")
    repo.push_to_hub("auto tracked")
    stored = sha256((root / "image.png").read_bytes())
    assert remote_repo.server.lfs_object_size(stored) is not None

    (root / "image.png").unlink()
    assert repo.list_deleted_files() == ["image.png"]
    repo.auto_track_binary_files()
    assert "image.png" not in (root / ".gitattributes").read_text()
    assert "big.csv" in (root / ".gitattributes").read_text()


def test_auto_track_reads_only_a_prefix(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    # Text for the first megabyte, a NUL later: the legacy class read 10 MB and called it binary.
    (tmp_path / "c" / "log.txt").write_bytes(b"line\n" * 200_000 + b"\0")
    assert repo.auto_track_binary_files() == []


def test_tags_local_and_on_the_given_remote(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-tags", files={"a.txt": b"a"})
    other_url = git_server.create_repo(f"{remote_repo.name}-other", files={"b.txt": b"b"})
    repo = Repository(tmp_path / "c", clone_from=url)
    git(tmp_path / "c", "remote", "add", "other", other_url)
    repo.add_tag("v1", message="release one", remote="origin")
    assert repo.tag_exists("v1") and repo.tag_exists("v1", remote="origin")
    assert git(tmp_path / "c", "cat-file", "-t", "v1").strip() == "tag"  # annotated
    assert "refs/tags/v1" in git_server.list_refs(f"{remote_repo.name}-tags")
    # The legacy class ignored `remote` and answered from the local tags.
    assert not repo.tag_exists("v1", remote="other")
    assert not repo.tag_exists("v1", remote=other_url)
    repo.add_tag("light")
    assert repo.tag_exists("light") and not repo.tag_exists("light", remote="origin")
    assert repo.delete_tag("v1", remote="origin")
    assert not repo.tag_exists("v1") and not repo.tag_exists("v1", remote="origin")
    assert not repo.delete_tag("v1", remote="origin")


def test_state_queries_and_helpers(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-state", files={"a.txt": b"a"})
    repo = Repository(tmp_path / "c", clone_from=url)
    root = tmp_path / "c"
    assert repo.git_remote_url() == url
    assert repo.git_head_commit_url().endswith(f"/commit/{repo.git_head_hash()}")
    assert repo.is_repo_clean()
    assert set(repo.check_git_versions()) == {"git", "git-lfs"}
    assert repository.is_git_repo(root) and not repository.is_git_repo(tmp_path)
    assert repository.is_local_clone(root, url) and not repository.is_local_clone(
        root, "http://x/y"
    )
    assert repository.is_tracked_upstream(root)
    (root / "new file.txt").write_text("n")
    (root / "a.txt").unlink()
    assert not repo.is_repo_clean()
    assert repository.files_to_be_staged(".", folder=root) == ["new file.txt", "a.txt"]
    repo.git_add()
    repo.git_commit("change")
    assert repository.commits_to_push(root) == 1
    assert repository.commits_to_push(root, "origin main") == 1
    repo.lfs_prune()


def test_credential_helper_store_is_opt_in_and_warns(remote_repo, tmp_path):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)
    assert (
        subprocess.run(
            ["git", "config", "--get", "credential.helper"],
            cwd=tmp_path / "c",
            capture_output=True,
            check=False,
        ).returncode
        == 1
    )
    with pytest.warns(UserWarning, match="plain text"):
        repo.git_credential_helper_store()
    assert git(tmp_path / "c", "config", "--get", "credential.helper").strip() == "store"


def test_legacy_keywords_warn_and_errors_are_oserrors(remote_repo, tmp_path):
    with pytest.warns(DeprecationWarning):
        Repository(tmp_path / "c", clone_from=remote_repo.url, repo_type="model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(OSError):
            Repository(tmp_path / "c").git_checkout("nope")
    assert issubclass(RepositoryError, OSError)


def test_the_constructor_wires_the_agent_as_the_legacy_one_did(remote_repo, tmp_path, monkeypatch):
    repo = Repository(tmp_path / "c", clone_from=remote_repo.url)  # no lfs_enable_largefiles()
    config = git(tmp_path / "c", "config", "--get-regexp", r"^lfs\.customtransfer\.")
    wired = [f"{key} {value}" for key, value in agent_settings(str(tmp_path / "c")).items()]
    assert config.splitlines() == wired
    data = os.urandom(9 * 1024 * 1024)  # above the session server's multipart threshold
    # git-lfs starts the agent with our environment: its log proves the parts went through it
    # (without the agent, git-lfs would fall back to a basic PUT and the object would land too).
    agent_log = tmp_path / "agent.log"
    monkeypatch.setenv("LFSREPO_AGENT_LOG", str(agent_log))
    with repo.commit("through the agent"):
        Path("large.bin").write_bytes(data)
    stored = remote_repo.server.lfs_object_path(sha256(data))
    assert stored is not None and sha256(stored.read_bytes()) == sha256(data)
    logged = agent_log.read_text()
    assert f"upload {sha256(data)}" in logged and "part 2 done" in logged, logged[-2000:]
    # A clone the legacy class made points at `hf lfs-multipart-upload`: reused, it uses ours.
    git(tmp_path / "c", "config", "lfs.customtransfer.multipart.path", "hf")
    git(tmp_path / "c", "config", "lfs.customtransfer.multipart.args", "lfs-multipart-upload")
    Repository(tmp_path / "c")
    config = git(tmp_path / "c", "config", "--get-regexp", r"^lfs\.customtransfer\.")
    assert config.splitlines() == wired


def count_git_processes_during(action, tmp_path: Path, monkeypatch) -> int:
    """Run ``action`` with a `git` shim first on PATH that logs every invocation."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir(exist_ok=True)
    log = tmp_path / "git-calls.log"
    real_git = shutil.which("git")
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real_git}" "$@"\n')
    shim.chmod(0o755)
    log.write_text("")
    with monkeypatch.context() as patch:
        patch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
        action()
    return len(log.read_text().splitlines())


def test_auto_tracking_spawns_a_constant_number_of_git_processes(
    remote_repo, tmp_path, monkeypatch
):
    counts = []
    for size in (5, 300):
        repo = Repository(tmp_path / f"c{size}", clone_from=remote_repo.url)
        for index in range(size):
            (tmp_path / f"c{size}" / f"file {index}.txt").write_text(f"{index}\n")
            (tmp_path / f"c{size}" / f"blob {index}.dat").write_bytes(b"\0" + os.urandom(100))
        counts.append(
            count_git_processes_during(
                lambda repo=repo: repo.git_add(auto_lfs_track=True), tmp_path, monkeypatch
            )
        )
        assert len(repo.list_deleted_files()) == 0
        assert repository.is_tracked_with_lfs(tmp_path / f"c{size}" / f"blob {size - 1}.dat")
    assert counts[0] == counts[1] <= 8, counts


def test_legacy_repo_id_is_resolved_against_the_endpoint(
    git_server, remote_repo, tmp_path, monkeypatch
):
    git_server.create_repo(f"{remote_repo.name}-byid", files={"a.txt": b"by id"})
    monkeypatch.setenv("LFSREPO_ENDPOINT", git_server.base_url)
    repo = Repository(tmp_path / "c", clone_from=f"{remote_repo.name}-byid")
    assert (tmp_path / "c" / "a.txt").read_bytes() == b"by id"
    assert repo.git_remote_url() == f"{git_server.base_url}/{remote_repo.name}-byid"
