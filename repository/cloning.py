"""Cloning that a kill at any instant leaves either finished or plainly unfinished, never half.

git clone runs into a staging folder inside ``local_dir``; once it has succeeded, a marker goes
into its ``.git``, its entries move up into ``local_dir`` (``.git`` last, so ``local_dir`` is a
clone only once every file is in place), and the staging folder goes. LFS content is fetched
after that, and the marker removed. A later run finds what a kill left and goes on from there:
a staging folder without the marker is a clone that never finished (removed, and cloned again);
with the marker, the moves are finished; a clone whose marker is still there fetches its LFS
content again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from collections.abc import Mapping

from .auth import without_credentials
from .git import GitRunner

logger = logging.getLogger(__name__)

STAGING = ".lfsrepo-clone"
_UNFINISHED = os.path.join("lfsrepo", "clone-unfinished")


# What a push-only clone checks out: the files that say how paths are stored and where LFS
# objects go. Everything else stays on the server until someone writes to it.
PUSH_ONLY_CHECKOUT = (".gitattributes", "/.lfsconfig")
_NO_FILTER_SUPPORT = "filtering not recognized by server"


def clone(
    runner: GitRunner, url: str, local_dir: str, env: Mapping[str, str], push_only: bool = False
) -> None:
    """Clone ``url`` into the empty folder ``local_dir`` (LFS content not fetched yet: see
    :func:`lfs_content_pending`).

    ``push_only``: a partial clone (no file content from the server, ``--filter=blob:none``)
    whose working tree holds only the ``.gitattributes`` files and ``.lfsconfig`` (sparse
    checkout); git fetches the content of any other file the first time it is needed. A server
    that does not allow filters sends everything, as for a normal clone (with a warning).
    """
    staging = os.path.join(local_dir, STAGING)
    try:
        if push_only:
            _clone_push_only(runner, url, staging, local_dir, env)
        else:
            runner.run(["clone", "--", url, staging], cwd=local_dir, env=env)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # local_dir is as empty as before
        raise
    marker = os.path.join(staging, ".git", _UNFINISHED)
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w"):
        pass
    _move_into_place(local_dir)


def _clone_push_only(
    runner: GitRunner, url: str, staging: str, local_dir: str, env: Mapping[str, str]
) -> None:
    cloned = runner.run(
        ["clone", "--filter=blob:none", "--no-checkout", "--", url, staging], cwd=local_dir, env=env
    )
    if _NO_FILTER_SUPPORT in cloned.stderr:
        logger.warning(
            "%s does not allow partial clones: the push-only clone downloaded the whole history "
            "(but no LFS content)",
            without_credentials(url),
        )
    in_clone = functools.partial(runner.run, cwd=staging, env=env)
    # Later checkouts and pulls leave LFS content on the server too.
    in_clone(["lfs", "install", "--local", "--skip-smudge"])
    in_clone(["sparse-checkout", "set", "--no-cone", *PUSH_ONLY_CHECKOUT])
    if in_clone(["rev-parse", "-q", "--verify", "HEAD"], check=False).ok:
        in_clone(["read-tree", "-mu", "HEAD"])  # the index whole, the working tree sparse


def resume(local_dir: str) -> None:
    """Finish or undo what a killed :func:`clone` left in ``local_dir``; nothing if it left
    nothing. Afterwards ``local_dir`` is a clone, or as empty as before the clone began."""
    staging = os.path.join(local_dir, STAGING)
    if not os.path.isdir(staging):
        return
    if os.path.exists(os.path.join(staging, ".git", _UNFINISHED)):
        logger.warning(
            "Finishing a clone into %s that was killed while moving into place", local_dir
        )
        _move_into_place(local_dir)
    elif os.path.exists(os.path.join(local_dir, ".git")):
        shutil.rmtree(staging)  # emptied already: killed just before removing it
    else:
        logger.warning(
            "Removing a clone into %s that was killed before it finished; cloning again", local_dir
        )
        shutil.rmtree(staging)


def lfs_content_pending(git_dir: str) -> bool:
    """Whether the clone's LFS content has not been fetched since it was cloned."""
    return os.path.exists(os.path.join(git_dir, _UNFINISHED))


def lfs_content_fetched(git_dir: str) -> None:
    """Record that the clone is complete, LFS content included."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(git_dir, _UNFINISHED))


def _move_into_place(local_dir: str) -> None:
    staging = os.path.join(local_dir, STAGING)
    for name in os.listdir(staging):
        if name != ".git":
            os.rename(os.path.join(staging, name), os.path.join(local_dir, name))
    os.rename(os.path.join(staging, ".git"), os.path.join(local_dir, ".git"))
    os.rmdir(staging)
