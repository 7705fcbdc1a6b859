"""Bare git repositories of the local server: names, creation (with initial files), refs.

Every git command of the server runs through :class:`ServerGit`, the project's one git runner
(``repository.git.GitRunner``) with its environment rules, pointed at the server's repositories.

Example:
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     repos = RepoStore(pathlib.Path(tmp))
    ...     _ = repos.create("ns/demo")
    ...     sha = repos.commit_files("ns/demo", {"a.bin": b"\\0"}, lambda oid, data: print(oid))
    ...     repos.list_refs("ns/demo") == {"refs/heads/main": sha}
    6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
    True
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from ..errors import RepositoryError
from ..git import GitRunner
from .errors import InvalidArgumentError, RepoExistsError, RepoNotFoundError, ServerGitError

SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
LFS_PATTERN = "*.bin"
LFS_MIN_SIZE = 1024**2

# The server's own commands work on small local repositories (a first commit of a few files, a
# ref listing): one that has not finished after a minute is stuck (a held lock, a hung
# filesystem), not slow.
GIT_TIMEOUT_S = 60

# What tells git which repository (or which part of it) to work on. The caller's values are for
# the caller's repository, never for the server's: git drops the same ones (its local_repo_env)
# when it runs a command in another repository.
_REPOSITORY_VARIABLES = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_DIR",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_NAMESPACE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_PROTOCOL",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_WORK_TREE",
)


class ServerGit(GitRunner):
    """The git runner of the server: the project's rules (C locale, no prompts, durable writes,
    no credentials), minus whatever the caller's environment says about its own repository, and
    without the machine's system-wide git config, so that the server behaves the same everywhere.

    Example:
        >>> env = ServerGit("/tmp").environment({"GIT_DIR": "/srv/r.git"})
        >>> env["GIT_DIR"], env["LC_ALL"], env["GIT_CONFIG_NOSYSTEM"]
        ('/srv/r.git', 'C', '1')
    """

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The runner's environment without the caller's repository variables, then ``extra``."""
        env = super().environment()
        for name in _REPOSITORY_VARIABLES:
            env.pop(name, None)
        env["GIT_CONFIG_NOSYSTEM"] = "1"
        env.update(extra or {})
        return env

    def output(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ok_returncodes: Sequence[int] = (0,),
    ) -> str:
        """The stripped output of ``git *args`` (run in ``cwd``, else the store's root), stopped
        after ``GIT_TIMEOUT_S``; :class:`ServerGitError` if it fails, hangs, or git is missing.

        Example:
            >>> ServerGit("/tmp").output(["rev-parse", "--is-bare-repository"])
            Traceback (most recent call last):
            ...
            repository.testing.errors.ServerGitError: `git rev-parse ...` failed (exit 128): ...
        """
        try:
            result = self.run(
                args,
                input=input,
                env=env,
                cwd=str(cwd) if cwd is not None else None,
                ok_returncodes=ok_returncodes,
                timeout=GIT_TIMEOUT_S,
            )
        except RepositoryError as error:  # failed, timed out, or no git at all
            raise ServerGitError(str(error)) from error
        return result.stdout.strip()


def normalize_name(name: str) -> str:
    """The canonical ``ns/name`` form of a repository name (no ``.git``, no slashes around it).

    A name is 1-4 segments of letters, digits, ``.``, ``_`` and ``-``, none starting with a dot
    or ending in ``.git``; anything else raises :class:`InvalidArgumentError`.

    Example:
        >>> normalize_name("/ns/model.git")
        'ns/model'
        >>> normalize_name("ns/../etc")
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: invalid repository name 'ns/../etc': ...
    """
    stripped = name.strip("/").removesuffix(".git")
    segments = stripped.split("/")
    if not 1 <= len(segments) <= 4 or not all(
        SEGMENT_RE.fullmatch(s) and not s.endswith(".git") and ".." not in s for s in segments
    ):
        raise InvalidArgumentError(
            f"invalid repository name {name[:200]!r}: use 1-4 segments of letters, digits, "
            "'.', '_', '-'"
        )
    return stripped


def lfs_pointer(data: bytes) -> tuple[str, bytes]:
    """``(oid, pointer file)`` for ``data``: what a commit holds in place of an LFS file.

    Example:
        >>> oid, pointer = lfs_pointer(b"")
        >>> print(pointer.decode(), end="")
        version https://git-lfs.github.com/spec/v1
        oid sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
        size 0
    """
    oid = hashlib.sha256(data).hexdigest()
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
    return oid, text.encode()


class RepoStore:
    """The folder of bare repositories, ``<root>/<ns>/<name>.git``; safe to use from threads.

    Names are checked by :func:`normalize_name` everywhere, so no name reaches outside ``root``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git = ServerGit(root)
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The bare repository's folder, whether it exists or not."""
        return self.root / f"{normalize_name(name)}.git"

    def exists(self, name: str) -> bool:
        """True if the repository exists."""
        return (self.path(name) / "HEAD").is_file()

    def create(self, name: str, *, exist_ok: bool = False) -> Path:
        """Create an empty bare repository that accepts pushes (default branch ``main``).

        An existing one is returned with ``exist_ok``, else it is a :class:`RepoExistsError`.
        """
        path = self.path(name)
        with self._lock:
            if (path / "HEAD").is_file():
                if exist_ok:
                    return path
                raise RepoExistsError(f"repository {normalize_name(name)} already exists")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.git.output(["init", "--quiet", "--bare", "--initial-branch=main", str(path)])
            self.git.output(["config", "http.receivepack", "true"], cwd=path)
            # Partial clones (`--filter=blob:none`), as GitHub and GitLab allow them.
            self.git.output(["config", "uploadpack.allowFilter", "true"], cwd=path)
        return path

    def commit_files(
        self,
        name: str,
        files: Mapping[str, bytes],
        store_object: Callable[[str, bytes], object],
        message: str = "Initial commit",
    ) -> str:
        """Commit ``files`` on top of ``main`` of an existing repository; return the commit's sha.

        Files matching ``*.bin`` or of 1 MiB and more go through LFS: ``store_object(oid, data)``
        stores their content, and the commit holds their pointers and a ``.gitattributes`` that
        tracks them (unless ``files`` brings its own). Paths are relative, ``/``-separated, and
        never contain ``..`` or ``.git`` (else :class:`InvalidArgumentError`). The commit is made
        without a work tree or the caller's identity: its author is "lfsrepo server".
        """
        repo = self.path(name)
        entries: dict[str, bytes] = {}
        lfs_paths: list[str] = []
        for rel, data in files.items():
            clean = clean_path(rel)
            if fnmatch.fnmatch(PurePosixPath(clean).name, LFS_PATTERN) or len(data) >= LFS_MIN_SIZE:
                oid, pointer = lfs_pointer(data)
                store_object(oid, data)
                entries[clean] = pointer
                if not fnmatch.fnmatch(PurePosixPath(clean).name, LFS_PATTERN):
                    lfs_paths.append(clean)
            else:
                entries[clean] = data
        attributes = [f"{LFS_PATTERN} filter=lfs diff=lfs merge=lfs -text"]
        attributes += [
            "/" + p.replace(" ", "[[:space:]]") + " filter=lfs diff=lfs merge=lfs -text"
            for p in lfs_paths
        ]
        entries.setdefault(".gitattributes", ("\n".join(attributes) + "\n").encode())
        git = self.git
        with tempfile.TemporaryDirectory(prefix="lfsrepo-commit-") as tmp:
            index_lines = []
            for rel, data in entries.items():
                blob = git.output(
                    ["hash-object", "-w", "--no-filters", "--stdin"], cwd=repo, input=data
                )
                index_lines.append(f"100644 {blob}\t{rel}\n")
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            git.output(
                ["update-index", "--add", "--index-info"],
                cwd=repo,
                input="".join(index_lines).encode(),
                env=index,
            )
            tree = git.output(["write-tree"], cwd=repo, env=index)
            parent = git.output(  # exit 1, no output: no commit yet
                ["rev-parse", "--verify", "--quiet", "refs/heads/main"],
                cwd=repo,
                ok_returncodes=(0, 1),
            )
            args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
            commit = git.output(args, cwd=repo, env=_IDENTITY)
            git.output(["update-ref", "refs/heads/main", commit], cwd=repo)
        return commit

    def list_refs(self, name: str) -> dict[str, str]:
        """``{refname: sha}`` of every ref; :class:`RepoNotFoundError` (a ``KeyError``) if the
        repository does not exist."""
        if not self.exists(name):
            raise RepoNotFoundError(f"no repository {normalize_name(name)}")
        out = self.git.output(
            ["for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.path(name)
        )
        return dict(line.split(" ", 1) for line in out.splitlines() if line)


# Server-made commits must not depend on the caller having a git identity.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "lfsrepo server",
    "GIT_AUTHOR_EMAIL": "server@lfsrepo.invalid",
    "GIT_COMMITTER_NAME": "lfsrepo server",
    "GIT_COMMITTER_EMAIL": "server@lfsrepo.invalid",
}


def clean_path(rel: str) -> str:
    """``rel`` as a path inside a work tree, else :class:`InvalidArgumentError`.

    Example:
        >>> clean_path("data//big.dat"), clean_path("./w.bin")
        ('data/big.dat', 'w.bin')
    """
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", ".git") for p in path.parts):
        raise InvalidArgumentError(
            f"invalid file path {rel!r}: must be relative, without '..' or '.git'"
        )
    return str(path)
