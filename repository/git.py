"""The one place that runs git and git-lfs.

Commands are argument lists (never split strings), each gets its own environment (the process-wide
``os.environ`` is never changed), credentials travel only in that environment, nothing can prompt,
and every byte of output that reaches a message is redacted first.

Example:
    >>> runner = GitRunner(".")
    >>> runner.run(["--version"]).stdout.startswith("git version")
    True
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .auth import CREDENTIAL_VARIABLES, Token, credential_environment, split_credentials
from .errors import (
    AuthenticationError,
    FolderNotFoundError,
    GitCommandError,
    GitNotFoundError,
    PushRejectedError,
    RepositoryError,
)

REDACTED = "<redacted>"

# Config every command gets: stable, unquoted output, no interactive helpers, durable writes.
_BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.quotePath", "false"),
    ("core.askPass", ""),
    ("advice.detachedHead", "false"),
    # Objects, refs and the index on disk before a command returns: a commit that commit()
    # reported survives a power loss. "batch" flushes many loose objects with one fsync.
    ("core.fsync", "added"),
    ("core.fsyncMethod", "batch"),
    # A commit of thousands of loose objects starts git's automatic gc; detached, it repacked
    # while git-lfs's pre-push hook read those objects ("missing object", 1 push in 3 or 4 with
    # 10,000 files). In the foreground it finishes before the command returns.
    ("gc.autoDetach", "false"),
)

# git's own HTTP has no timeout: a server that stops answering would block a clone, pull or push
# forever. Fail instead when nothing moves for this long (git-lfs has its own activity timeout).
# Users change it through git's variables, GIT_HTTP_LOW_SPEED_TIME / GIT_HTTP_LOW_SPEED_LIMIT.
STALLED_TRANSFER_TIMEOUT_S = 120
# A version query that takes this long means a broken installation, not a slow one.
VERSION_TIMEOUT_S = 30
# The exit status reported for a command stopped by its timeout (as timeout(1) reports it).
TIMED_OUT = 124
# Paths per git command line: far below any system's argument limit (Linux: 2 MiB in all).
ARGV_BATCH_BYTES = 100_000

_AUTH_FAILURE_MARKERS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "git credentials for",  # git-lfs: "Git credentials for <url> not found"
    "terminal prompts disabled",
    "401 unauthorized",
    "403 forbidden",
    "http 401",
    "http 403",
    "error: 401",
    "error: 403",
    "invalid credentials",
    "lfs: authorization error",
    "permission denied (publickey",
)
_REJECTION_MARKERS = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "cannot lock ref",
    "failed to update ref",
    "[remote rejected]",
)


@dataclass(frozen=True)
class GitResult:
    """The outcome of one finished command; ``stdout``/``stderr`` are redacted text."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Whether the command exited with 0."""
        return self.returncode == 0


def _decode(data: bytes) -> str:
    # surrogateescape: file names that are not UTF-8 survive a round trip through os.fsencode.
    return data.decode("utf-8", errors="surrogateescape")


def classify_failure(
    command: Sequence[str], returncode: int, stdout: str, stderr: str
) -> GitCommandError:
    """Build the most specific error for a failed command (authentication, rejected push, other).

    A 401 or 403 on an object transfer (git-lfs: ``error transferring "<oid>": ...``) is not
    about the user's credentials, which transfer URLs do not take: an expired or wrongly signed
    URL is fixed by running the push again or on the server, not with another token.

    Example:
        >>> rejected = " ! [rejected] main -> main (fetch first)"
        >>> type(classify_failure(["git", "push"], 1, "", rejected))
        <class 'repository.errors.PushRejectedError'>
        >>> expired = 'error transferring "1f2e": [403] part 3: HTTP 403: the URL expired'
        >>> type(classify_failure(["git", "push"], 1, "", expired))
        <class 'repository.errors.GitCommandError'>
    """
    text = f"{stdout}\n{stderr}".lower()
    about_credentials = "\n".join(
        line for line in text.splitlines() if "error transferring" not in line
    )
    if any(marker in about_credentials for marker in _AUTH_FAILURE_MARKERS):
        return AuthenticationError(command, returncode, stdout, stderr)
    if "push" in command and any(marker in text for marker in _REJECTION_MARKERS):
        return PushRejectedError(command, returncode, stdout, stderr)
    return GitCommandError(command, returncode, stdout, stderr)


def _config_count(value: str) -> int:
    # git refuses anything but digits too ("bogus count"); say so before any command runs.
    if not re.fullmatch(r"[0-9]*", value):
        raise RepositoryError(
            f"the environment variable GIT_CONFIG_COUNT is malformed ({value[:100]!r}): unset it, "
            "or set it to a non-negative integer (the number of GIT_CONFIG_KEY_<n> / "
            "GIT_CONFIG_VALUE_<n> pairs)"
        )
    return int(value or 0)


class GitRunner:
    """Runs git / git-lfs in one working directory with one set of credentials."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        token: Token | None = None,
        remote_url: str | None = None,
    ) -> None:
        self.workdir = os.fspath(workdir)
        self.token = token
        self.remote_url = remote_url
        self._secrets = self._secret_forms(token, remote_url)

    @staticmethod
    def _secret_forms(token: Token | None, remote_url: str | None) -> list[str]:
        forms = set(token.secret_forms(remote_url)) if token is not None else set()
        # A clone made by the legacy class keeps its token in the remote URL.
        url_secret = split_credentials(remote_url)[2] if remote_url else None
        if url_secret:
            forms.add(url_secret)
        return sorted(forms, key=len, reverse=True)

    def with_remote(self, remote_url: str | None) -> GitRunner:
        """A runner for the same folder and token that authenticates against ``remote_url``."""
        return GitRunner(self.workdir, self.token, remote_url)

    def redact(self, text: str) -> str:
        """Replace every form of the token in ``text``.

        Example:
            >>> GitRunner("/tmp", token=Token("s3cret")).redact("password=s3cret")
            'password=<redacted>'
        """
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of one command: ``os.environ`` plus config entries, the C locale,
        never prompting, never waiting forever on a stalled HTTP transfer.

        Config entries already in ``GIT_CONFIG_COUNT`` are kept; a malformed count raises a
        :class:`RepositoryError`, as git would refuse it.

        Example:
            >>> GitRunner("/tmp").environment()["GIT_TERMINAL_PROMPT"]
            '0'
        """
        env = dict(os.environ)
        for name in ("GIT_ASKPASS", "SSH_ASKPASS", "LANGUAGE"):
            env.pop(name, None)
        # git's messages decide outcomes (authentication failed, rejected, nothing to commit):
        # untranslated, whatever the user's language. Paths are bytes to git, so nothing else
        # changes (core.quotePath is off).
        env["LC_ALL"] = "C"
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GCM_INTERACTIVE"] = "never"
        env.setdefault("GIT_HTTP_LOW_SPEED_LIMIT", "1")
        env.setdefault("GIT_HTTP_LOW_SPEED_TIME", str(STALLED_TRANSFER_TIMEOUT_S))
        if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        credentials = credential_environment(self.token, self.remote_url)
        for name in CREDENTIAL_VARIABLES:  # only ever our own, for this command's remote
            env.pop(name, None)
        env.update(credentials.variables)
        entries = [*_BASE_CONFIG, *credentials.config]
        count = _config_count(env.get("GIT_CONFIG_COUNT", ""))
        for index, (key, value) in enumerate(entries, start=count):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        env["GIT_CONFIG_COUNT"] = str(count + len(entries))
        if extra:
            env.update(extra)
        return env

    def command(self, args: Sequence[str]) -> list[str]:
        """The full argv for git ``args`` (``["lfs", ...]`` runs git-lfs through git)."""
        return ["git", *args]

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ok_returncodes: Sequence[int] = (0,),
        timeout: float | None = None,
    ) -> GitResult:
        """Run ``git *args`` to completion; raise a :class:`GitCommandError` unless it succeeded.

        ``timeout`` (seconds) stops git and everything it started, and raises. None is the
        default for a reason: staging or pushing tens of GB legitimately takes long, and what can
        hang, a network transfer, already fails after ``STALLED_TRANSFER_TIMEOUT_S`` without
        progress. Quick queries that must not hold anything up pass one.
        """
        argv = self.command(args)
        folder = _existing_folder(cwd or self.workdir)
        try:
            process = subprocess.Popen(
                argv,
                cwd=folder,
                env=self.environment(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # no controlling terminal: nothing can ever prompt
            )
        except FileNotFoundError as error:
            raise GitNotFoundError(f"git is not installed or not on PATH: {error}") from None
        with process:
            try:
                stdout, stderr = process.communicate(input or b"", timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_process_group(process)
                raise GitCommandError(
                    [self.redact(a) for a in argv], TIMED_OUT, "", f"timed out after {timeout:g} s"
                ) from None
            except BaseException:  # Ctrl-C, mostly: stop git and all it started, then re-raise
                stop_process_group(process)
                raise
        result = GitResult(
            command=[self.redact(a) for a in argv],
            returncode=process.returncode,
            stdout=self.redact(_decode(stdout)),
            stderr=self.redact(_decode(stderr)),
        )
        if check and process.returncode not in ok_returncodes:
            raise classify_failure(result.command, result.returncode, result.stdout, result.stderr)
        return result

    def popen(
        self, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``git *args`` with piped, unbuffered output; the caller drains and waits."""
        folder = _existing_folder(self.workdir)
        try:
            return subprocess.Popen(
                self.command(args),
                cwd=folder,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches us, and we decide what happens to git
            )
        except FileNotFoundError as error:
            raise GitNotFoundError(f"git is not installed or not on PATH: {error}") from None


def _existing_folder(folder: str) -> str:
    """``folder``, checked: Popen would report a missing one as a missing git."""
    if not os.path.isdir(folder):
        raise FolderNotFoundError(f"{folder}: no such folder")
    return folder


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Stop a process started in its own session and every process of its group, and reap it.

    The group gets SIGTERM first, so git removes its lock files, then SIGKILL after ``grace``
    seconds at most, for whatever is left (remote helpers, git-lfs, hooks).

    Example:
        >>> process = subprocess.Popen(["sleep", "60"], start_new_session=True)
        >>> stop_process_group(process); process.returncode
        -15
    """
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    finally:
        # Still the group's id, even once git is reaped, while any member of the group lives.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def argv_batches(items: Sequence[str], max_bytes: int | None = None) -> Iterator[list[str]]:
    """``items`` in consecutive batches of at most ``max_bytes`` (default
    :data:`ARGV_BATCH_BYTES`; but at least one item each), so that any number of paths can be
    given to git on command lines the system accepts.

    Example:
        >>> list(argv_batches(["aa", "bb", "c"], 4))
        [['aa', 'bb'], ['c']]
    """
    limit = ARGV_BATCH_BYTES if max_bytes is None else max_bytes
    batch: list[str] = []
    size = 0
    for item in items:
        if batch and size + len(item) > limit:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item)
    if batch:
        yield batch


def list_for_paths(runner: GitRunner, args: Sequence[str], paths: Sequence[str]) -> list[str]:
    """The NUL-separated output of ``git *args -- <paths>``, run once per :func:`argv_batches`
    batch of ``paths`` (none at all for no paths)."""
    return [
        field
        for batch in argv_batches(paths)
        for field in split_nul(runner.run([*args, "--", *batch]).stdout)
    ]


def split_nul(text: str) -> list[str]:
    """Split NUL-separated git output into its non-empty fields.

    Example:
        >>> split_nul("a b\\0c\\nd\\0")
        ['a b', 'c\\nd']
    """
    return [field for field in text.split("\0") if field]


def require_git_and_lfs() -> dict[str, str]:
    """Return the versions of git and git-lfs, or raise :class:`GitNotFoundError`.

    Example:
        >>> sorted(require_git_and_lfs())
        ['git', 'git-lfs']
    """
    if shutil.which("git") is None:
        raise GitNotFoundError("git is not installed or not on PATH; install it")
    runner = GitRunner(tempfile.gettempdir())
    lfs = runner.run(["lfs", "version"], check=False, timeout=VERSION_TIMEOUT_S)
    if not lfs.ok:
        raise GitNotFoundError(
            "git-lfs is not installed or not on PATH; install it (https://git-lfs.com)"
        )
    git = runner.run(["--version"], timeout=VERSION_TIMEOUT_S)
    return {"git": git.stdout.strip(), "git-lfs": lfs.stdout.strip()}
