"""Repository limits: a file over the size limit is refused before anything is staged or sent;
files, folders and a repository past the recommended limits are warned about, once per kind.
Against the real local server, with real sparse files of tens of GB."""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from repository import (
    LimitExceededError,
    LimitWarning,
    Repository,
    RepositoryError,
    RepositoryLimits,
    upload,
)
from repository.git import GitResult, GitRunner
from repository.lfs import changes
from repository.limits import check_staging
from repository.testing import LocalGitServer
from tests.support.git import git

GB = 1000**3
NO_LIMITS = RepositoryLimits(None, None, None, None)
SMALL_LIMITS = RepositoryLimits(recommended_file_size=1024, max_folder_entries=5, max_repo_files=10)


@pytest.fixture
def storage_server() -> Iterator[LocalGitServer]:
    """A server whose object transfers go to a second origin that records every request."""
    with LocalGitServer(separate_storage=True) as server:
        yield server


def state(clone: Path) -> dict[str, object]:
    """Everything a refused add must leave as it was in the clone."""
    objects = clone / ".git" / "lfs" / "objects"
    attributes = clone / ".gitattributes"
    info_attributes = clone / ".git" / "info" / "attributes"
    return {
        "head": git(clone, "rev-parse", "HEAD").stdout,
        "index": (clone / ".git" / "index").read_bytes(),
        "staged": git(clone, "diff", "--cached", "--name-only").stdout,
        "gitattributes": attributes.read_bytes() if attributes.exists() else None,
        "lfs objects": sorted(p.name for p in objects.rglob("*") if p.is_file()),
        "info/attributes": info_attributes.read_text() if info_attributes.exists() else None,
    }


def sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space (a hole of zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def add_auto(repo: Repository) -> None:
    repo.git_add(auto_lfs_track=True)


def add_plain(repo: Repository) -> None:
    repo.git_add("big.bin")


def push_to_hub(repo: Repository) -> None:
    repo.push_to_hub("add a huge file")


def commit_block(repo: Repository) -> None:
    with repo.commit("add a huge file"):
        pass  # the file is already there; commit() adds it when the block ends


@pytest.mark.parametrize("stage", [add_auto, add_plain, push_to_hub, commit_block])
def test_a_51_gb_file_is_refused_before_anything_is_staged_or_sent(
    storage_server, tmp_path, stage: Callable[[Repository], None]
):
    url = storage_server.create_repo("ns/huge", files={"README.md": b"seed\n"})
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=url)
    before, refs = state(clone), storage_server.list_refs("ns/huge")
    sparse_file(clone / "big.bin", 51 * GB)

    with pytest.raises(LimitExceededError) as refused:
        stage(repo)

    message = str(refused.value)
    assert "big.bin is 51.0 GB (51,000,000,000 bytes)" in message
    assert "limit of 50.0 GB (50,000,000,000 bytes) per file" in message
    assert "Nothing was staged" in message and "LFSREPO_MAX_FILE_SIZE" in message
    assert refused.value.files == {"big.bin": 51 * GB} and refused.value.limit == 50 * GB
    assert isinstance(refused.value, RepositoryError)
    assert state(clone) == before  # nothing staged, .gitattributes as it was, no LFS object
    assert storage_server.list_refs("ns/huge") == refs
    assert storage_server.storage_requests == []  # not one object transfer reached the server
    assert not any(p.is_file() for p in (storage_server.data_dir / "lfs").rglob("*"))


def test_a_file_larger_than_the_free_space_is_refused_for_its_size_not_the_disk(
    remote_repo, tmp_path
):
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=remote_repo.url)
    size = shutil.disk_usage(clone).free + 51 * GB
    sparse_file(clone / "huge.bin", size)
    with pytest.raises(LimitExceededError, match=r"huge\.bin is .* over the limit"):
        repo.git_add(auto_lfs_track=True)  # the disk check would have said DiskFullError
    assert not (clone / ".gitattributes").exists()


def test_the_environment_sets_the_limit(remote_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREPO_MAX_FILE_SIZE", "1000")
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=remote_repo.url)
    (clone / "normal.bin").write_bytes(os.urandom(1001))
    with pytest.raises(LimitExceededError) as refused:
        repo.git_add(auto_lfs_track=True)
    assert "normal.bin is 1.0 kB (1,001 bytes), over the limit of 1.0 kB (1,000 bytes)" in str(
        refused.value
    )
    assert git(clone, "status", "--porcelain").stdout == "?? normal.bin\n"


def test_the_constructor_sets_the_limit_over_the_environment_and_a_file_at_it_is_pushed(
    remote_repo, tmp_path, monkeypatch
):
    monkeypatch.setenv("LFSREPO_MAX_FILE_SIZE", "10")
    clone = tmp_path / "clone"
    repo = Repository(
        clone, clone_from=remote_repo.url, limits=RepositoryLimits(max_file_size=1000)
    )
    at_limit, over = os.urandom(1000), os.urandom(1001)
    (clone / "at-limit.bin").write_bytes(at_limit)
    (clone / "over.bin").write_bytes(over)
    with pytest.raises(LimitExceededError, match=r"over\.bin is .*1,001 bytes"):
        repo.push_to_hub("both")
    assert git(clone, "diff", "--cached", "--name-only").stdout == ""

    (clone / "over.bin").unlink()
    repo.push_to_hub("the one at the limit")
    remote = remote_repo.server.repo_path(remote_repo.name)
    pointer = git(remote, "show", "main:at-limit.bin").stdout
    oid = hashlib.sha256(at_limit).hexdigest()
    assert f"oid sha256:{oid}" in pointer
    stored = remote_repo.server.lfs_object_path(oid)
    assert stored is not None and stored.read_bytes() == at_limit


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LFSREPO_MAX_FILE_SIZE", "50GB"),
        ("LFSREPO_RECOMMENDED_FILE_SIZE", "-1"),
        ("LFSREPO_MAX_FOLDER_ENTRIES", "1e4"),
        ("LFSREPO_MAX_REPO_FILES", "many"),
    ],
)
def test_a_malformed_environment_value_is_an_error_naming_the_variable(
    remote_repo, tmp_path, monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    clone = tmp_path / "clone"
    with pytest.raises(RepositoryError) as refused:
        Repository(clone, clone_from=remote_repo.url)
    message = str(refused.value)
    assert f"the environment variable {variable} is {value!r}" in message
    assert "whole number" in message and "'off'" in message
    assert not clone.exists()  # said before anything was cloned


def test_off_switches_a_check_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREPO_MAX_FILE_SIZE", "off")
    limits = RepositoryLimits.from_environment()
    assert limits.max_file_size is None
    clone = tmp_path / "clone"
    git(tmp_path, "init", "-q", str(clone))
    sparse_file(clone / "big.bin", 51 * GB)
    runner = GitRunner(clone)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_staging(limits, runner, str(clone / ".git"), changes(runner))
    assert [str(w.message) for w in caught] == [
        "big.bin is 51.0 GB (51,000,000,000 bytes), over the recommended 20.0 GB "
        "(20,000,000,000 bytes) per file. Staged anyway; smaller files (shards) upload and "
        "download more reliably."
    ]


def limit_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, LimitWarning)]


def test_each_recommendation_is_warned_about_once_per_call(git_server, remote_repo, tmp_path):
    seed = {f"data/d{i}": b"d" for i in range(1, 5)}  # and the server's .gitattributes: 5 files
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files=seed)
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=url, limits=SMALL_LIMITS)

    # Exactly at each limit: data/ 5 entries, the repository 10 files, a file of 1,024 bytes.
    (clone / "data" / "d5").write_bytes(os.urandom(1024))
    (clone / "other").mkdir()
    for i in range(1, 5):
        (clone / "other" / f"o{i}").write_text("o")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo.git_add(auto_lfs_track=True)
    assert [str(w.message) for w in limit_warnings(caught)] == []
    repo.git_commit("at every limit")

    # One over each: two large files, two crowded folders, the repository; one warning each.
    (clone / "data" / "d6").write_bytes(os.urandom(2048))
    (clone / "new").mkdir()
    (clone / "new" / "n1").write_bytes(os.urandom(3000))
    for i in range(2, 7):
        (clone / "new" / f"n{i}").write_text("n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo.git_add(auto_lfs_track=True)
    found = limit_warnings(caught)
    assert [str(w.message) for w in found] == [
        "2 files are over the recommended 1.0 kB (1,024 bytes) per file: data/d6 (2.0 kB), "
        "new/n1 (3.0 kB). Staged anyway; smaller files (shards) upload and download more "
        "reliably.",
        "2 folders will hold more than the recommended 5 entries per folder (files and folders "
        "directly in it): data/ (at least 6), new/ (at least 6). Staged anyway; spread the files "
        "over subfolders (000/ to 999/, say).",
        "the repository will hold at least 17 files (7 added), over the recommended 10. Staged "
        "anyway; merge small files into fewer, larger ones (JSON Lines, Parquet or WebDataset "
        "shards, say).",
    ]
    assert {w.filename for w in found} == {__file__}  # pointed at the caller's line
    staged = git(clone, "diff", "--cached", "--name-only").stdout.split()
    assert {"data/d6", "new/n1", "new/n6"} <= set(staged)  # warned about, staged all the same


def test_commit_warns_at_the_users_line_and_pushes_anyway(git_server, remote_repo, tmp_path):
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files={"a/1": b"1", "a/2": b"2"})
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=url, limits=RepositoryLimits(max_folder_entries=3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with repo.commit("two more in a/"):
            Path("a/3").write_text("3")
            Path("a/4").write_text("4")
    [warned] = limit_warnings(caught)
    assert str(warned.message).startswith(
        "a/ will hold at least 4 entries, over the recommended 3 entries per folder"
    )
    assert warned.filename == __file__
    remote = git_server.repo_path(f"{remote_repo.name}-seeded")
    assert git(remote, "show", "main:a/4").stdout == "4"


def test_the_checks_read_only_the_folder_added_to(remote_repo, tmp_path, monkeypatch):
    """3,000 files in 30 folders: adding one file lists that folder's 100 entries, in one git
    command, or none at all while the repository has too few files to crowd a folder; the
    repository's files are counted from the index header."""
    clone = tmp_path / "clone"
    Repository(clone, clone_from=remote_repo.url)
    for folder in range(30):
        (clone / f"f{folder:02}").mkdir()
        for i in range(100):
            (clone / f"f{folder:02}" / f"{i:03}.txt").write_text("x")
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "3,000 files")
    commands: list[GitResult] = []
    run = GitRunner.run

    def recording_run(self: GitRunner, args, **kwargs) -> GitResult:  # type: ignore[no-untyped-def]
        result = run(self, args, **kwargs)
        commands.append(result)
        return result

    monkeypatch.setattr(GitRunner, "run", recording_run)

    def add_one(name: str, limits: RepositoryLimits) -> list[warnings.WarningMessage]:
        repo = Repository(clone, limits=limits)
        (clone / "f07" / name).write_text(name)
        commands.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            repo.git_add()
        return limit_warnings(caught)

    add_one("new-1.txt", NO_LIMITS)
    without_checks = len(commands)

    assert add_one("new-2.txt", RepositoryLimits()) == []
    assert len(commands) == without_checks  # 3,002 files cannot put 10,001 in one folder

    [warned] = add_one("new-3.txt", RepositoryLimits(max_folder_entries=150, max_repo_files=3002))
    assert len(commands) == without_checks + 1
    [listing] = [c for c in commands if "ls-tree" in c.command]
    assert listing.command[-2:] == ["--", "f07/"]
    assert len(listing.stdout.split("\0")[:-1]) == 100  # f07's files in HEAD
    # 3,000 committed, new-1.txt and new-2.txt staged before, new-3.txt: exact.
    assert str(warned.message).startswith(
        "the repository will hold at least 3,003 files (1 added), over the recommended 3,002."
    )


@pytest.mark.parametrize("argv_bytes", [100_000, 1], ids=["one-command", "one-per-folder"])
def test_a_new_folder_is_a_new_entry_of_its_parent(
    git_server, remote_repo, tmp_path, monkeypatch, argv_bytes
):
    monkeypatch.setattr("repository.git.ARGV_BATCH_BYTES", argv_bytes)
    seed = {f"r{i}": b"r" for i in range(1, 5)} | {"a/b/1": b"1", "a/b/2": b"2"}
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files=seed)
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=url, limits=RepositoryLimits(max_folder_entries=2))
    # The top folder holds r1-r4, a/ and .gitattributes: one over already, and deep/ is new there.
    for path in ("deep/x/y/z.txt", "a/b/3", "a/c/1"):
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).write_text(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo.git_add()
    [warned] = limit_warnings(caught)
    assert str(warned.message).startswith(
        "2 folders will hold more than the recommended 2 entries per folder (files and folders "
        "directly in it): the top folder (at least 7), a/b/ (at least 3). "
    )  # a/ now holds b/ and c/, deep/x/ and deep/x/y/ one entry each: within the limit


def test_files_deleted_in_the_same_add_are_not_counted(git_server, remote_repo, tmp_path):
    seed = {f"data/{i}": b"d" for i in range(1, 6)}
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files=seed)
    clone = tmp_path / "clone"
    repo = Repository(clone, clone_from=url, limits=RepositoryLimits(max_folder_entries=5))
    (clone / "data" / "1").unlink()
    (clone / "data" / "6").write_text("6")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo.git_add()
    assert [str(w.message) for w in limit_warnings(caught)] == []
    assert git(clone, "diff", "--cached", "--name-status").stdout == "D\tdata/1\nA\tdata/6\n"


def test_a_push_only_clone_counts_what_is_not_on_disk(git_server, remote_repo, tmp_path):
    seed = {f"data/{i}": b"d" for i in range(1, 5)}  # and the server's .gitattributes
    url = git_server.create_repo(f"{remote_repo.name}-seeded", files=seed)
    clone = tmp_path / "clone"
    limits = RepositoryLimits(max_folder_entries=5, max_repo_files=6)
    repo = Repository(clone, clone_from=url, push_only=True, limits=limits)
    assert not (clone / "data" / "1").exists()  # the working tree holds .gitattributes only
    (clone / "data").mkdir()
    (clone / "data" / "5").write_text("5")
    (clone / "data" / "6").write_text("6")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo.push_to_hub("two more")
    assert [str(w.message).partition(",")[0] for w in limit_warnings(caught)] == [
        "data/ will hold at least 6 entries",
        "the repository will hold at least 7 files (2 added)",
    ]
    remote = git_server.repo_path(f"{remote_repo.name}-seeded")
    assert git(remote, "ls-tree", "--name-only", "main", "data/").stdout.split() == [
        f"data/{i}" for i in range(1, 7)
    ]


def test_upload_is_refused_too(remote_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREPO_MAX_FILE_SIZE", "100")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "small.txt").write_text("small")
    (folder / "big.bin").write_bytes(os.urandom(101))
    with pytest.raises(LimitExceededError, match=r"big\.bin is 101 bytes"):
        upload(remote_repo.url, folder, work_dir=tmp_path / "cache")
    assert remote_repo.server.list_refs(remote_repo.name) == {}
    assert not (tmp_path / "cache").exists()  # refused before a clone, or a copy, was made
