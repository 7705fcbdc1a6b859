"""The legacy module-level helpers, under their legacy names and signatures."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Sequence

from . import lfs
from .auth import without_credentials
from .errors import GitCommandError, RepositoryError
from .git import GitRunner, split_nul


def _runner(folder: str | os.PathLike[str] | None) -> GitRunner:
    return GitRunner(os.fspath(folder) if folder is not None else os.getcwd())


def _file_in(
    filename: str | os.PathLike[str], query: Callable[[GitRunner, Sequence[str]], set[str]]
) -> bool:
    """Whether a batched query selects ``filename``; outside any repository it selects nothing,
    as the legacy helpers answered."""
    folder, name = os.path.split(os.path.abspath(filename))
    runner = _runner(folder)
    try:
        return name in query(runner, [name])
    except GitCommandError:
        if _inside_work_tree(runner):
            raise
        return False


def _inside_work_tree(runner: GitRunner) -> bool:
    result = runner.run(["rev-parse", "--is-inside-work-tree"], check=False)
    return result.stdout.strip() == "true"


def is_git_repo(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is the top of a git working tree (not merely inside one)."""
    if not os.path.isdir(folder):
        return False
    result = _runner(folder).run(["rev-parse", "--show-toplevel"], check=False)
    return result.ok and os.path.realpath(result.stdout.strip()) == os.path.realpath(folder)


def normalize_remote_url(url: str) -> str:
    """A URL or path in a form where two spellings of the same remote compare equal.

    Credentials, a trailing slash and a trailing ``.git`` are dropped; local paths become absolute.

    Example:
        >>> normalize_remote_url("https://u:t@h/ns/r.git/")
        'https://h/ns/r'
    """
    url = without_credentials(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        url = urllib.parse.unquote(parts.path)
    if "://" not in url and os.path.exists(url):
        url = os.path.realpath(url)
    url = url.rstrip("/")
    return url.removesuffix(".git")


def remote_urls(folder: str | os.PathLike[str]) -> list[str]:
    """The URLs of every remote of the clone in ``folder``."""
    result = _runner(folder).run(
        ["config", "-z", "--get-regexp", r"^remote\..*\.url$"], check=False
    )
    if not result.ok:
        return []
    return [entry.partition("\n")[2] for entry in split_nul(result.stdout)]


def is_local_clone(folder: str | os.PathLike[str], remote_url: str) -> bool:
    """Whether ``folder`` is a clone of ``remote_url`` (credentials and ``.git`` suffix ignored)."""
    if not is_git_repo(folder):
        return False
    wanted = normalize_remote_url(remote_url)
    return any(normalize_remote_url(url) == wanted for url in remote_urls(folder))


def is_tracked_with_lfs(filename: str | os.PathLike[str]) -> bool:
    """Whether the attributes of ``filename`` send it through Git LFS."""
    return _file_in(filename, lfs.lfs_filtered)


def is_git_ignored(filename: str | os.PathLike[str]) -> bool:
    """Whether ``filename`` is ignored by git."""
    return _file_in(filename, lfs.git_ignored)


def is_binary_file(filename: str | os.PathLike[str]) -> bool:
    """Whether ``filename`` looks binary (its first 8,000 bytes decide)."""
    return lfs.is_binary_file(filename)


def files_to_be_staged(
    pattern: str = ".", folder: str | os.PathLike[str] | None = None
) -> list[str]:
    """Modified, deleted and untracked files under ``pattern`` in the clone at ``folder``."""
    return lfs.files_to_be_staged(_runner(folder), pattern)


def is_tracked_upstream(folder: str | os.PathLike[str]) -> bool:
    """Whether the current branch of the clone at ``folder`` has an upstream branch.

    Raises :class:`RepositoryError` ("No branch checked out") on a detached HEAD, as the legacy
    helper did.
    """
    runner = _runner(folder)
    result = runner.run(
        ["rev-parse", "--symbolic-full-name", "--abbrev-ref", "@{upstream}"], check=False
    )
    if result.ok:
        return True
    if _inside_work_tree(runner) and not runner.run(["symbolic-ref", "-q", "HEAD"], check=False).ok:
        raise RepositoryError(
            f"{os.fspath(folder)}: No branch checked out (HEAD is detached); "
            "check out a branch first"
        )
    return False


def commits_to_push(folder: str | os.PathLike[str], upstream: str | None = None) -> int:
    """How many commits ``git cherry`` lists: those of HEAD missing from its upstream.

    ``upstream`` takes git cherry's arguments as one string, as the legacy helper did:
    ``"origin/main"`` (compare HEAD with it), or ``"origin dev"`` (compare local ``dev`` with
    ``origin``'s default branch).
    """
    result = _runner(folder).run(["cherry", *(upstream or "").split()])
    return len(result.stdout.splitlines())
