"""Put a local file or folder into a repository over git: ``lfsrepo upload`` and :func:`upload`.

The work happens in a push-only clone kept in a cache folder (one per repository URL), so nothing
of the repository is downloaded and a second run continues where a killed one stopped. Files are
brought into the clone as hard links (copies across filesystems: the source is never written),
then committed in batches of ``files_per_commit``, each batch pushed before the next one starts
and its LFS copies pruned. A file is compared with what the repository has by content: a run
after a kill, or after everything was uploaded, commits only what differs.

Example (against lfsrepo's local server):
    >>> import os, tempfile
    >>> from repository.testing import LocalGitServer
    >>> with LocalGitServer() as server:
    ...     url = server.create_repo("me/data")
    ...     folder = tempfile.mkdtemp()
    ...     for name in ("a.txt", "b.txt", "c.txt"):
    ...         _ = open(os.path.join(folder, name), "w").write(name)
    ...     cache = tempfile.mkdtemp()
    ...     first = upload(url, folder, "raw", files_per_commit=2, work_dir=cache)
    ...     again = upload(url, folder, "raw", files_per_commit=2, work_dir=cache)
    >>> len(first.commits), first.files, len(again.commits)
    (2, 3, 0)
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import filelock

from .auth import without_credentials
from .errors import FolderNotFoundError, GitCommandError, NothingToCommitError, RepositoryError
from .git import GitRunner, argv_batches, split_nul
from .helpers import commits_to_push, is_tracked_upstream
from .limits import RepositoryLimits, refuse_oversized
from .repo import Repository

logger = logging.getLogger(__name__)

CACHE_VARIABLE = "LFSREPO_CACHE"
_PLACING = os.path.join("lfsrepo", "upload-placing")  # inside .git: never staged


@dataclass
class UploadResult:
    """What one :func:`upload` did."""

    files: int  # files in ``local_path``
    commits: list[str] = field(default_factory=list)  # URLs of the commits this run pushed


def default_work_dir(url: str) -> str:
    """The cache folder of the push-only clone for ``url`` (``$LFSREPO_CACHE``, else
    ``$XDG_CACHE_HOME/lfsrepo`` or ``~/.cache/lfsrepo``, then ``upload/<hash of the URL>``)."""
    base = os.environ.get(CACHE_VARIABLE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser(os.path.join("~", ".cache")),
        "lfsrepo",
    )
    digest = hashlib.sha256(without_credentials(url).encode()).hexdigest()[:16]
    return os.path.join(base, "upload", digest)


def upload(
    url: str,
    local_path: str | os.PathLike[str],
    path_in_repo: str | None = None,
    *,
    token: str | bool | None = None,
    files_per_commit: int | None = None,
    commit_message: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress_bars: bool | None = None,
    limits: RepositoryLimits | None = None,
    on_commit: Callable[[int, int, str | None], None] | None = None,
) -> UploadResult:
    """Upload ``local_path`` (a file or a folder) to ``path_in_repo`` of the repository at ``url``.

    A folder's files keep their relative paths under ``path_in_repo`` (default: the root); a
    file goes to ``path_in_repo`` (default: its name). ``files_per_commit`` splits the upload into
    commits of at most that many files, each pushed before the next; ``on_commit(done, total,
    url)`` is called after each batch, with the URL of the commit pushed (None: the repository
    had the batch already). Run it again after a failure or a kill: what the
    repository has already is not committed again. A file over the size limit (docs/limits.md;
    ``limits`` as for :class:`Repository`) is refused before anything is placed or sent. Raises
    :class:`RepositoryError` subclasses.
    """
    if files_per_commit is not None and files_per_commit < 1:
        raise ValueError(f"files_per_commit must be 1 or more, not {files_per_commit}")
    local = os.path.abspath(os.fspath(local_path))  # also drops a trailing "/"
    files = sorted(_files_to_upload(local, path_in_repo))
    limits = limits if limits is not None else RepositoryLimits.from_environment()
    if limits.max_file_size is not None:
        sizes = {repo_path: os.path.getsize(source) for repo_path, source in files}
        refuse_oversized(sizes, limits.max_file_size)
    result = UploadResult(files=len(files))
    clone = os.path.abspath(os.fspath(work_dir or default_work_dir(url)))
    os.makedirs(os.path.dirname(clone), exist_ok=True)
    try:
        with filelock.FileLock(clone + ".lock", timeout=0):
            repo = Repository(
                clone,
                clone_from=url,
                token=token,
                push_only=True,
                progress_bars=progress_bars,
                limits=limits,
            )
            _push_what_a_killed_run_committed(repo, result)
            _drop_what_a_killed_run_placed(clone)
            size = files_per_commit or max(len(files), 1)
            message = commit_message or f"Upload {os.path.basename(local)}"
            batches = [files[start : start + size] for start in range(0, len(files), size)]
            for number, batch in enumerate(batches, start=1):
                for repo_path, source in batch:
                    _place(source, clone, repo_path)
                numbered = f"{message} ({number}/{len(batches)})" if len(batches) > 1 else message
                pushed = _commit_and_push(repo, numbered)
                if pushed is not None:
                    result.commits.append(pushed)
                if on_commit is not None:
                    on_commit(min(number * size, len(files)), len(files), pushed)
    except filelock.Timeout:
        raise RepositoryError(
            f"another upload into {clone} is running; wait for it to end, or pass another "
            "work_dir (--work-dir)"
        ) from None
    return result


def _files_to_upload(local: str, path_in_repo: str | None) -> Iterator[tuple[str, str]]:
    """``(path in the repository, source file)`` of every file to upload."""
    if os.path.isfile(local):
        yield _repo_path(path_in_repo or os.path.basename(local)), local
        return
    if not os.path.isdir(local):
        raise FolderNotFoundError(f"{local} does not exist: nothing to upload")
    prefix = _repo_path(path_in_repo) if path_in_repo else ""
    for folder, subfolders, names in os.walk(local):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        for name in names:
            source = os.path.join(folder, name)
            if os.path.isfile(source):  # a symbolic link uploads what it points to
                relative = os.path.relpath(source, local).replace(os.sep, "/")
                yield posixpath.join(prefix, relative) if prefix else relative, source


def _repo_path(path: str) -> str:
    """``path`` as a clean relative path inside the repository, or a ValueError."""
    clean = posixpath.normpath(path.replace(os.sep, "/").strip("/"))
    if clean in ("", ".") or clean.startswith("../") or clean == ".." or ".git" in clean.split("/"):
        raise ValueError(f"{path!r} is not a path inside a repository")
    return clean


def _place(source: str, clone: str, repo_path: str) -> None:
    """Make ``source`` appear at ``repo_path`` in the clone: a hard link, else a copy."""
    target = os.path.join(clone, *repo_path.split("/"))
    try:
        if os.path.samefile(source, target):
            return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(target), exist_ok=True)
    placing = os.path.join(clone, ".git", _PLACING)
    os.makedirs(placing, exist_ok=True)
    partial = os.path.join(placing, hashlib.sha256(repo_path.encode()).hexdigest())
    if os.path.lexists(partial):
        os.remove(partial)  # left by a killed run
    try:
        os.link(source, partial)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, partial)
    os.replace(partial, target)


def _push_what_a_killed_run_committed(repo: Repository, result: UploadResult) -> None:
    if is_tracked_upstream(repo.local_dir):
        pending = commits_to_push(repo.local_dir) > 0
    else:  # nothing pushed yet: any commit is pending
        try:
            repo.git_head_hash()
            pending = True
        except GitCommandError:
            pending = False
    if pending:
        logger.warning("Pushing what an earlier upload into %s committed", repo.local_dir)
        result.commits.append(str(repo.git_push(auto_lfs_prune=True)))


def _drop_what_a_killed_run_placed(clone: str) -> None:
    """Put the clone back to its last commit, so that files a killed run placed but did not
    commit do not join the next batch's commit: the index as HEAD has it, files git does not
    track removed (links or copies: the sources stay), changed ones checked out as HEAD has them
    (a partial clone fetches those blobs; LFS files' are pointers). The batches place them again.
    """
    git = GitRunner(clone)
    if git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok:
        git.run(["reset", "-q"])
    else:  # nothing pushed yet
        git.run(["read-tree", "--empty"])
    untracked = split_nul(git.run(["ls-files", "-z", "-o", "--exclude-standard"]).stdout)
    for path in untracked:
        os.remove(os.path.join(clone, *path.split("/")))
    changed = split_nul(git.run(["diff-files", "-z", "--name-only"]).stdout)
    for batch in argv_batches(changed):
        git.run(["--literal-pathspecs", "checkout", "-q", "--", *batch])
    if untracked or changed:
        logger.warning(
            "Set aside %d file(s) an earlier upload placed in %s but did not commit; they are "
            "placed again with their batch",
            len(untracked) + len(changed),
            clone,
        )


def _commit_and_push(repo: Repository, message: str) -> str | None:
    """Commit and push what is placed; the URL of the commit, None if nothing differed."""
    repo.git_add(auto_lfs_track=True)
    try:
        repo.git_commit(message)
    except NothingToCommitError:
        repo.lfs_prune()  # the copies staging made of what the repository has
        return None
    return str(repo.git_push(auto_lfs_prune=True))
