"""Which files go to Git LFS: .gitattributes, batched attribute and ignore queries, binary sniffing.

Each query asks git once for any number of files (``--stdin -z``), never once per file, and binary
detection reads a small prefix of a file, never the whole file.

Example:
    >>> is_binary_bytes(b"\\x00\\x01"), is_binary_bytes(b"hello\\n")
    (True, False)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .git import GitRunner, list_for_paths, split_nul

LARGE_FILE_BYTES = 10 * 1024 * 1024
SNIFF_BYTES = 8000  # what git itself reads to decide whether a file is binary
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"

# Bytes that occur in text: the legacy class's definition, applied to a prefix only.
_TEXT_BYTES = bytes({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})


def is_binary_bytes(data: bytes) -> bool:
    """Whether ``data`` holds a byte that text never contains.

    Example:
        >>> is_binary_bytes("héllo".encode())
        False
    """
    return bool(data.translate(None, _TEXT_BYTES))


def is_binary_file(filename: str | os.PathLike[str]) -> bool:
    """Whether a file looks binary, judging from its first 8,000 bytes."""
    with open(filename, "rb") as handle:
        return is_binary_bytes(handle.read(SNIFF_BYTES))


def nul_joined(paths: Iterable[str]) -> bytes:
    """The ``--stdin -z`` input of a batched git query: each path NUL-terminated, bytes preserved.

    Example:
        >>> nul_joined(["a b", "c"])
        b'a b\\x00c\\x00'
    """
    return "".join(f"{p}\0" for p in paths).encode("utf-8", "surrogateescape")


def lfs_filtered(runner: GitRunner, paths: Sequence[str]) -> set[str]:
    """The subset of ``paths`` (relative to the clone) whose ``filter`` attribute is ``lfs``."""
    if not paths:
        return set()
    payload = nul_joined(paths)
    fields = split_nul(runner.run(["check-attr", "-z", "--stdin", "filter"], input=payload).stdout)
    # Output is (path, attribute, value) triples.
    return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == "lfs"}


def git_ignored(runner: GitRunner, paths: Sequence[str]) -> set[str]:
    """The subset of ``paths`` that .gitignore (or info/exclude) ignores."""
    if not paths:
        return set()
    payload = nul_joined(paths)
    # Exit code 1 only means "none of them is ignored".
    result = runner.run(["check-ignore", "-z", "--stdin"], input=payload, ok_returncodes=(0, 1))
    return set(split_nul(result.stdout))


def files_to_be_staged(runner: GitRunner, pattern: str = ".") -> list[str]:
    """Modified, deleted and untracked (not ignored) files matching ``pattern``, relative to the
    clone, in git's order.
    """
    result = runner.run(["ls-files", "-z", "--exclude-standard", "-m", "-o", "-d", "--", pattern])
    return list(dict.fromkeys(split_nul(result.stdout)))  # git's order (untracked first), once each


def deleted_files(runner: GitRunner) -> list[str]:
    """Files deleted from the working tree or the index, anywhere in the clone (from stat data:
    no file is read)."""
    worktree = runner.run(["diff-files", "-z", "--name-only", "--diff-filter=D"]).stdout
    staged = runner.run(
        ["diff-index", "-z", "--cached", "--name-only", "--diff-filter=D", "HEAD"], check=False
    )  # no HEAD yet: nothing committed, nothing deleted from it
    return list(dict.fromkeys(split_nul(worktree) + split_nul(staged.stdout)))


@dataclass(frozen=True)
class Changes:
    """What ``git add`` of a pattern would pick up, found from stat data alone: no file is read,
    so a large LFS file is not run through the clean filter just to learn that it changed."""

    modified: list[str]  # tracked, stat data differs from the index's (content may be the same)
    untracked: list[str]  # not ignored
    deleted: list[str]  # anywhere in the clone, from the working tree or the index


def changes(runner: GitRunner, pattern: str = ".") -> Changes:
    """The :class:`Changes` under ``pattern`` (deletions: in the whole clone)."""
    modified = runner.run(["diff-files", "-z", "--name-only", "--diff-filter=MT", "--", pattern])
    untracked = runner.run(["ls-files", "-z", "-o", "--exclude-standard", "--", pattern])
    return Changes(
        modified=split_nul(modified.stdout),
        untracked=split_nul(untracked.stdout),
        deleted=deleted_files(runner),
    )


def really_modified(runner: GitRunner, paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` whose content differs from the index (git reads them: keep it to
    files that are not LFS-filtered)."""
    return set(list_for_paths(runner, ["ls-files", "-z", "-m"], paths))


def escape_pattern(path: str) -> str:
    """A .gitattributes pattern that matches exactly one path from the repository root.

    Example:
        >>> escape_pattern("dir/my model [v2].bin")
        '/dir/my[[:space:]]model[[:space:]]\\\\[v2\\\\].bin'
    """
    escaped = []
    for char in path:
        if char in '\\*?[]!#"':
            escaped.append("\\" + char)
        elif char in " \t":
            escaped.append("[[:space:]]")
        else:
            escaped.append(char)
    return "/" + "".join(escaped)


def add_lfs_lines(gitattributes: str, paths: Iterable[str]) -> list[str]:
    """Append one exact-path LFS line per path to ``gitattributes``; return the paths it added.

    Paths with a newline cannot be expressed in .gitattributes and are skipped.

    Example:
        >>> import tempfile, os; f = os.path.join(tempfile.mkdtemp(), ".gitattributes")
        >>> add_lfs_lines(f, ["a b.bin"]); open(f).read()
        ['a b.bin']
        '/a[[:space:]]b.bin filter=lfs diff=lfs merge=lfs -text\\n'
    """
    wanted = [p for p in paths if "\n" not in p and "\r" not in p]
    if not wanted:
        return []
    existing = ""
    if os.path.exists(gitattributes):
        with open(gitattributes, encoding="utf-8", errors="surrogateescape") as handle:
            existing = handle.read()
    lines = "".join(f"{escape_pattern(p)} {LFS_ATTRIBUTES}\n" for p in wanted)
    with open(gitattributes, "a", encoding="utf-8", errors="surrogateescape") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.write(lines)
    return wanted


def remove_lfs_lines(gitattributes: str, paths: Iterable[str]) -> list[str]:
    """Remove the exact-path lines of ``paths`` (as written by :func:`add_lfs_lines` or by
    ``git lfs track --filename``); return the paths whose line was removed.

    Example:
        >>> import tempfile, os; f = os.path.join(tempfile.mkdtemp(), ".gitattributes")
        >>> _ = add_lfs_lines(f, ["x.bin"]); remove_lfs_lines(f, ["x.bin"]), open(f).read()
        (['x.bin'], '')
    """
    if not os.path.exists(gitattributes):
        return []
    patterns = {}
    for path in paths:
        patterns[escape_pattern(path)] = path
        patterns[escape_pattern(path)[1:]] = path
    with open(gitattributes, encoding="utf-8", errors="surrogateescape") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept, removed = [], []
    for line in lines:
        # git separates fields with ASCII blanks only; str.split() would also split on U+00A0.
        fields = re.split(r"[ \t]+", line.strip(" \t\r\n"))
        if fields and fields[0] in patterns and "filter=lfs" in fields[1:]:
            removed.append(patterns[fields[0]])
        else:
            kept.append(line)
    if removed:
        with open(gitattributes, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.writelines(kept)
    return removed
