"""Repository limits, checked before anything is staged: a file over the hard size limit is
refused, files, folders and a repository past what the Hub recommends are warned about.

The defaults are the Hugging Face Hub's, in decimal units as the Hub counts them
(``huggingface_hub`` measures its 20 GB / 50 GB limits in units of 10**9 bytes): 50 GB hard per
file, 20 GB recommended per file, 10,000 entries per folder, 100,000 files per repository.
Environment variables override them (``LFSREPO_MAX_FILE_SIZE`` ...), ``Repository(limits=...)``
overrides both. Docs: docs/limits.md.

Each check costs O(files being added): sizes come from one ``lstat`` per staged file, the
repository's file count from the index's 12-byte header, a folder's entries from one
``git ls-tree`` of the folders that gain entries (their direct children in HEAD only), and only
when the repository has enough files to crowd a folder. Counts are
lower bounds (see :func:`check_staging`), so a warning is never given for a repository that is
within the limits.

Example:
    >>> describe_size(51 * 1000**3)
    '51.0 GB (51,000,000,000 bytes)'
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat
import struct
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import LimitExceededError, RepositoryError
from .git import GitRunner, argv_batches, split_nul
from .lfs import Changes

logger = logging.getLogger(__name__)

GB = 1000**3
OFF = "off"  # the value of an environment variable that switches its check off
# Each limit: its environment variable, and what it counts.
VARIABLES = {
    "max_file_size": ("LFSREPO_MAX_FILE_SIZE", "bytes"),
    "recommended_file_size": ("LFSREPO_RECOMMENDED_FILE_SIZE", "bytes"),
    "max_folder_entries": ("LFSREPO_MAX_FOLDER_ENTRIES", "entries"),
    "max_repo_files": ("LFSREPO_MAX_REPO_FILES", "files"),
}
_SHOWN = 5  # examples named in a message
_INDEX_HEADER = struct.Struct(">4sII")  # "DIRC", version, number of entries (gitformat-index)
# Frames a warning should not point at: ours, and contextlib's, which runs commit()'s code after
# the user's block.
_INTERNAL = (os.path.dirname(os.path.abspath(__file__)) + os.sep, contextlib.__file__)


class LimitWarning(UserWarning):
    """Something staged is past a recommended limit (file size, folder entries, repository
    files); it is staged anyway. Filter it, or make it an error, with :mod:`warnings`."""


@dataclass(frozen=True)
class RepositoryLimits:
    """What staging refuses or warns about; ``None`` switches a check off.

    ``max_file_size`` (bytes): a larger file is refused with
    :class:`~repository.errors.LimitExceededError`. ``recommended_file_size`` (bytes),
    ``max_folder_entries`` (files and folders directly in one folder), ``max_repo_files``: more
    gets a :class:`LimitWarning`. A value equal to its limit is within it.

    Example:
        >>> limits = RepositoryLimits.from_environment({"LFSREPO_MAX_FOLDER_ENTRIES": "off"})
        >>> limits.max_file_size, limits.max_folder_entries
        (50000000000, None)
    """

    max_file_size: int | None = 50 * GB
    recommended_file_size: int | None = 20 * GB
    max_folder_entries: int | None = 10_000
    max_repo_files: int | None = 100_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(
                    f"RepositoryLimits.{field.name} must be a whole number >= 0 or None (no "
                    f"limit), not {value!r}"
                )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RepositoryLimits:
        """The defaults, each replaced by its environment variable when set (a whole number, or
        ``off``); a malformed value raises :class:`~repository.errors.RepositoryError` naming it.

        Example:
            >>> RepositoryLimits.from_environment({"LFSREPO_MAX_FILE_SIZE": "5 GB"})
            Traceback (most recent call last):
            ...
            repository.errors.RepositoryError: the environment variable LFSREPO_MAX_FILE_SIZE is ...
        """
        environ = os.environ if environ is None else environ
        values: dict[str, int | None] = {}
        for name, (variable, unit) in VARIABLES.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if text.lower() == OFF:
                values[name] = None
            elif text.isascii() and text.isdigit():
                values[name] = int(text)
            else:
                raise RepositoryError(
                    f"the environment variable {variable} is {text[:100]!r}: set it to a whole "
                    f"number of {unit} ({getattr(cls, name)} by default), or to {OFF!r} to "
                    "switch the check off, or unset it"
                )
        return cls(**values)


def check_staging(limits: RepositoryLimits, git: GitRunner, git_dir: str, changes: Changes) -> None:
    """Refuse the files of ``changes`` that ``git add`` would stage and that are over
    ``limits.max_file_size`` (:class:`~repository.errors.LimitExceededError`, nothing else done),
    then warn once for each recommended limit the add goes past.

    Counts are lower bounds, so a warning is never false: deletions are subtracted even where the
    add does not stage them, additions staged by an earlier add but not committed are not counted
    in folders (they come from HEAD), and a split or sparse index holds fewer entries than the
    repository has files.
    """
    deleted = set(changes.deleted)
    staged = [path for path in changes.untracked + changes.modified if path not in deleted]
    sizes = _sizes(git.workdir, staged)
    if limits.max_file_size is not None:
        refuse_oversized(sizes, limits.max_file_size)
    if limits.recommended_file_size is not None:
        _warn_large(sizes, limits.recommended_file_size)
    new = [path.rstrip("/") for path in changes.untracked]  # an embedded clone is listed "sub/"
    if not new:
        return  # nothing added: no folder or repository grows
    indexed = index_entries(git_dir)
    if indexed is None:
        logger.debug("the index header of %s is not one git writes: files not counted", git_dir)
    if limits.max_folder_entries is not None:
        # Each entry a folder has in HEAD holds a file of the index or one deleted from it.
        most = None if indexed is None else indexed + len(deleted)
        _warn_crowded_folders(git, new, deleted, limits.max_folder_entries, most)
    if limits.max_repo_files is not None and indexed is not None:
        _warn_repository_files(indexed, new, deleted, limits.max_repo_files)


def describe_size(count: int) -> str:
    """``count`` bytes in decimal units, as the Hub states its limits, and exactly.

    Example:
        >>> describe_size(1024), describe_size(999)
        ('1.0 kB (1,024 bytes)', '999 bytes')
    """
    exact = f"{count:,} byte{'' if count == 1 else 's'}"
    unit = next(
        (u for u, s in (("TB", 4), ("GB", 3), ("MB", 2), ("kB", 1)) if count >= 1000**s), ""
    )
    if not unit:
        return exact
    scale = 1000 ** ("kMGT".index(unit[0]) + 1)
    return f"{count / scale:.1f} {unit} ({exact})"


def index_entries(git_dir: str) -> int | None:
    """The number of entries the index's header states (0 without an index), or None when the
    header is not one git writes.

    Example:
        >>> index_entries("/nonexistent/.git")
        0
    """
    try:
        with open(os.path.join(git_dir, "index"), "rb") as handle:
            header = handle.read(_INDEX_HEADER.size)
    except FileNotFoundError:
        return 0
    if len(header) < _INDEX_HEADER.size:
        return None
    signature, version, entries = _INDEX_HEADER.unpack(header)
    return entries if signature == b"DIRC" and version in (2, 3, 4) else None


def _sizes(workdir: str, paths: Iterable[str]) -> dict[str, int]:
    """The size of each regular file among ``paths`` (a symbolic link is staged as its target's
    name, a folder as a submodule: neither has a size that counts)."""
    sizes = {}
    for path in paths:
        try:
            status = os.lstat(os.path.join(workdir, path))
        except OSError:
            continue  # gone since git listed it: git add will say so
        if stat.S_ISREG(status.st_mode):
            sizes[path] = status.st_size
    return sizes


def refuse_oversized(sizes: Mapping[str, int], limit: int) -> None:
    """Raise :class:`LimitExceededError` naming every file of ``sizes`` over ``limit`` bytes."""
    over = {path: size for path, size in sizes.items() if size > limit}
    if not over:
        return
    what = _over(
        {path: _short_size(size) for path, size in over.items()},
        f"{describe_size(limit)} per file",
        single=f"is {describe_size(max(over.values()))}, over the limit of",
        many="files are over the limit of",
    )
    raise LimitExceededError(
        f"cannot stage: {what}. Nothing was staged. Split such a file into smaller ones (the "
        f"Hub recommends 20 GB or less), or, if your server accepts larger files, raise the limit "
        f"with {VARIABLES['max_file_size'][0]} or Repository(limits=RepositoryLimits(...)).",
        over,
        limit,
    )


def _warn_large(sizes: Mapping[str, int], limit: int) -> None:
    over = {path: _short_size(size) for path, size in sizes.items() if size > limit}
    if over:
        largest = max(size for size in sizes.values() if size > limit)
        what = _over(
            over,
            f"{describe_size(limit)} per file",
            single=f"is {describe_size(largest)}, over the recommended",
            many="files are over the recommended",
        )
        _warn(f"{what}. Staged anyway; smaller files (shards) upload and download more reliably.")


def _warn_crowded_folders(
    git: GitRunner, new: Sequence[str], deleted: set[str], limit: int, most: int | None
) -> None:
    """``most``: how many entries a folder can have in HEAD at most, if known; when no folder can
    then go past ``limit``, none is listed."""
    added: defaultdict[str, set[str]] = defaultdict(set)  # folder -> names the add brings
    for path in new:
        parts = path.split("/")
        for depth in range(len(parts)):
            added["/".join(parts[:depth])].add(parts[depth])
    if most is not None and most + max(map(len, added.values())) <= limit:
        return
    removed: defaultdict[str, set[str]] = defaultdict(set)
    for path in deleted:
        folder, _, name = path.rpartition("/")
        removed[folder].add(name)
    existing: dict[str, set[str]] = {}
    # The folders the new files are in; a folder HEAD does not have is new in its parent too.
    pending = {path.rpartition("/")[0] for path in new}
    while pending:
        existing.update(_children_in_head(git, pending))
        pending = {
            folder.rpartition("/")[0] for folder in pending if folder and not existing[folder]
        } - existing.keys()
    crowded = {}
    for folder in sorted(existing):
        names = existing[folder]
        entries = len((names - removed[folder]) | added[folder])
        if added[folder] - names and entries > limit:
            crowded[f"{folder}/" if folder else "the top folder"] = f"at least {entries:,}"
    if crowded:
        what = _over(
            crowded,
            f"{limit:,} entries per folder (files and folders directly in it)",
            single=f"will hold {next(iter(crowded.values()))} entries, over the recommended",
            many="folders will hold more than the recommended",
        )
        _warn(f"{what}. Staged anyway; spread the files over subfolders (000/ to 999/, say).")


def _children_in_head(git: GitRunner, folders: Iterable[str]) -> dict[str, set[str]]:
    """The names directly in each of ``folders`` in HEAD (none for a folder HEAD does not have,
    or without a HEAD), from ``git ls-tree``, which reads those folders' trees only: one command
    unless the folders' names are too many for one command line."""
    children: dict[str, set[str]] = {folder: set() for folder in folders}
    pathspecs = sorted(f"{folder}/" if folder else "." for folder in children)
    for batch in argv_batches(pathspecs):
        command = ["--literal-pathspecs", "ls-tree", "--full-tree", "--name-only", "-z", "HEAD"]
        listing = git.run([*command, "--", *batch], check=False)
        if not listing.ok:  # no commit yet: every entry is new
            logger.debug("no entries counted from HEAD: %s", listing.stderr.strip())
            return children
        for path in split_nul(listing.stdout):
            # A listed folder that is also wanted is shown by its contents, not by its name.
            parts = path.split("/")
            for depth in range(len(parts)):
                folder = "/".join(parts[:depth])
                if folder in children:
                    children[folder].add(parts[depth])
    return children


def _warn_repository_files(indexed: int, new: Sequence[str], deleted: set[str], limit: int) -> None:
    files = max(indexed - len(deleted), 0) + len(new)
    if files > limit:
        _warn(
            f"the repository will hold at least {files:,} files ({len(new):,} added), over the "
            f"recommended {limit:,}. Staged anyway; merge small files into fewer, larger ones "
            "(JSON Lines, Parquet or WebDataset shards, say)."
        )


def _over(found: Mapping[str, str], limit: str, *, single: str, many: str) -> str:
    """``<name> <single> <limit>`` for one name, else ``<count> <many> <limit>: <name> (<what>),
    ...``, a few names shown.

    Example:
        >>> _over({"a": "1 kB", "b": "2 kB"}, "1 byte", single="is over", many="files are over")
        '2 files are over 1 byte: a (1 kB), b (2 kB)'
    """
    if len(found) == 1:
        return f"{next(iter(found))} {single} {limit}"
    shown = ", ".join(f"{name} ({what})" for name, what in list(found.items())[:_SHOWN])
    return f"{len(found)} {many} {limit}: {shown}" + (", ..." if len(found) > _SHOWN else "")


def _short_size(count: int) -> str:
    return describe_size(count).partition(" (")[0]


def _warn(message: str) -> None:
    warnings.warn(message, LimitWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning issued by this module's caller at the first frame
    outside this package, the user's line."""
    level, frame = 2, sys._getframe(2)  # the frame that called warnings.warn is level 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        level, frame = level + 1, frame.f_back
    return level
