"""Run a script as a "job" and kill all of it at a chosen phase, as a preemption would.

lfsrepo starts every git command in a session of its own (``start_new_session=True`` in
``repository/git.py``), so ``os.killpg`` on the script's process group reaches only the Python
process: git, git-lfs, hooks and the transfer agent would run on as orphans. A preempted job
loses every process of its container or cgroup at once, so a job here is every process whose
environment carries :data:`MARKER` with the job's token (environments are inherited by git,
git-lfs, hooks and the agent alike). :meth:`Job.kill` freezes them all (SIGSTOP, repeated until
no new one appears), then SIGKILLs them all, so the snapshot taken at the freeze is exactly what
was running at the instant of the kill.

Example:
    >>> classify([Proc(2, 1, 2, "S", ("git", "-c", "a=b", "commit", "-m", "x"))], script_pid=1)
    'commit'
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

MARKER = "LFSREPO_KILL_LOOP_JOB"

# The phases a kill can aim at, in the order they are recognised when several overlap.
PHASES = ("clone", "lfs-upload", "push", "pull", "commit", "add")
# Top-level git commands (run by the script itself) that belong to the "add" step of commit().
_ADD_HELPERS = {"status", "ls-files", "check-attr"}


@dataclasses.dataclass(frozen=True)
class Proc:
    """One process, from /proc: ``argv`` is its command line."""

    pid: int
    ppid: int
    pgrp: int
    state: str
    argv: tuple[str, ...]

    @property
    def verb(self) -> str:
        """What the process is, git-wise: ``commit``, ``lfs pre-push``, ``hook pre-push``..."""
        return verb(self.argv)


def _read_proc(pid: str) -> tuple[Proc, bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:  # gone meanwhile, or not ours
        return None
    state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
    argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0") if part)
    return Proc(int(pid), int(ppid), int(pgrp), state, argv), environ


def processes(token: str | None = None, pgrp: int | None = None) -> list[Proc]:
    """Live (non-zombie) processes of the job ``token`` (its marker's value starts with it)
    and/or of the process group ``pgrp``."""
    wanted = f"{MARKER}={token}".encode() if token is not None else None
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        read = _read_proc(name)
        if read is None:
            continue
        proc, environ = read
        if proc.state in ("Z", "X"):
            continue
        in_job = wanted is not None and any(
            entry.startswith(wanted) for entry in environ.split(b"\0")
        )
        if in_job or (pgrp is not None and proc.pgrp == pgrp):
            found.append(proc)
    return found


def verb(argv: Sequence[str]) -> str:
    """The git command (or hook, or agent) a command line runs.

    Example:
        >>> verb(("/usr/lib/git-core/git-remote-http", "origin", "http://h/r"))
        'remote-http'
        >>> verb(("/bin/sh", ".git/hooks/pre-push", "origin"))
        'hook pre-push'
        >>> verb(("sh", "-c", "/venv/bin/python -I -m lfs_agent"))
        'lfs_agent'
    """
    if not argv:
        return "?"
    joined = " ".join(argv)
    if "lfs_agent" in joined:
        return "lfs_agent"
    name = os.path.basename(argv[0])
    if name in ("sh", "bash", "dash"):
        for arg in argv[1:]:
            if "/hooks/" in arg or arg.startswith("hooks/"):
                return "hook " + os.path.basename(arg)
        if len(argv) > 2 and argv[1] == "-c":
            return verb(tuple(argv[2].split()))
        return name
    if name.startswith("git-") and name != "git-lfs":
        return name[4:]
    if name == "git-lfs":
        return "lfs " + (argv[1] if len(argv) > 1 else "")
    if name != "git":
        return name
    args = list(argv[1:])
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-c", "-C", "--git-dir", "--work-tree", "--namespace") and args:
            args.pop(0)
    if not args:
        return "git"
    if args[0] == "lfs":
        return "lfs " + (args[1] if len(args) > 1 else "")
    return args[0]


def classify(procs: Iterable[Proc], script_pid: int) -> str:
    """The phase of the job, from what runs in it: one of :data:`PHASES`, ``git-other`` (some
    other git command) or ``python`` (no git at all: imports, writing the checkpoint...)."""
    procs = [p for p in procs if p.pid != script_pid]
    verbs = {p.verb for p in procs}
    top = {p.verb for p in procs if p.ppid == script_pid}
    if "clone" in verbs or "lfs pull" in verbs:  # Repository's clone fetches LFS with `lfs pull`
        return "clone"
    if verbs & {"hook pre-push", "lfs pre-push", "lfs_agent"}:
        return "lfs-upload"
    if verbs & {"push", "send-pack"}:
        return "push"
    if verbs & {"pull", "fetch", "rebase", "merge", "worktree", "stash"}:
        return "pull"
    if "commit" in verbs:
        return "commit"
    if "add" in verbs or top & _ADD_HELPERS:
        return "add"
    if procs:
        return "git-other"
    return "python"


def describe(procs: Iterable[Proc], script_pid: int) -> str:
    """The distinct verbs running, for a log line: ``git push > hook pre-push > lfs_agent``."""
    seen: list[str] = []
    for proc in sorted(procs, key=lambda p: p.pid):
        if proc.pid == script_pid:
            continue
        if proc.verb not in seen:
            seen.append(proc.verb)
    return ", ".join(seen) or "-"


class Job:
    """A script run as a job: its own session, a marker token in its environment, output to
    files. Use as a context manager: on exit everything of the job is killed and reaped.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        token: str,
        out: Path,
        err: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.token = token
        self.out_path, self.err_path = out, err
        self.env = {**(env if env is not None else os.environ), MARKER: token}
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def __enter__(self) -> Job:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def members(self) -> list[Proc]:
        """Every live process of the job, and of the script's process group.

        The group's id is the script's pid: once the script is reaped and its group empty, the
        kernel may hand that number to an unrelated process, which may lead a group of its own.
        A group member still alive keeps the id from reuse, and carries the marker anyway.
        """
        return processes(self.token, pgrp=self.pid)

    def _reaped(self) -> bool:
        return self.process is None or self.process.returncode is not None

    def kill(self) -> list[Proc]:
        """Freeze every process of the job, then SIGKILL them all and reap the script; return
        the frozen snapshot (what was running at the instant of the kill)."""
        if self.process is None:
            return []
        stopped: dict[int, Proc] = {}
        alive = not self._reaped()  # its pid (and group id) are still ours to signal
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGSTOP)  # the script first: it starts no new git
        for _ in range(50):
            new = [
                p
                for p in processes(self.token, pgrp=self.pid if alive else None)
                if p.pid not in stopped
            ]
            if not new:
                break
            for proc in new:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGSTOP)
                stopped[proc.pid] = proc
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        # Anything forked between two scans is caught here.
        deadline = time.monotonic() + 5
        while (left := processes(self.token)) and time.monotonic() < deadline:
            for proc in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.01)
        return list(stopped.values())

    def wait(self, timeout: float) -> int | None:
        """The script's exit status, or None if it still runs after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> tuple[str, str]:
        return (
            self.out_path.read_text(errors="replace"),
            self.err_path.read_text(errors="replace"),
        )


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# What a killed git may leave: lock files, and these in-progress states and temporary files.
_STATE_NAMES = {
    "rebase-merge",
    "rebase-apply",
    "MERGE_HEAD",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "AUTO_MERGE",
    "MERGE_AUTOSTASH",
    "worktrees",
    "shallow",
}


def leftovers(root: Path, *, skip: Sequence[str] = ("lfsrepo.lock",)) -> list[str]:
    """Lock files, in-progress operations and temporary files under ``root`` (a clone or a bare
    repository), as paths relative to it; folders end with ``/`` and are not listed inside.
    ``lfsrepo.lock`` is skipped: a flock, it stays after every run, harmlessly.

    Example:
        >>> leftovers(Path("/nonexistent"))
        []
    """
    found: list[str] = []
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in files:
            lock = name.endswith(".lock") and name not in skip
            state = name in _STATE_NAMES or name.startswith(("tmp_", "tmp-"))
            lfs_temp = rel.parts[-2:] == ("lfs", "tmp") or "incomplete" in rel.parts
            if lock or state or lfs_temp:
                found.append(str(rel / name))
        for name in list(dirs):
            if name in _STATE_NAMES or name.startswith(("incoming-", "tmp_", ".lfsrepo-")):
                found.append(f"{rel / name}/")
                dirs.remove(name)
            elif name == "objects" and rel.name == "lfs":
                dirs.remove(name)  # finished LFS objects: not leftovers
    return sorted(found)
