"""lfsrepo's Repository workflow: large files in git repositories with Git LFS.

A drop-in for the legacy ``huggingface_hub.Repository``: change the import, keep the code.

Example:
    >>> from repository import Repository
    >>> with Repository("clone", clone_from="http://127.0.0.1:8080/ns/repo").commit("Add"):  # doctest: +SKIP
    ...     open("weights.bin", "wb").write(b"\\0" * 1024)
"""

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
