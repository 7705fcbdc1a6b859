"""``lfs-enable-largefiles``: the git config that makes git-lfs use this agent in one clone.

Example:
    >>> enable_largefiles("/path/to/clone")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

AGENT = "multipart"


class NotAGitCloneError(OSError):
    """The path given is not inside a git working tree.

    Example:
        >>> isinstance(NotAGitCloneError("/tmp: not a git clone"), OSError)
        True
    """


def agent_settings(python: str | None = None) -> dict[str, str]:
    """The ``lfs.customtransfer.multipart.*`` keys and values for this interpreter.

    git-lfs quotes ``path`` itself and passes ``args`` through a shell, so ``path`` is the bare
    absolute interpreter and nothing in ``args`` needs quoting. ``-I`` keeps a clone's own files and
    PYTHON* variables out of the agent's imports. ``concurrent=false``: one process, parts in
    parallel inside it, instead of git-lfs starting eight Python processes one after another.

    Example:
        >>> agent_settings("/usr/bin/python3")["lfs.customtransfer.multipart.args"]
        '-I -m lfs_agent'
    """
    prefix = f"lfs.customtransfer.{AGENT}"
    return {
        f"{prefix}.path": python or os.path.abspath(sys.executable),
        f"{prefix}.args": "-I -m lfs_agent",
        f"{prefix}.concurrent": "false",
        f"{prefix}.direction": "both",
    }


def enable_largefiles(path: str | os.PathLike[str]) -> None:
    """Configure the clone at ``path`` to upload (and download) large LFS objects in parts.

    Idempotent: running it again leaves one copy of each key. Raises NotAGitCloneError (an
    OSError) when ``path`` is not a git clone.

    Example:
        >>> enable_largefiles("my-model-repo")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise NotAGitCloneError(f"{path}: no such directory")
    probe = subprocess.run(
        ["git", "-C", path, "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "true":
        raise NotAGitCloneError(
            f"{path}: not a git clone (git says: {probe.stderr.strip() or probe.stdout.strip()})"
        )
    current = subprocess.run(
        [
            "git",
            "-C",
            path,
            "config",
            "--local",
            "-z",
            "--get-regexp",
            rf"^lfs\.customtransfer\.{AGENT}\.",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    have = [entry.partition("\n")[::2] for entry in current.split("\0") if entry]
    for key, value in agent_settings().items():
        if have.count((key.lower(), value)) == 1 and sum(k == key.lower() for k, _ in have) == 1:
            continue  # already set, once: a Repository() per training step costs one git call
        result = subprocess.run(
            ["git", "-C", path, "config", "--local", "--replace-all", key, value],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise NotAGitCloneError(f"{path}: cannot set {key}: {result.stderr.strip()}")


def agent_command() -> str:
    """The command line git-lfs will run, as a shell would see it (for messages and docs).

    Example:
        >>> agent_command().endswith("-I -m lfs_agent")
        True
    """
    settings = agent_settings()
    return (
        f"{shlex.quote(settings[f'lfs.customtransfer.{AGENT}.path'])} "
        f"{settings[f'lfs.customtransfer.{AGENT}.args']}"
    )
