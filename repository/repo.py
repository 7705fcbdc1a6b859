"""The :class:`Repository` class: one method per verb of the legacy workflow, orchestration only."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import random
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping, Sequence

from filelock import FileLock

from . import cloning, disk, helpers, lfs, pruning, recovery, staging, termination
from .auth import Token, resolve_token, split_credentials, with_username, without_credentials
from .commands import CommandInProgress, queue_for_clone
from .errors import (
    CloneConflictError,
    DiskFullError,
    GitCommandError,
    NotAGitRepositoryError,
    NothingToCommitError,
    PushRejectedError,
    RepositoryError,
    RevisionNotFoundError,
)
from .git import GitResult, GitRunner, classify_failure, require_git_and_lfs
from .limits import RepositoryLimits, check_staging
from .progress import LfsProgress, bars_wanted
from .push import PushTarget, RebaseRaced, follow_push, rebase_onto_remote

logger = logging.getLogger(__name__)

MAX_PUSH_ATTEMPTS = 10
ENDPOINT_VARIABLE = "LFSREPO_ENDPOINT"

# os.chdir is process-wide: only one commit() block at a time may run inside a clone.
_CWD_LOCK = threading.RLock()


class Repository:
    """A local clone of a git + Git LFS repository, driven like the legacy ``Repository`` class.

    ``local_dir`` empty or missing: ``clone_from`` is cloned into it. Already a clone of the same
    remote: it is reused. Anything else: :class:`~repository.errors.CloneConflictError`. The token
    (a string, or ``True`` for ``LFSREPO_TOKEN``/``HF_TOKEN``) reaches git only through each
    command's environment. Attaching repairs what a killed process left in the clone
    (docs/reliability.md) and wires in the large-file agent, as the legacy constructor did.

    ``push_only=True`` clones for pushing into a big repository without downloading it: no file
    content and no LFS object comes from the server, only the commits and trees (a partial
    clone), and the working tree holds just the ``.gitattributes`` files; write files anywhere
    in it, and add, commit and push as usual (docs/push-only.md). ``limits``: what staging
    refuses or warns about (docs/limits.md); by default the Hub's, or what the environment sets
    (``LFSREPO_MAX_FILE_SIZE``, ...).
    """

    def __init__(
        self,
        local_dir: str | os.PathLike[str],
        clone_from: str | None = None,
        repo_type: str | None = None,
        token: str | bool | None = None,
        git_user: str | None = None,
        git_email: str | None = None,
        revision: str | None = None,
        skip_lfs_files: bool = False,
        client: object | None = None,
        *,
        progress_bars: bool | None = None,
        push_only: bool = False,
        limits: RepositoryLimits | None = None,
    ) -> None:
        if repo_type is not None or client is not None:
            warnings.warn(
                "Repository(repo_type=..., client=...) are ignored: pass the full URL as "
                "clone_from.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.check_git_versions()
        self.local_dir = os.path.abspath(os.fspath(local_dir))
        self.skip_lfs_files = skip_lfs_files or push_only
        self._push_only = push_only
        self._repo_type = repo_type
        resolved = resolve_token(token)
        self._token = Token(resolved) if resolved is not None else None
        self._progress_bars = progress_bars
        self._limits = limits if limits is not None else RepositoryLimits.from_environment()
        self._queue = queue_for_clone(self.local_dir)
        self._git = GitRunner(self.local_dir, self._token)
        self._lock: FileLock | None = None
        self._git_dir = ""
        os.makedirs(self.local_dir, exist_ok=True)
        cloning.resume(self.local_dir)
        if clone_from is not None:
            self.clone_from(clone_from)
        elif helpers.is_git_repo(self.local_dir):
            self._attach()
        else:
            raise NotAGitRepositoryError(
                f"{self.local_dir} is not a git clone: pass clone_from=<url> to clone into it, "
                "or point local_dir at an existing clone."
            )
        if git_user is not None or git_email is not None:
            self.git_config_username_and_email(git_user, git_email)
        # As the legacy constructor did: files over 5 GB go through the multipart agent when the
        # server offers it (this also replaces a legacy clone's `hf lfs-multipart-upload`).
        self.lfs_enable_largefiles()
        if revision is not None:
            self.git_checkout(revision, create_branch_ok=True)

    def __repr__(self) -> str:
        return f"Repository({self.local_dir!r})"

    # ----- state -----------------------------------------------------------------------------

    @property
    def current_branch(self) -> str:
        """The checked-out branch (also when it has no commit yet), or ``"HEAD"`` when detached."""
        result = self._git.run(["symbolic-ref", "--short", "-q", "HEAD"], check=False)
        return result.stdout.strip() if result.ok else "HEAD"

    @property
    def command_queue(self) -> list[CommandInProgress]:
        """Every background command of this clone, oldest first."""
        return self._queue.commands

    @property
    def commands_failed(self) -> list[CommandInProgress]:
        """Background commands that finished with a failure."""
        return [command for command in self.command_queue if command.failed]

    @property
    def commands_in_progress(self) -> list[CommandInProgress]:
        """Background commands queued or running."""
        return self._queue.in_progress()

    def wait_for_commands(self, timeout: float | None = None) -> bool:
        """Wait for this clone's background commands; return whether they all finished."""
        finished = self._queue.wait(timeout)
        termination.disarm_if_idle()
        return finished

    def check_git_versions(self) -> dict[str, str]:
        """The versions of git and git-lfs; raises ``GitNotFoundError`` if either is missing."""
        return require_git_and_lfs()

    def git_head_hash(self) -> str:
        """The sha of HEAD."""
        return self._git.run(["rev-parse", "HEAD"]).stdout.strip()

    def git_remote_url(self) -> str:
        """The URL of ``origin``, never with credentials in it."""
        url = self._git.run(["config", "--get", "remote.origin.url"]).stdout.strip()
        return without_credentials(url)

    def git_head_commit_url(self) -> str:
        """``<remote url>/commit/<sha of HEAD>``."""
        url = self.git_remote_url()
        url = url.removesuffix(".git")
        return f"{url.rstrip('/')}/commit/{self.git_head_hash()}"

    def list_deleted_files(self) -> list[str]:
        """Files deleted from the working tree or the index, relative to the clone."""
        return lfs.deleted_files(self._git)

    def is_repo_clean(self) -> bool:
        """Whether there is nothing to commit (no change, no untracked file)."""
        return not self._git.run(["status", "--porcelain", "-z"]).stdout

    def tag_exists(self, tag_name: str, remote: str | None = None) -> bool:
        """Whether the tag exists locally, or on ``remote`` (a remote name or URL) when given
        (an empty ``remote`` means none, as in the legacy class).
        """
        if not remote:
            args = ["rev-parse", "-q", "--verify", f"refs/tags/{tag_name}"]
            return self._git.run(args, check=False).ok
        result = self._for_remote(remote).run(
            ["ls-remote", "--tags", remote, f"refs/tags/{tag_name}"]
        )
        return bool(result.stdout.strip())

    # ----- clone and configuration ---------------------------------------------------------

    def clone_from(self, repo_url: str, token: str | bool | None = None) -> None:
        """Clone ``repo_url`` into ``local_dir``, or reuse ``local_dir`` if it is already its clone.

        Any git URL or local path works; ``ns/name`` is resolved against ``$LFSREPO_ENDPOINT``
        when set. A token inside the URL is taken out and used, never stored:
        ``https://<user>:<token>@host/...`` sends it as the password of ``<user>`` (the username
        stays in the remote URL, as git would keep it), ``https://<token>@host/...`` as the
        username, as GitHub documents; with a token given separately, ``https://<user>@host/...``
        only names the username.
        """
        url, token_from_url = self._clone_url_and_token(self._resolve_url(repo_url), token)
        if token_from_url is not None:
            self._token = token_from_url
            self._git = GitRunner(self.local_dir, token_from_url)
        os.makedirs(self.local_dir, exist_ok=True)
        cloning.resume(self.local_dir)
        if os.listdir(self.local_dir):
            self._reuse_existing_clone(url)
            return
        with LfsProgress(bars_wanted(self._progress_bars)) as progress:
            environment = {"GIT_LFS_SKIP_SMUDGE": "1", **progress.environment}
            with self._disk_full_is_an_error("cloning", "nothing was kept of the clone"):
                cloning.clone(
                    self._git.with_remote(url), url, self.local_dir, environment, self._push_only
                )
            self._attach(progress.environment)

    def git_config_username_and_email(
        self, git_user: str | None = None, git_email: str | None = None
    ) -> None:
        """Set ``user.name`` / ``user.email`` in the clone's config (spaces and all)."""
        with self._locked():
            if git_user is not None:
                self._git.run(["config", "user.name", git_user])
            if git_email is not None:
                self._git.run(["config", "user.email", git_email])

    def git_credential_helper_store(self) -> None:
        """Opt in to ``credential.helper store`` for this clone (credentials in plain text)."""
        warnings.warn(
            "credential.helper store writes your credentials in plain text to ~/.git-credentials; "
            "prefer passing token= to Repository, which never writes it to disk.",
            UserWarning,
            stacklevel=2,
        )
        with self._locked():
            self._git.run(["config", "credential.helper", "store"])

    # ----- LFS -------------------------------------------------------------------------------

    def lfs_track(self, patterns: str | Sequence[str], filename: bool = False) -> None:
        """Track ``patterns`` with Git LFS (``filename=True``: literal file names, not globs)."""
        flags = ["--filename"] if filename else []
        with self._locked():
            self._git.run(["lfs", "track", *flags, "--", *_as_list(patterns)])

    def lfs_untrack(self, patterns: str | Sequence[str]) -> None:
        """Stop tracking ``patterns`` with Git LFS."""
        with self._locked():
            self._git.run(["lfs", "untrack", "--", *_as_list(patterns)])

    def lfs_enable_largefiles(self) -> None:
        """Send files over 5 GB through lfsrepo's multipart agent (the constructor does it too)."""
        from lfs_agent.setup import enable_largefiles

        with self._locked():
            enable_largefiles(self.local_dir)

    def auto_track_binary_files(self, pattern: str = ".") -> list[str]:
        """Track new or modified binary files under ``pattern`` with LFS; return them.

        Ignored files are skipped; .gitattributes lines of deleted files are removed.
        """
        return self._auto_track(pattern, binary=True, large=False)[0]

    def auto_track_large_files(self, pattern: str = ".") -> list[str]:
        """Track new or modified files of 10 MiB or more under ``pattern`` with LFS; return them."""
        return self._auto_track(pattern, binary=False, large=True)[0]

    def lfs_prune(self, recent: bool = False) -> None:
        """Delete local LFS objects that were pushed and are no longer needed.

        In a partial clone (``push_only``), where ``git lfs prune`` cannot work, every object
        that no unpushed commit and no staged file needs is deleted (see pruning.py).
        """
        with self._locked():
            if pruning.is_partial_clone(self._git):
                deleted = pruning.prune_unneeded(self._git, self._git_dir)
                logger.info("Deleted %d pushed LFS object(s) from %s", deleted, self.local_dir)
                return
            self._git.run(["lfs", "prune", *(["--recent"] if recent else [])])

    # ----- the everyday verbs ----------------------------------------------------------------

    def git_pull(self, rebase: bool = False, lfs: bool = False) -> None:
        """Pull from the upstream (``lfs=True``: only fetch LFS content with ``git lfs pull``).

        Waits for this clone's background pushes first.
        """
        self._queue.wait()
        args = ["lfs", "pull"] if lfs else ["pull", *(["--rebase"] if rebase else [])]
        progress = LfsProgress(bars_wanted(self._progress_bars))
        with (
            self._locked(),
            recovery.rewriting_history(self._git_dir),
            progress,
            self._disk_full_is_an_error("pulling", "the branch is as before"),
        ):
            self._git.run(args, env=progress.environment)

    def git_add(self, pattern: str = ".", auto_lfs_track: bool = False) -> None:
        """Stage ``pattern`` (additions, changes and deletions) through git, so LFS filters apply.

        ``auto_lfs_track=True`` first tracks large and binary files with LFS. Checked first against
        the clone's limits (docs/limits.md): a file over the size limit raises
        :class:`~repository.errors.LimitExceededError` before anything is done.
        """
        with (
            self._locked(),
            self._disk_full_is_an_error(
                "staging", "nothing was staged (the index and HEAD are as before)"
            ),
        ):
            changes = lfs.changes(self._git, pattern)
            check_staging(self._limits, self._git, self._git_dir, changes)
            extra: list[str] = []
            if auto_lfs_track:
                tracked, through_lfs = self._auto_track(
                    pattern, binary=True, large=True, changes=changes
                )
                if tracked:
                    shown = ", ".join(tracked[:5]) + (", ..." if len(tracked) > 5 else "")
                    logger.warning("Tracking %d file(s) with Git LFS: %s", len(tracked), shown)
                if os.path.exists(self._gitattributes):
                    extra = [".gitattributes"]
            else:
                staged = [
                    p for p in changes.untracked + changes.modified if p not in changes.deleted
                ]
                through_lfs = sorted(lfs.lfs_filtered(self._git, staged))
            self._stage([pattern, *extra], through_lfs)

    def _stage(self, pathspecs: list[str], through_lfs: list[str]) -> None:
        """``git add`` what ``pathspecs`` name, once the disk has room for the LFS objects of
        ``through_lfs``; durable on disk when it returns."""
        sizes = [
            os.path.getsize(full)
            for full in (os.path.join(self.local_dir, path) for path in through_lfs)
            if os.path.isfile(full)
        ]
        lfs_objects = os.path.join(self._git_dir, "lfs")
        os.makedirs(lfs_objects, exist_ok=True)
        disk.require_free_space(
            lfs_objects, sum(sizes), f"the Git LFS copies of {len(sizes)} file(s) to stage"
        )
        # Large LFS files first, without git's pipe (staging.py); the plain add that follows
        # finds them staged and unchanged. Loose objects are made durable by the one flush at the
        # end, not by an fsync each.
        stored = (
            staging.store_all(self.local_dir, self._git_dir, through_lfs)
            if through_lfs and staging.fast_path_usable(self._git)
            else []
        )
        # In a sparse checkout (a push-only clone), files outside its patterns are staged too.
        sparse = ["--sparse"] if os.path.exists(self._sparse_checkout_file) else []
        if stored:
            with staging.clean_filter(self._git_dir, stored) as options:
                self._git.run(
                    [
                        "--literal-pathspecs",
                        *options,
                        "-c",
                        "core.fsync=index",
                        "add",
                        *sparse,
                        "--pathspec-from-file=-",
                        "--pathspec-file-nul",
                    ],
                    input=lfs.nul_joined(item.path for item in stored),
                )
        self._git.run(["-c", "core.fsync=index", "add", *sparse, "--", *pathspecs])
        disk.flush(self.local_dir, self._git_dir)

    @contextlib.contextmanager
    def _disk_full_is_an_error(self, doing: str, outcome: str) -> Iterator[None]:
        """A git command that ran out of disk space raises :class:`DiskFullError`, once the
        partial files git-lfs left are removed (they hold space and can never complete)."""
        try:
            yield
        except OSError as error:  # a git command's (GitCommandError), or our own write's
            said = (
                f"{error.stdout}\n{error.stderr}"
                if isinstance(error, GitCommandError)
                else str(error)
            )
            full = error.errno in (errno.ENOSPC, errno.EDQUOT) or disk.ran_out_of_space(said)
            if not full or isinstance(error, DiskFullError):
                raise
            if self._git_dir:
                recovery.remove_partial_lfs_files(self._git_dir)
            raise DiskFullError(
                f"the disk holding {self.local_dir} filled up while {doing}: {outcome}. Free "
                "space there (Repository.lfs_prune() removes LFS objects that were pushed), then "
                f"try again. The error: {said.strip()[-300:]}"
            ) from None

    def git_commit(self, commit_message: str = "commit files to HF hub") -> str:
        """Commit what is staged; return the new commit's sha.

        Raises :class:`~repository.errors.NothingToCommitError` (an ``OSError`` whose message
        contains "nothing to commit") when nothing is staged.
        """
        with self._locked():
            result = self._git.run(["commit", "-m", commit_message], check=False)
            if not result.ok:
                if (
                    "nothing to commit" in result.stdout
                    or "nothing added to commit" in result.stdout
                ):
                    raise NothingToCommitError(result.command, result.returncode, result.stdout)
                self._raise(result)
            return self.git_head_hash()

    def git_push(
        self, upstream: str | None = None, blocking: bool = True, auto_lfs_prune: bool = False
    ) -> str | tuple[str, CommandInProgress]:
        """Push a branch; return the URL of the commit pushed (and the command when non-blocking).

        ``upstream`` is read as ``git push`` reads it: ``"origin"``, or ``"origin dev"`` to push
        the local branch ``dev`` (which then tracks ``origin/dev``); by default the current
        branch's upstream, or ``origin`` and the branch's own name, which also works for the first
        push into an empty remote. The commit the branch points at now is what gets pushed, even
        if the clone moves on before a queued push runs. A push rejected because the remote moved
        on is rebased and retried. Non-blocking pushes run in the background, in order, one at a
        time per clone; only they are listed in :attr:`command_queue`.
        """
        termination.disarm_if_idle()
        target = self._push_target(upstream)
        pushed: list[str] = []
        command = self._queue.submit(
            "push",
            lambda cmd: self._push_job(cmd, target, auto_lfs_prune, pushed),
            listed=not blocking,
            subject=target.describe(),
        )
        if not blocking:
            termination.arm()  # SIGTERM now lets the push finish (see termination.py)
            return target.commit_url(target.commit), command
        command.wait()
        if command.error is not None:
            raise command.error
        return target.commit_url(pushed[0])  # a rebased push sent another commit

    def git_checkout(self, revision: str, create_branch_ok: bool = False) -> None:
        """Check out a branch, tag or commit; ``create_branch_ok``: create a missing branch."""
        with self._locked():
            result = self._git.run(["checkout", revision, "--"], check=False)
            if result.ok:
                return
            if not create_branch_ok:
                raise RevisionNotFoundError(
                    result.command, result.returncode, result.stdout, result.stderr
                )
            self._git.run(["checkout", "-b", revision])

    def add_tag(self, tag_name: str, message: str | None = None, remote: str | None = None) -> None:
        """Create a tag on HEAD (annotated when ``message`` is not empty) and push it to
        ``remote`` when one is named.
        """
        with self._locked():
            if message:
                self._git.run(["tag", "-a", tag_name, "-m", message])
            else:
                self._git.run(["tag", tag_name])
        if remote:
            self._for_remote(remote).run(["push", remote, f"refs/tags/{tag_name}"])

    def delete_tag(self, tag_name: str, remote: str | None = None) -> bool:
        """Delete a tag here and, with ``remote``, there too; return whether one existed."""
        deleted = False
        if self.tag_exists(tag_name):
            with self._locked():
                self._git.run(["tag", "-d", tag_name])
            deleted = True
        if remote and self.tag_exists(tag_name, remote=remote):
            self._for_remote(remote).run(["push", remote, "--delete", f"refs/tags/{tag_name}"])
            deleted = True
        return deleted

    def push_to_hub(
        self,
        commit_message: str = "commit files to HF hub",
        blocking: bool = True,
        clean_ok: bool = True,
        auto_lfs_prune: bool = False,
    ) -> str | tuple[str, CommandInProgress] | None:
        """Add everything (auto-tracking large and binary files), commit and push.

        Returns ``None`` when there is nothing to commit and ``clean_ok`` is true.
        """
        if clean_ok and self.is_repo_clean():
            logger.info("Repo currently clean. Ignoring push_to_hub")
            return None
        self.git_add(auto_lfs_track=True)
        self.git_commit(commit_message)
        return self.git_push(
            upstream=f"origin {self.current_branch}",
            blocking=blocking,
            auto_lfs_prune=auto_lfs_prune,
        )

    push = push_to_hub

    @contextlib.contextmanager
    def commit(
        self,
        commit_message: str,
        branch: str | None = None,
        track_large_files: bool = True,
        blocking: bool = True,
        auto_lfs_prune: bool = False,
    ) -> Iterator[Repository]:
        """Pull, run the block inside the clone, then add, commit and push what it wrote.

        The block runs with the clone as working directory (restored afterwards in every case).
        If the block raises, nothing is committed or pushed, the files stay on disk, and the
        exception propagates.
        """
        if branch is not None:
            self.git_checkout(branch, create_branch_ok=True)
        if helpers.is_tracked_upstream(self.local_dir):  # raises on a detached HEAD, as legacy did
            self._queue.wait()
            with (
                self._locked(),
                recovery.rewriting_history(self._git_dir),
                self._disk_full_is_an_error("pulling", "the branch is as before"),
            ):
                self._git.run(["pull", "--rebase", "--autostash"])
        with _CWD_LOCK:
            previous_cwd = os.getcwd()
            os.chdir(self.local_dir)
            try:
                yield self
            finally:
                os.chdir(previous_cwd)
        with self._locked():
            self.git_add(auto_lfs_track=track_large_files)
            try:
                self.git_commit(commit_message)
            except NothingToCommitError:
                logger.info("Nothing to commit in %s", self.local_dir)
        self.git_push(
            upstream=f"origin {self.current_branch}",
            blocking=blocking,
            auto_lfs_prune=auto_lfs_prune,
        )

    # ----- internals -------------------------------------------------------------------------

    @property
    def _gitattributes(self) -> str:
        return os.path.join(self.local_dir, ".gitattributes")

    @property
    def _sparse_checkout_file(self) -> str:
        return os.path.join(self._git_dir, "info", "sparse-checkout")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold lfsrepo's lock on the clone. The outermost hold first repairs what a killed git,
        git-lfs or lfsrepo process left there (see recovery.py), so every mutating command
        starts from a clone git can work in."""
        assert self._lock is not None, "the clone is not attached yet"
        with self._lock:
            if self._lock.lock_counter == 1:
                recovery.repair(self._git, self._git_dir)
            yield

    def _attach(self, env: Mapping[str, str] | None = None) -> None:
        """Adopt a clone: lock file, remote for credentials, LFS hooks and filters; repair what
        killed processes left, and fetch the LFS content a killed clone did not."""
        git_dir = self._git.run(["rev-parse", "--absolute-git-dir"]).stdout.strip()
        self._git_dir = git_dir
        self._lock = FileLock(os.path.join(git_dir, "lfsrepo.lock"))
        remote = self._git.run(["config", "--get", "remote.origin.url"], check=False).stdout.strip()
        self._git = GitRunner(self.local_dir, self._token, remote or None)
        with self._locked():
            recovery.repair_index(self._git, git_dir)
            if not os.path.exists(os.path.join(git_dir, "hooks", "pre-push")):
                # Hooks and filters in the clone itself: works without a global `git lfs install`.
                installed = self._git.run(["lfs", "install", "--local"], check=False)
                if not installed.ok:
                    logger.warning(
                        "`git lfs install --local` failed in %s; LFS files may not be pushed: %s",
                        self.local_dir,
                        installed.stderr.strip(),
                    )
            if cloning.lfs_content_pending(git_dir):
                # Smudging during checkout would need filters the user may not have installed:
                # LFS content comes afterwards, in one batch, with the clone's own configuration.
                has_head = self._git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok
                if has_head and not self.skip_lfs_files:
                    with self._disk_full_is_an_error(
                        "fetching LFS content",
                        "the clone is complete but for it; the next Repository() fetches it",
                    ):
                        self._git.run(["lfs", "pull"], env=env)
                cloning.lfs_content_fetched(git_dir)

    def _clone_url_and_token(self, url: str, token: str | bool | None) -> tuple[str, Token | None]:
        """The URL to clone (no secret in it) and the token to use from now on, if it changed."""
        clean, username, secret = split_credentials(url)
        given = resolve_token(token)
        if secret is None and (username is None or given is not None or self._token is not None):
            # No secret in the URL; a username in it stays there and is sent with the token.
            return url, Token(given) if given is not None else None
        warnings.warn(
            "The clone URL held a token; it is used for this Repository and not stored.",
            stacklevel=3,
        )
        if secret is None:  # https://<token>@host/...
            assert username is not None
            return clean, Token(username, as_username=True)
        return with_username(clean, username) if username else clean, Token(given or secret)

    def _resolve_url(self, repo_url: str) -> str:
        endpoint = os.environ.get(ENDPOINT_VARIABLE)
        looks_like_id = (
            "://" not in repo_url and ":" not in repo_url and not os.path.exists(repo_url)
        )
        if not (endpoint and looks_like_id):
            if "://" not in repo_url and os.path.exists(repo_url):
                return os.path.abspath(repo_url)
            return repo_url
        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(self._repo_type or "", "")
        return urllib.parse.urljoin(endpoint.rstrip("/") + "/", prefix + repo_url.strip("/"))

    def _reuse_existing_clone(self, url: str) -> None:
        if not helpers.is_git_repo(self.local_dir):
            raise CloneConflictError(
                f"Cannot clone {url} into {self.local_dir}: the folder is not empty and is not a "
                "git clone. Use an empty folder, or move its files elsewhere first."
            )
        if not helpers.is_local_clone(self.local_dir, url):
            others = ", ".join(without_credentials(u) for u in helpers.remote_urls(self.local_dir))
            raise CloneConflictError(
                f"{self.local_dir} is a clone of {others or 'no remote'}, not of {url}. "
                "Use another local_dir, or Repository(local_dir) without clone_from to use it."
            )
        self._attach()
        fetched = self._git.run(["fetch", "origin"], check=False)
        if not fetched.ok:  # offline, say: the legacy class reused a clone without the network
            reason = (fetched.stderr.strip().splitlines() or ["no output"])[-1]
            logger.warning(
                "Cannot fetch from %s (%s); reusing %s as it is", url, reason, self.local_dir
            )
        branch = self.current_branch
        remote_ref = f"refs/remotes/origin/{branch}"
        head_exists = self._git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok
        remote_exists = self._git.run(["rev-parse", "-q", "--verify", remote_ref], check=False).ok
        if head_exists and remote_exists:
            related = self._git.run(["merge-base", "HEAD", remote_ref], check=False).ok
            if not related:
                raise CloneConflictError(
                    f"{self.local_dir} has a history unrelated to {url} (branch {branch}). "
                    "Clone into an empty folder instead."
                )
        logger.info("%s is already a clone of %s; reusing it", self.local_dir, url)

    def _for_remote(self, remote: str) -> GitRunner:
        result = self._git.run(["remote", "get-url", remote], check=False)
        return self._git.with_remote(result.stdout.strip() if result.ok else remote)

    def _auto_track(
        self, pattern: str, binary: bool, large: bool, changes: lfs.Changes | None = None
    ) -> tuple[list[str], list[str]]:
        """Track large/binary files under ``pattern`` with LFS: (newly tracked, every file under
        ``pattern`` that will now go through LFS); ``changes``: those of ``pattern`` if known."""
        with self._locked():
            if changes is None:
                changes = lfs.changes(self._git, pattern)
            deleted = set(changes.deleted)
            candidates = [
                path
                for path in changes.untracked + changes.modified
                if path not in deleted and _regular_file(os.path.join(self.local_dir, path))
            ]
            through_lfs = lfs.lfs_filtered(self._git, candidates)
            excluded = through_lfs | lfs.git_ignored(self._git, candidates)
            to_track = []
            for path in candidates:
                if path in excluded:
                    continue
                full = os.path.join(self.local_dir, path)
                if (large and os.path.getsize(full) >= lfs.LARGE_FILE_BYTES) or (
                    binary and lfs.is_binary_file(full)
                ):
                    to_track.append(path)
            # A tracked file whose stat data changed but not its content is not newly tracked.
            unchanged = set(changes.modified) - lfs.really_modified(
                self._git, [path for path in to_track if path in set(changes.modified)]
            )
            to_track = [path for path in to_track if path not in unchanged]
            tracked = lfs.add_lfs_lines(self._gitattributes, to_track)
            lfs.remove_lfs_lines(self._gitattributes, deleted)
            return tracked, sorted(through_lfs | set(to_track))

    def _push_target(self, upstream: str | None) -> PushTarget:
        """What a push sends, read with one git command, so ``git_push(blocking=False)`` returns
        in milliseconds. ``upstream`` is ``"<remote> [<local branch>[:<remote branch>]]"``, as
        ``git push`` reads it."""
        fields = "%(HEAD)%00%(refname:lstrip=2)%00%(objectname)%00%(upstream:remotename)%00"
        listing = self._git.run(
            ["for-each-ref", f"--format={fields}%(upstream:remoteref)", "refs/heads/"]
        ).stdout
        branches = {row[1]: row for row in (line.split("\0") for line in listing.splitlines())}
        current = next((name for name, row in branches.items() if row[0] == "*"), None)
        source, destination = "", ""
        if upstream:
            remote, _, refspec = upstream.strip().partition(" ")
            source, _, destination = refspec.strip().partition(":")
        branch = current if source in ("", "HEAD") else source
        if branch is None:
            head = self._git.run(["symbolic-ref", "-q", "--short", "HEAD"], check=False)
            if not head.ok:
                raise RepositoryError(
                    f"{self.local_dir}: No branch checked out (HEAD is detached); "
                    "check out a branch to push"
                )
            branch = head.stdout.strip()
        if branch not in branches:
            problem = "does not exist" if source not in ("", "HEAD") else "has no commit yet"
            raise RepositoryError(f"{self.local_dir}: branch {branch} {problem}; nothing to push")
        _, _, commit, tracked_remote, tracked_ref = branches[branch]
        if not upstream:
            remote = tracked_remote or "origin"
            destination = tracked_ref.removeprefix("refs/heads/")
        origin = without_credentials(self._git.remote_url or "").removesuffix(".git")
        return PushTarget(remote, destination or branch, branch, commit, origin.rstrip("/"))

    def _push_job(
        self,
        command: CommandInProgress,
        target: PushTarget,
        auto_lfs_prune: bool,
        pushed: list[str],
    ) -> int:
        """Push ``target`` (rebasing it when the remote moved on); append what was pushed."""
        runner = self._for_remote(target.remote)
        commit = target.commit
        with LfsProgress(bars_wanted(self._progress_bars)) as progress:
            command.progress = progress
            for attempt in range(1, MAX_PUSH_ATTEMPTS + 1):
                args = ["push", target.remote, target.refspec(commit)]
                output_before = (len(command.stdout), len(command.stderr))
                start = functools.partial(runner.popen, args, env=progress.environment)
                returncode = command.run_process(start, runner.redact)
                if returncode == 0:
                    break
                # Classify this attempt by its own output; the command keeps every attempt's.
                error = classify_failure(
                    runner.command(args),
                    returncode,
                    command.stdout[output_before[0] :],
                    command.stderr[output_before[1] :],
                )
                if not isinstance(error, PushRejectedError) or attempt == MAX_PUSH_ATTEMPTS:
                    raise error
                logger.info(
                    "Push to %s %s rejected; rebasing and retrying",
                    target.remote,
                    target.remote_branch,
                )
                time.sleep(random.uniform(0.05, 0.3) * attempt)  # de-synchronise competing writers
                with self._locked():
                    try:
                        commit = rebase_onto_remote(
                            self._git, self._git_dir, runner, target, commit, progress.environment
                        )
                    except RebaseRaced:
                        logger.info(
                            "Fetch from %s raced another writer of the clone; retrying",
                            target.remote,
                        )
        with self._locked():
            follow_push(self._git, target, commit)
        pushed.append(commit)
        if auto_lfs_prune:
            self.lfs_prune()
        return 0

    def _raise(self, result: GitResult) -> None:
        raise classify_failure(result.command, result.returncode, result.stdout, result.stderr)


def _regular_file(full: str) -> bool:
    return os.path.isfile(full) and not os.path.islink(full)


def _as_list(patterns: str | Sequence[str]) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns)
