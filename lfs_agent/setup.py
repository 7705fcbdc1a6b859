"""``lfs-enable-largefiles``: the git config that makes git-lfs use this agent in one clone.

git-lfs starts a custom transfer agent as ``sh -c "'<path>' <args>"`` in the clone. Here ``path``
is /bin/sh and ``args`` a short script with three arguments: the interpreter, lfs_agent's
``__main__.py`` and an ``init`` answer. It runs ``<interpreter> -I <__main__.py>`` when both still
exist. When either is gone (a removed virtualenv, an uninstalled package) it answers git-lfs's
``init`` with an error that names the fix, and git-lfs shows it to the user (``error initializing
custom adapter "multipart" worker 0: [32] ...``). Of an agent that cannot start, git-lfs 3.3 says
only ``EOF``: it shows an agent's stderr under GIT_TRACE=1 alone.

``-I`` (isolated mode) keeps the clone's own files, git-lfs's working directory, and PYTHON*
variables out of the agent's imports. Isolated mode also hides the user's site-packages and
PYTHONPATH, so ``-m lfs_agent`` would fail for a ``pip install --user`` or ``--prefix`` install;
run by its path, ``__main__.py`` puts the folder that holds lfs_agent on ``sys.path`` itself.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from lfs_agent.protocol import INIT_ERROR_CODE
from repository.errors import NotAGitRepositoryError

AGENT = "multipart"
# Reading or writing a clone's local config is quick; this long means a hung file system.
GIT_TIMEOUT_S = 30
# The agent's own entry point, run by its path (see the module docstring).
AGENT_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")
# The ``args`` script: $1 the interpreter, $2 AGENT_MAIN, $3 the init answer when either is gone.
LAUNCH_SCRIPT = (
    'if [ -x "$1" ] && [ -f "$2" ]; then exec "$1" -I "$2"; fi; '
    'read -r _; printf "%s\\n" "$3"; exit 1'
)


class NotAGitCloneError(NotAGitRepositoryError):
    """The path given is not a git clone, or not even a folder."""


def agent_command(python: str | None = None) -> str:
    """The command that runs the agent, as a shell would read it (for messages).

    Example:
        >>> agent_command("/opt/my venv/bin/python")  # doctest: +ELLIPSIS
        "'/opt/my venv/bin/python' -I .../lfs_agent/__main__.py"
    """
    return f"{shlex.quote(python or _interpreter())} -I {shlex.quote(AGENT_MAIN)}"


def agent_settings(clone: str, python: str | None = None) -> dict[str, str]:
    """The ``lfs.customtransfer.multipart.*`` keys and values for ``clone``.

    ``python`` (default: this interpreter) runs the agent. ``concurrent=false``: one process, with
    parts in parallel inside it, instead of git-lfs starting eight Python processes in a row.

    Example:
        >>> settings = agent_settings("/data/clone", python="/venv/bin/python")
        >>> settings["lfs.customtransfer.multipart.path"]
        '/bin/sh'
        >>> print(settings["lfs.customtransfer.multipart.args"])  # doctest: +ELLIPSIS
        -c '...' lfs_agent /venv/bin/python .../lfs_agent/__main__.py '{"error": {"code": 32, ...}}'
    """
    python, clone = python or _interpreter(), os.path.abspath(clone)
    fix = (
        f"cannot start the lfsrepo transfer agent: {python} or {AGENT_MAIN} is gone (virtualenv "
        f"removed? lfsrepo uninstalled?). Run `lfsrepo lfs-enable-largefiles {shlex.quote(clone)}`"
        " with the Python that has lfsrepo, or create a Repository for this clone again: either "
        "writes the agent command anew"
    )
    answer = json.dumps({"error": {"code": INIT_ERROR_CODE, "message": fix}})
    prefix = f"lfs.customtransfer.{AGENT}"
    return {
        f"{prefix}.path": "/bin/sh",
        f"{prefix}.args": shlex.join(
            ["-c", LAUNCH_SCRIPT, "lfs_agent", python, AGENT_MAIN, answer]
        ),
        f"{prefix}.concurrent": "false",
        f"{prefix}.direction": "both",
    }


def enable_largefiles(path: str | os.PathLike[str]) -> None:
    """Make git-lfs move the large objects of the clone at ``path`` through the agent, in parts.

    Idempotent, and one git call when nothing changes (a Repository does this on construction).
    Raises NotAGitCloneError when ``path`` is not a clone, GitCommandError when git cannot write
    the config: RepositoryErrors (so OSErrors), like every error of a Repository.
    """
    from repository.git import GitRunner

    clone = os.path.abspath(os.fspath(path))
    if not os.path.isdir(clone):
        raise NotAGitCloneError(f"{clone}: no such directory")
    git = GitRunner(clone)
    current = git.run(
        ["config", "--local", "-z", "--get-regexp", rf"^lfs\.customtransfer\.{AGENT}\."],
        check=False,
        timeout=GIT_TIMEOUT_S,
    )
    if current.returncode not in (0, 1):  # 1: no such keys yet
        raise NotAGitCloneError(
            f"{clone}: not a git clone (git says: {current.stderr.strip() or current.stdout})"
        )
    have = [entry.partition("\n")[::2] for entry in current.stdout.split("\0") if entry]
    for key, value in agent_settings(clone).items():
        if have.count((key.lower(), value)) == 1 and sum(k == key.lower() for k, _ in have) == 1:
            continue  # already set, once
        git.run(["config", "--local", "--replace-all", key, value], timeout=GIT_TIMEOUT_S)


def _interpreter() -> str:
    # Not resolved: a virtualenv's bin/python is a symlink, and only its own path selects the venv.
    return os.path.abspath(sys.executable)
