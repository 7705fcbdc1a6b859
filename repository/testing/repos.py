"""Bare git repositories of the local server: names, creation (with initial files), refs.

Example:
    >>> import tempfile, pathlib
    >>> repos = RepoStore(pathlib.Path(tempfile.mkdtemp()))
    >>> repos.create("ns/demo").name
    'demo.git'
    >>> repos.list_refs("ns/demo")
    {}
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
LFS_PATTERN = "*.bin"
LFS_MIN_SIZE = 1024**2


class InvalidRepoName(ValueError):
    """A repository name that is not 1-4 safe path segments (``ns/name``).

    Example:
        >>> isinstance(InvalidRepoName("x"), ValueError)
        True
    """


def normalize_name(name: str) -> str:
    """Return the canonical ``ns/name`` form (no ``.git``), or raise :class:`InvalidRepoName`.

    Example:
        >>> normalize_name("/ns/model.git")
        'ns/model'
    """
    stripped = name.strip("/")
    stripped = stripped.removesuffix(".git")
    segments = stripped.split("/")
    if not 1 <= len(segments) <= 4 or not all(
        SEGMENT_RE.fullmatch(s) and not s.endswith(".git") and ".." not in s for s in segments
    ):
        raise InvalidRepoName(
            f"invalid repository name {name[:200]!r}: use 1-4 segments of letters, digits, '.', '_', '-'"
        )
    return stripped


def git_env() -> dict[str, str]:
    """The environment for server-side git commands: the caller's, minus repository overrides.

    Example:
        >>> "GIT_DIR" in git_env()
        False
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


def lfs_pointer(data: bytes) -> tuple[str, bytes]:
    """``(oid, pointer file text)`` for ``data``.

    Example:
        >>> lfs_pointer(b"")[1].splitlines()[-1]
        b'size 0'
    """
    oid = hashlib.sha256(data).hexdigest()
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
    return oid, text.encode()


class RepoStore:
    """The directory of bare repositories, ``<root>/<ns>/<name>.git``.

    Example:
        >>> import tempfile, pathlib
        >>> RepoStore(pathlib.Path(tempfile.mkdtemp())).exists("ns/none")
        False
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The bare repository's directory (whether it exists or not).

        Example:
            >>> import tempfile, pathlib
            >>> RepoStore(pathlib.Path("/srv")).path("a/b.git")
            PosixPath('/srv/a/b.git')
        """
        return self.root / f"{normalize_name(name)}.git"

    def exists(self, name: str) -> bool:
        """True if the repository exists.

        Example:
            >>> import tempfile, pathlib
            >>> RepoStore(pathlib.Path(tempfile.mkdtemp())).exists("a/b")
            False
        """
        return (self.path(name) / "HEAD").is_file()

    def create(self, name: str, *, exist_ok: bool = False) -> Path:
        """Create an empty bare repository (default branch ``main``).

        Example:
            >>> import tempfile, pathlib
            >>> RepoStore(pathlib.Path(tempfile.mkdtemp())).create("a/b").is_dir()
            True
        """
        path = self.path(name)
        with self._lock:
            if (path / "HEAD").is_file():
                if exist_ok:
                    return path
                raise FileExistsError(f"repository {normalize_name(name)} already exists")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
            self._git("config", "http.receivepack", "true", cwd=path)
        return path

    def commit_files(
        self,
        name: str,
        files: Mapping[str, bytes],
        store_object: Callable[[str, bytes], object],
        message: str = "Initial commit",
    ) -> str:
        """Commit ``files`` to ``main`` of an existing repo, LFS files as pointers; return the sha.

        Files matching ``*.bin`` or of 1 MiB and more go through LFS: ``store_object(oid, data)``
        stores their content and the commit holds pointers plus a ``.gitattributes``.

        Example:
            >>> import tempfile, pathlib
            >>> repos = RepoStore(pathlib.Path(tempfile.mkdtemp()))
            >>> _ = repos.create("a/b")
            >>> len(repos.commit_files("a/b", {"x.bin": b"1"}, lambda oid, data: None))
            40
        """
        repo = self.path(name)
        entries: dict[str, bytes] = {}
        lfs_paths: list[str] = []
        for rel, data in files.items():
            clean = _clean_relpath(rel)
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
        with tempfile.TemporaryDirectory(prefix="lfsrepo-commit-") as tmp:
            index_lines = []
            for rel, data in entries.items():
                blob = self._git(
                    "hash-object", "-w", "--no-filters", "--stdin", cwd=repo, input=data
                )
                index_lines.append(f"100644 {blob}\t{rel}\n")
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._git(
                "update-index",
                "--add",
                "--index-info",
                cwd=repo,
                input="".join(index_lines).encode(),
                env=env,
            )
            tree = self._git("write-tree", cwd=repo, env=env)
            parent = self._git(
                "rev-parse", "--verify", "--quiet", "refs/heads/main", cwd=repo, check=False
            )
            args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
            commit = self._git(*args, cwd=repo, env=_identity())
            self._git("update-ref", "refs/heads/main", commit, cwd=repo)
        return commit

    def list_refs(self, name: str) -> dict[str, str]:
        """``{refname: sha}`` of every ref; :class:`KeyError` if the repository does not exist.

        Example:
            >>> import tempfile, pathlib
            >>> repos = RepoStore(pathlib.Path(tempfile.mkdtemp()))
            >>> repos.list_refs(str(repos.create("a/b").relative_to(repos.root)))
            {}
        """
        if not self.exists(name):
            raise KeyError(f"no repository {normalize_name(name)}")
        out = self._git("for-each-ref", "--format=%(refname) %(objectname)", cwd=self.path(name))
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def _git(
        self,
        *args: str,
        cwd: Path | None = None,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            check=False,
            env={**git_env(), **(env or {})},
        )
        if check and result.returncode:
            raise RuntimeError(
                f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()}"
            )
        return result.stdout.decode().strip()


def _identity() -> dict[str, str]:
    # Server-made commits must not depend on the caller having a git identity.
    name, email = "lfsrepo server", "server@lfsrepo.invalid"
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def _clean_relpath(rel: str) -> str:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", ".git") for p in path.parts):
        raise ValueError(f"invalid file path {rel!r}: must be relative, without '..' or '.git'")
    return str(path)
