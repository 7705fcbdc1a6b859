"""The exception hierarchy of the Repository workflow.

Every error is a :class:`RepositoryError`, itself an :class:`OSError`, so code written for the
legacy class (``except OSError`` / ``except EnvironmentError``) keeps working. Errors raised by a
git command carry the command and its stderr, both with any token already redacted.

Example:
    >>> try:
    ...     raise AuthenticationError(["git", "push"], 128, "", "fatal: Authentication failed")
    ... except OSError as error:
    ...     print(error.stderr)
    fatal: Authentication failed
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RepositoryError(OSError):
    """Base class of every error raised by :mod:`repository`.

    Example:
        >>> isinstance(RepositoryError("boom"), OSError)
        True
    """

    def __init__(self, message: str) -> None:
        # One argument only: OSError would read two as (errno, strerror).
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class GitNotFoundError(RepositoryError):
    """git or git-lfs is not installed or not on PATH."""


class FolderNotFoundError(RepositoryError, FileNotFoundError):
    """A git command was asked to run in a folder that does not exist (a ``FileNotFoundError``
    too, as the legacy helpers raised one).

    Example:
        >>> isinstance(FolderNotFoundError("/nowhere: no such folder"), FileNotFoundError)
        True
    """


class DiskFullError(RepositoryError):
    """Not enough disk space for what was asked: said before staging when it can be known, or
    after a command ran out of it (nothing on disk is damaged either way).
    """


class LimitExceededError(RepositoryError):
    """Files over the repository's size limit for one file (``Repository(limits=...)``,
    ``LFSREPO_MAX_FILE_SIZE``): nothing was staged. ``files`` maps each one's path to its size,
    ``limit`` is the limit, both in bytes.

    Example:
        >>> error = LimitExceededError("cannot stage: ...", {"big.bin": 51}, 50)
        >>> error.files, error.limit
        ({'big.bin': 51}, 50)
    """

    def __init__(self, message: str, files: Mapping[str, int], limit: int) -> None:
        super().__init__(message)
        self.files = dict(files)
        self.limit = limit


class NotAGitRepositoryError(RepositoryError, ValueError):
    """The folder is not a git clone (a ``ValueError`` too, as the legacy class raised one).

    Example:
        >>> isinstance(NotAGitRepositoryError("x"), ValueError)
        True
    """


class CloneConflictError(RepositoryError):
    """The target folder holds something else: files, another remote's clone, unrelated history."""


class GitCommandError(RepositoryError):
    """A git or git-lfs command failed; its ``command``, ``stdout`` and ``stderr`` are redacted.

    Example:
        >>> str(GitCommandError(["git", "commit"], 1, "", "error: x"))
        '`git commit` failed (exit 1): error: x'
    """

    def __init__(
        self, command: Sequence[str], returncode: int, stdout: str = "", stderr: str = ""
    ) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        details = stderr.strip() or stdout.strip() or "no output"
        super().__init__(f"`{' '.join(self.command)}` failed (exit {returncode}): {details}")


class AuthenticationError(GitCommandError):
    """The remote refused the credentials, or needed some and none were given."""

    def __init__(
        self, command: Sequence[str], returncode: int, stdout: str = "", stderr: str = ""
    ) -> None:
        super().__init__(command, returncode, stdout, stderr)
        self.message = (
            "authentication failed: the remote refused the credentials or needed some. Pass "
            "token=... to Repository, or set LFSREPO_TOKEN and pass token=True. " + self.message
        )


class PushRejectedError(GitCommandError):
    """The remote rejected the push (it moved on) and the bounded rebase-and-retry did not help."""


class NothingToCommitError(GitCommandError):
    """``git commit`` found nothing to commit; the message contains "nothing to commit" as before.

    Example:
        >>> error = NothingToCommitError(["git", "commit"], 1, "nothing to commit")
        >>> "nothing to commit" in str(error)
        True
    """


class RevisionNotFoundError(GitCommandError):
    """``git checkout`` could not find the revision and creating a branch was not allowed."""
