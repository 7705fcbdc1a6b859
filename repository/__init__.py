"""lfsrepo's Repository workflow: large files in git repositories with Git LFS.

A drop-in for the legacy ``huggingface_hub.Repository``: change the import, keep the code.

Example:
    >>> from repository import Repository
    >>> with Repository("clone", clone_from="http://127.0.0.1:8080/ns/repo").commit("Add"):  # doctest: +SKIP
    ...     open("weights.bin", "wb").write(b"\\0" * 1024)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .commands import CommandInProgress, wait_for_all_commands
    from .errors import (
        AuthenticationError,
        CloneConflictError,
        DiskFullError,
        FolderNotFoundError,
        GitCommandError,
        GitNotFoundError,
        NotAGitRepositoryError,
        NothingToCommitError,
        PushRejectedError,
        RepositoryError,
        RevisionNotFoundError,
    )
    from .helpers import (
        commits_to_push,
        files_to_be_staged,
        is_binary_file,
        is_git_ignored,
        is_git_repo,
        is_local_clone,
        is_tracked_upstream,
        is_tracked_with_lfs,
    )
    from .repo import Repository

__version__ = "0.2.0"

__all__ = [
    "AuthenticationError",
    "CloneConflictError",
    "CommandInProgress",
    "DiskFullError",
    "FolderNotFoundError",
    "GitCommandError",
    "GitNotFoundError",
    "NotAGitRepositoryError",
    "NothingToCommitError",
    "PushRejectedError",
    "Repository",
    "RepositoryError",
    "RevisionNotFoundError",
    "commits_to_push",
    "files_to_be_staged",
    "is_binary_file",
    "is_git_ignored",
    "is_git_repo",
    "is_local_clone",
    "is_tracked_upstream",
    "is_tracked_with_lfs",
    "wait_for_all_commands",
]

# Each public name, and the module that defines it. Loaded on first use, so that the transfer
# agent (a separate process per push) can use the git runner without loading the whole workflow.
_HOMES = {
    **dict.fromkeys(["CommandInProgress", "wait_for_all_commands"], ".commands"),
    **dict.fromkeys([name for name in __all__ if name.endswith("Error")], ".errors"),
    **dict.fromkeys(
        [
            "commits_to_push",
            "files_to_be_staged",
            "is_binary_file",
            "is_git_ignored",
            "is_git_repo",
            "is_local_clone",
            "is_tracked_upstream",
            "is_tracked_with_lfs",
        ],
        ".helpers",
    ),
    "Repository": ".repo",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
