"""A git-lfs custom transfer agent that moves large files in parallel parts (S3-style multipart).

``enable_largefiles(clone)`` writes the git config that makes git-lfs start the agent in that
clone (``lfsrepo lfs-enable-largefiles`` and every ``Repository`` call it); git-lfs then runs the
agent, a separate process, whenever a server answers a batch with the ``multipart`` transfer.

Only the names in ``lfs_agent.__all__`` are public. The modules behind them are internal to the
agent process and may change in any release.

Example:
    >>> import tempfile
    >>> from repository.git import GitRunner
    >>> git = GitRunner(tempfile.mkdtemp())
    >>> _ = git.run(["init", "-q"])
    >>> enable_largefiles(git.workdir)
    >>> git.run(["config", "lfs.customtransfer.multipart.path"]).stdout
    '/bin/sh\\n'
    >>> try:
    ...     enable_largefiles(tempfile.mkdtemp())
    ... except NotAGitCloneError as error:  # a RepositoryError, so an OSError
    ...     print("not a git clone" in str(error))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lfs_agent.errors import AgentError
from repository._lazy import lazy_attributes

if TYPE_CHECKING:
    from lfs_agent.setup import NotAGitCloneError, enable_largefiles

__all__ = ["AgentError", "NotAGitCloneError", "enable_largefiles"]

# Loaded on first use: the agent process imports this package but never sets a clone up.
__getattr__, __dir__ = lazy_attributes(
    __name__, dict.fromkeys(["NotAGitCloneError", "enable_largefiles"], ".setup"), __all__
)
