"""What a push sends, and how a rejected push is rebased: the queued commit, never a later HEAD.

A push is fixed when it is queued: the local branch (the checked-out one unless the caller named
another), the commit it pointed at, and the remote branch it goes to. When it runs later, the
clone may have moved on (another branch checked out, more commits): the push still sends that
commit. If the remote moved on meanwhile, that commit
is rebased onto the remote branch, in place when the clone still has it checked out (the working
tree follows, local changes are stashed around it), otherwise in a temporary worktree that leaves
the clone's checkout alone.

Example:
    >>> PushTarget("origin", "main", "main", "3f2a" * 10, "http://h/r").refspec("3f2a")
    '3f2a:refs/heads/main'
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import PushRejectedError
from .git import GitResult, GitRunner, classify_failure
from .recovery import rewriting_history

logger = logging.getLogger(__name__)

# Worktrees use pointer files: a rebase has no use for LFS content.
_NO_SMUDGE = {"GIT_LFS_SKIP_SMUDGE": "1"}


@dataclass(frozen=True)
class PushTarget:
    """A push as it was queued."""

    remote: str  # a remote's name or URL
    remote_branch: str
    local_branch: str
    commit: str  # what the local branch pointed at when the push was queued
    web_url: str  # the remote's URL without credentials or ".git", for commit links

    def describe(self) -> str:
        """What is pushed where, for messages.

        Example:
            >>> PushTarget("origin", "main", "dev", "3f2a9c1d" * 5, "u").describe()
            '3f2a9c1 (dev) to origin main'
        """
        return f"{self.commit[:7]} ({self.local_branch}) to {self.remote} {self.remote_branch}"

    def commit_url(self, commit: str) -> str:
        """``<web url>/commit/<commit>``, as the legacy class returned it.

        Example:
            >>> PushTarget("origin", "main", "main", "c0ffee", "http://h/ns/r").commit_url("c0ffee")
            'http://h/ns/r/commit/c0ffee'
        """
        return f"{self.web_url}/commit/{commit}"

    def refspec(self, commit: str) -> str:
        """The refspec that sends ``commit`` to the remote branch."""
        return f"{commit}:refs/heads/{self.remote_branch}"


class RebaseRaced(Exception):
    """Fetching the remote branch raced another writer of the clone; nothing was rebased."""


def rebase_onto_remote(
    git: GitRunner,
    git_dir: str,
    remote: GitRunner,
    target: PushTarget,
    commit: str,
    env: Mapping[str, str],
) -> str:
    """Rebase ``commit`` (the queued commit, or its last rebase) onto the remote branch; return
    the new commit. ``git`` runs in the clone, ``remote`` authenticates to the remote.

    Raises :class:`PushRejectedError` when the rebase conflicts (nothing is left half-rebased)
    and :class:`RebaseRaced` when the fetch must simply be tried again.
    """
    onto = _fetch_remote_branch(remote, target, env)
    if _checked_out_at(git, target.local_branch, commit):
        with rewriting_history(git_dir):
            result = git.run(["rebase", "--autostash", onto], env=env, check=False)
        if result.ok:
            return git.run(["rev-parse", "HEAD"]).stdout.strip()
        git.run(["rebase", "--abort"], check=False)
        raise _conflict(target, result)
    return _rebase_in_worktree(git, git_dir, commit, onto, target)


def follow_push(git: GitRunner, target: PushTarget, pushed: str) -> None:
    """After a successful push: the local branch tracks the remote branch, and a rebased push
    moves the local branch along when it still points at the queued commit and no worktree has it
    checked out (a checked-out branch that moved on is rebased by its own next pull or push)."""
    branch_ref = f"refs/heads/{target.local_branch}"
    if not git.run(["rev-parse", "-q", "--verify", branch_ref], check=False).ok:
        return  # the branch was deleted meanwhile
    config = {"remote": target.remote, "merge": f"refs/heads/{target.remote_branch}"}
    for key, value in config.items():
        name = f"branch.{target.local_branch}.{key}"
        if git.run(["config", "--get", name], check=False).stdout.strip() != value:
            git.run(["config", name, value])
    if pushed == target.commit:
        return
    worktrees = git.run(["worktree", "list", "--porcelain"]).stdout.splitlines()
    if f"branch {branch_ref}" not in worktrees:
        # Compare-and-swap: a branch that moved since is left alone.
        git.run(["update-ref", branch_ref, pushed, target.commit], check=False)


def _fetch_remote_branch(remote: GitRunner, target: PushTarget, env: Mapping[str, str]) -> str:
    """Fetch the remote branch; return the name of a ref that points at its tip."""
    named = remote.run(["remote"], check=False).stdout.split()
    if target.remote in named:
        tip = f"refs/remotes/{target.remote}/{target.remote_branch}"
        refspec = f"+refs/heads/{target.remote_branch}:{tip}"
    else:
        tip, refspec = "FETCH_HEAD", f"refs/heads/{target.remote_branch}"
    fetch = remote.run(["fetch", target.remote, refspec], env=env, check=False)
    if fetch.ok:
        return remote.run(["rev-parse", tip]).stdout.strip()
    if "cannot lock ref" in fetch.stderr.lower():
        # Another process's push or fetch was updating the same remote-tracking ref.
        raise RebaseRaced(fetch.stderr)
    raise classify_failure(fetch.command, fetch.returncode, fetch.stdout, fetch.stderr)


def _checked_out_at(git: GitRunner, branch: str, commit: str) -> bool:
    """Whether the clone has ``branch`` checked out, and at ``commit``."""
    current = git.run(["symbolic-ref", "-q", "HEAD"], check=False).stdout.strip()
    head = git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).stdout.strip()
    return current == f"refs/heads/{branch}" and head == commit


def _rebase_in_worktree(
    git: GitRunner, git_dir: str, commit: str, onto: str, target: PushTarget
) -> str:
    """Rebase a detached ``commit`` in a temporary worktree; the clone's checkout is untouched.

    A kill leaves the worktree behind: recovery.py removes it."""
    parent = os.path.join(git_dir, "lfsrepo")
    os.makedirs(parent, exist_ok=True)
    folder = os.path.join(tempfile.mkdtemp(prefix="rebase-", dir=parent), "worktree")
    try:
        git.run(["worktree", "add", "--detach", "--", folder, commit], env=_NO_SMUDGE)
        worktree = GitRunner(folder)
        result = worktree.run(["rebase", onto], env=_NO_SMUDGE, check=False)
        if not result.ok:
            worktree.run(["rebase", "--abort"], check=False)
            raise _conflict(target, result)
        return worktree.run(["rev-parse", "HEAD"]).stdout.strip()
    finally:
        git.run(["worktree", "remove", "--force", "--", folder], check=False)
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
        git.run(["worktree", "prune"], check=False)


def _conflict(target: PushTarget, result: GitResult) -> PushRejectedError:
    return PushRejectedError(
        result.command,
        result.returncode,
        result.stdout,
        f"the remote moved on and rebasing onto it failed; resolve by hand "
        f"(git pull --rebase {target.remote} {target.remote_branch}):\n{result.stderr}",
    )
