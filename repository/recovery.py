"""Repairs what a killed git, git-lfs or lfsrepo process left in a clone, so the next run goes on.

A git killed mid-command leaves its lock files behind (``index.lock``, ``HEAD.lock``, a ref's
``.lock``...), and git never removes a stale lock: every later command fails with "File exists".
A rebase or pull of ours killed halfway leaves the rebase in progress; a push's temporary rebase
worktree stays registered; git-lfs and a killed fetch leave partial temporary files.

Nothing is touched while anything may still be working in the clone. The caller holds lfsrepo's
own lock on the clone, so no lfsrepo process is in the middle of a command there; on Linux,
``/proc`` then tells whether any live process runs git in the clone (its working directory is
inside it) or has a lock file open. Only when neither is true is a leftover stale. Without
``/proc`` (macOS, BSD) a leftover must also be an hour old, longer than any git command lfsrepo
runs holds a lock. Every repair is logged at WARNING, naming what was removed and why.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .git import GitRunner, list_for_paths, split_nul
from .staging import ATTRIBUTES_BEGIN, remove_attributes

logger = logging.getLogger(__name__)

# The lock files git takes at known places of its directory; refs/**/*.lock and the commit-graph
# locks under objects/info are found by a walk. A stale maintenance.lock (git commit runs
# `git maintenance run --auto`, in the foreground with gc.autoDetach=false) stops every later
# automatic maintenance without a word.
_TOP_LOCKS = (
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "FETCH_HEAD.lock",
    "config.lock",
    "shallow.lock",
    "packed-refs.lock",
    os.path.join("objects", "maintenance.lock"),
)
# Without /proc, a leftover must be older than this to count as stale.
STALE_WITHOUT_PROC_S = 3600
# lfsrepo's rebases and pulls say so here while they run (see :func:`rewriting_history`).
REWRITE_MARKER = os.path.join("lfsrepo", "rewriting-history")


@dataclass(frozen=True)
class Leftover:
    """Something a killed process left: its path, and what removing it repairs."""

    path: str
    kind: str  # "lock", "rebase", "worktree", "temp", "tempdir", "attributes"


def leftovers(git_dir: str) -> list[Leftover]:
    """What killed processes may have left in ``git_dir``; cheap enough to ask before every
    command (a few stats and one walk of ``refs``).
    """
    found = [Leftover(os.path.join(git_dir, name), "lock") for name in _TOP_LOCKS]
    found = [item for item in found if os.path.lexists(item.path)]
    walked = ("refs", "worktrees", os.path.join("objects", "info"))
    for root in (os.path.join(git_dir, folder) for folder in walked):
        for folder, _, files in os.walk(root):
            found += [
                Leftover(os.path.join(folder, name), "lock")
                for name in files
                if name.endswith(".lock")
            ]
    attributes = os.path.join(git_dir, "info", "attributes")
    if _contains(attributes, ATTRIBUTES_BEGIN):
        found.append(Leftover(attributes, "attributes"))
    if os.path.exists(os.path.join(git_dir, REWRITE_MARKER)):
        found.append(Leftover(os.path.join(git_dir, REWRITE_MARKER), "rebase"))
    ours = os.path.join(git_dir, "lfsrepo")
    found += [
        Leftover(os.path.join(ours, name), "worktree")
        for name in _listdir(ours)
        if name.startswith("rebase-")
    ]
    temp = os.path.join(git_dir, "lfs", "tmp")
    # A partial copy of the clean filter holds space (a checkpoint's worth) until git-lfs's own
    # hourly clean-up. git-lfs leaves empty files there in normal use: those are not evidence.
    # An upload journal of an older agent is not garbage either: it resumes.
    found += [
        Leftover(os.path.join(temp, name), "temp")
        for name in _listdir(temp)
        if not name.startswith("lfsrepo-multipart-") and _size(os.path.join(temp, name))
    ]
    packs = os.path.join(git_dir, "objects", "pack")
    found += [
        Leftover(os.path.join(packs, name), "temp")
        for name in _listdir(packs)
        if name.startswith(("tmp_pack_", "tmp_idx_"))
    ]
    objects = os.path.join(git_dir, "objects")  # core.fsyncMethod=batch writes objects here first
    found += [
        Leftover(os.path.join(objects, name), "tempdir")
        for name in _listdir(objects)
        if name.startswith("tmp_objdir-")
    ]
    return found


def repair(git: GitRunner, git_dir: str) -> list[Leftover]:
    """Remove what killed processes left in the clone, if nothing live may still use it.

    Call with lfsrepo's lock on the clone held. Returns what was repaired.
    """
    found = leftovers(git_dir)
    if not found:
        return []
    busy = _live_user(git.workdir, git_dir, [item.path for item in found])
    if busy is not None:
        logger.debug("Not repairing %s: %s", git.workdir, busy)
        return []
    if not _proc_available():
        cutoff = time.time() - STALE_WITHOUT_PROC_S
        found = [item for item in found if _mtime(item.path) < cutoff]
    repaired: list[Leftover] = []
    for item in found:
        if item.kind == "rebase":
            _abort_rebase(git, git_dir)
        elif item.kind == "attributes":
            remove_attributes(git_dir)
        elif item.kind in ("worktree", "tempdir"):
            shutil.rmtree(item.path, ignore_errors=True)
        elif item.kind == "lock" or item.kind == "temp":
            with contextlib.suppress(FileNotFoundError):
                os.remove(item.path)
        repaired.append(item)
        logger.warning(
            "Removed %s, left by a %s that was killed (no live process uses %s)",
            os.path.relpath(item.path, git.workdir),
            _WHAT_LEFT_IT[item.kind],
            git.workdir,
        )
    if any(item.kind == "worktree" for item in repaired):
        git.run(["worktree", "prune"], check=False)
    return repaired


_WHAT_LEFT_IT = {
    "attributes": "fast staging of lfsrepo's",
    "lock": "git command",
    "rebase": "rebase or pull of lfsrepo's",
    "worktree": "rebase of a push of lfsrepo's",
    "temp": "git or git-lfs command",
    "tempdir": "git command",
}


def remove_partial_lfs_files(git_dir: str) -> list[str]:
    """Remove git-lfs's partial files: temporary copies of the clean filter and downloads cut
    short (resumable, but they hold space a full disk needs back). Call with lfsrepo's lock held
    and no git running in the clone. Returns what it removed.
    """
    removed = []
    for folder in (os.path.join(git_dir, "lfs", "tmp"), os.path.join(git_dir, "lfs", "incomplete")):
        for name in _listdir(folder):
            if name.startswith("lfsrepo-multipart-"):
                continue  # an upload journal of an older agent: tiny, and it resumes
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
    return removed


def repair_index(git: GitRunner, git_dir: str) -> bool:
    """Rebuild an index that is not whole (a power loss or a full disk cut its write short) from
    HEAD; the working tree keeps every file, so the next ``git add`` stages them again. Returns
    whether it was rebuilt.
    """
    index = os.path.join(git_dir, "index")
    if not os.path.exists(index) or _index_is_whole(index):
        return False
    os.replace(index, index + ".damaged")
    has_head = git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok
    git.run(["read-tree", "HEAD"] if has_head else ["read-tree", "--empty"])
    logger.warning(
        "The index of %s was damaged (a write cut short); rebuilt it from HEAD and "
        "kept the damaged one as .git/index.damaged. Changes staged before stay in the "
        "working tree and are staged again by the next add.",
        git.workdir,
    )
    return True


@contextlib.contextmanager
def rewriting_history(git_dir: str) -> Iterator[None]:
    """Mark a rebase or pull of lfsrepo's while it runs: if the process is killed, the next
    :func:`repair` aborts what it left half done (and only rebases marked so, never the user's).
    """
    marker = os.path.join(git_dir, REWRITE_MARKER)
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w"):
        pass
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(marker)


def _abort_rebase(git: GitRunner, git_dir: str) -> None:
    state = next(
        (
            os.path.join(git_dir, name)
            for name in ("rebase-merge", "rebase-apply")
            if os.path.isdir(os.path.join(git_dir, name))
        ),
        None,
    )
    if state is not None:
        onto, orig = _read(os.path.join(state, "onto")), _read(os.path.join(state, "orig-head"))
        began = _mtime_ns(os.path.join(state, "onto"))  # written when the rebase began
        git.run(["rebase", "--abort"], check=False)  # also puts an autostash back
        if onto and orig and began:
            _remove_checkout_leftovers(git, orig, onto, began)
    elif os.path.exists(os.path.join(git_dir, "MERGE_HEAD")):
        git.run(["merge", "--abort"], check=False)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(git_dir, REWRITE_MARKER))


def _remove_checkout_leftovers(git: GitRunner, orig: str, onto: str, began_ns: int) -> None:
    """Remove the files a rebase killed while checking out ``onto`` had written (whole or cut
    short): paths ``onto`` adds or changes against ``orig``, untracked after the abort, and
    written since the rebase began. Their content is in ``onto``; left alone, they block every
    later checkout of it ("untracked working tree files would be overwritten")."""
    changed = split_nul(git.run(["diff", "--name-only", "-z", orig, onto], check=False).stdout)
    if not changed:
        return
    untracked = list_for_paths(git, ["ls-files", "-z", "-o", "--exclude-standard"], changed)
    for path in untracked:
        full = os.path.join(git.workdir, path)
        if _mtime_ns(full) >= began_ns:
            os.remove(full)
            logger.warning(
                "Removed %s, written by a rebase of lfsrepo's that was killed while checking "
                "it out (its content is in commit %s)",
                path,
                onto[:12],
            )


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _index_is_whole(path: str) -> bool:
    """Whether the index ends with the SHA-1 of everything before it, as git writes it."""
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 32 or data[:4] != b"DIRC":
        return False
    trailer = data[-20:]
    return trailer == bytes(20) or hashlib.sha1(data[:-20]).digest() == trailer


def _proc_available() -> bool:
    return os.path.isdir("/proc/self/fd")


def _live_user(workdir: str, git_dir: str, paths: list[str]) -> str | None:
    """A description of a live process that may be using the clone, or None.

    Linux: a git program whose working directory is inside the clone, or any process with one of
    ``paths`` open. Elsewhere: None (the caller falls back on age).
    """
    if not _proc_available():
        return None
    roots = {os.path.realpath(workdir), os.path.realpath(git_dir)}
    wanted = {os.path.realpath(path) for path in paths}
    # Other users' processes cannot be inspected; they can only write a clone shared with them.
    shared = bool(os.stat(git_dir).st_mode & 0o022)
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
            if name.startswith("git"):
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if any(cwd == root or cwd.startswith(root + os.sep) for root in roots):
                    return f"{name} (pid {pid}) runs in it"
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        return f"{name} (pid {pid}) has a file of it open"
        except PermissionError:
            if shared and name.startswith("git"):
                return f"{name} (pid {pid}) of another user may run in it"
        except OSError:
            continue  # the process is gone
    return None


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _contains(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return text in handle.read()
    except OSError:
        return False


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _mtime_ns(path: str) -> int:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return 0


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return float("inf")
