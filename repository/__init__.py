"""lfsrepo's Repository workflow: large files in git repositories with Git LFS.

A drop-in for the legacy ``huggingface_hub.Repository``: change the import, keep the code. Only
the names in ``__all__`` are public; the modules behind them are internal.

Example (against lfsrepo's own local server; any git + LFS server works the same way):
    >>> import os, tempfile
    >>> from repository import Repository
    >>> from repository.testing import LocalGitServer
    >>> server = LocalGitServer().start()
    >>> url = server.create_repo("me/model")
    >>> repo = Repository(os.path.join(tempfile.mkdtemp(), "model"), clone_from=url)
    >>> with repo.commit("Add weights"):  # runs inside the clone, then adds, commits and pushes
    ...     _ = open("weights.bin", "wb").write(os.urandom(1024))
    >>> server.list_refs("me/model")["refs/heads/main"] == repo.git_head_hash()
    True
    >>> server.stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from .commands import CommandInProgress, wait_for_all_commands
    from .errors import (
        AuthenticationError,
        CloneConflictError,
        DiskFullError,
        FolderNotFoundError,
        GitCommandError,
        GitNotFoundError,
        LimitExceededError,
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
    from .limits import LimitWarning, RepositoryLimits
    from .repo import Repository
    from .scheduler import CommitScheduler
    from .upload import UploadResult, upload

__version__ = "0.2.0"

__all__ = [
    "AuthenticationError",
    "CloneConflictError",
    "CommandInProgress",
    "CommitScheduler",
    "DiskFullError",
    "FolderNotFoundError",
    "GitCommandError",
    "GitNotFoundError",
    "LimitExceededError",
    "LimitWarning",
    "NotAGitRepositoryError",
    "NothingToCommitError",
    "PushRejectedError",
    "Repository",
    "RepositoryError",
    "RepositoryLimits",
    "RevisionNotFoundError",
    "UploadResult",
    "commits_to_push",
    "files_to_be_staged",
    "is_binary_file",
    "is_git_ignored",
    "is_git_repo",
    "is_local_clone",
    "is_tracked_upstream",
    "is_tracked_with_lfs",
    "upload",
    "wait_for_all_commands",
]

# Each public name, and the module that defines it. Loaded on first use, so that the transfer
# agent (a separate process per push) can use the git runner without loading the whole workflow.
_HOMES = {
    "CommandInProgress": ".commands",
    "wait_for_all_commands": ".commands",
    "LimitWarning": ".limits",
    "Repository": ".repo",
    "RepositoryLimits": ".limits",
    "UploadResult": ".upload",
    "upload": ".upload",
    "CommitScheduler": ".scheduler",
}
_HOMES.update((name, ".errors") for name in __all__ if name.endswith("Error"))
_HOMES.update((name, ".helpers") for name in __all__ if name not in _HOMES)  # the legacy helpers

__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, [*__all__, "__version__"])
