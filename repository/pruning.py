"""LFS prune for partial clones (push-only clones), where ``git lfs prune`` cannot work.

``git lfs prune`` reads the pointer of every LFS file in the recent history to decide what to
keep; a partial clone does not have those pointers, so it gives up ("Prune sub-tasks failed"),
deletes nothing and still exits 0 (git-lfs 3.3; git-lfs issue #4335). A push-only clone downloads
no LFS object: every object in its store was made by a local ``git add``. So the rule here is
simpler and needs only objects the clone has: keep what a commit not yet on any remote-tracking
branch, or the index, still needs; delete the rest, which the server has since the push.
"""

from __future__ import annotations

import contextlib
import os
import re

from .git import GitRunner

_POINTER_MAX_BYTES = 1024  # git-lfs's own bound: larger blobs are not pointers
_POINTER_OID = re.compile(r"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)


def is_partial_clone(git: GitRunner) -> bool:
    """Whether objects are left on the server (``git clone --filter=...``)."""
    found = git.run(
        ["config", "--get-regexp", r"^(remote\..*\.promisor|extensions\.partialclone)$"],
        check=False,
    )
    values = [line.partition(" ")[2].strip().lower() for line in found.stdout.splitlines()]
    return any(value not in ("", "false", "no", "off", "0") for value in values)


def prune_unneeded(git: GitRunner, git_dir: str) -> int:
    """Delete the local LFS objects nothing unpushed needs; return how many were deleted."""
    needed = _oids_of(git, _unpushed_blobs(git) + _staged_blobs(git))
    deleted = 0
    store = os.path.join(git_dir, "lfs", "objects")
    for folder, _, names in os.walk(store):
        for name in names:
            if len(name) == 64 and name not in needed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
                    deleted += 1
    return deleted


def _unpushed_blobs(git: GitRunner) -> list[str]:
    """Every object of the local branches that no remote-tracking branch has."""
    scope = ["--branches", "--not", "--remotes"]
    listing = git.run(
        ["rev-list", "--objects", "--no-object-names", "--missing=allow-promisor", *scope]
    ).stdout
    return listing.split()


def _staged_blobs(git: GitRunner) -> list[str]:
    """The blobs of index entries that differ from HEAD (all of them before the first commit)."""
    has_head = git.run(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok
    if not has_head:
        return [line.split()[1] for line in git.run(["ls-files", "-s"]).stdout.splitlines()]
    rows = git.run(["diff-index", "--cached", "--no-renames", "HEAD"]).stdout.splitlines()
    return [row.split()[3] for row in rows if row.startswith(":")]


def _oids_of(git: GitRunner, objects: list[str]) -> set[str]:
    """The LFS oids named by the pointer blobs among ``objects``."""
    if not objects:
        return set()
    sizes = git.run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
        input="\n".join(objects).encode() + b"\n",
    ).stdout.splitlines()
    small = [
        fields[0]
        for fields in (row.split() for row in sizes)
        if len(fields) == 3 and fields[1] == "blob" and int(fields[2]) < _POINTER_MAX_BYTES
    ]
    if not small:
        return set()
    contents = git.run(["cat-file", "--batch"], input="\n".join(small).encode() + b"\n")
    return set(_POINTER_OID.findall(contents.stdout))
