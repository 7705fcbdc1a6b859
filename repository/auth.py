"""Tokens: where they come from, and how git and git-lfs get one for one remote, and only that one.

A token never goes to disk, into argv, into a remote URL or into a message. Each command that talks
to an http(s) remote gets, in its ``GIT_CONFIG_*`` environment, an emptied credential helper list
and one helper of ours: a shell function that answers git's ``get`` with HTTP Basic credentials held
in that command's environment, and only when git asks for the remote's own scheme, host and port.
git and git-lfs ask it when a server wants credentials (a 401), never for a URL that carries its
own ``Authorization`` header (an LFS server's per-action header), so such a header is never
doubled or replaced, and no other host (a storage server) ever sees the token.

Example:
    >>> environment = credential_environment(Token("s3cret"), "https://example.com/ns/repo.git")
    >>> environment.variables[CREDENTIAL_HOST], environment.variables[CREDENTIAL_USERNAME]
    ('example.com', 'user')
    >>> [key for key, _ in environment.config]
    ['credential.helper', 'credential.helper']
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field

TOKEN_ENVIRONMENT_VARIABLES = ("LFSREPO_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

# The username sent with a token when the remote URL names none (the legacy class sent this too).
DEFAULT_USERNAME = "user"

CREDENTIAL_PROTOCOL = "LFSREPO_CREDENTIAL_PROTOCOL"
CREDENTIAL_HOST = "LFSREPO_CREDENTIAL_HOST"
CREDENTIAL_USERNAME = "LFSREPO_CREDENTIAL_USERNAME"
CREDENTIAL_PASSWORD = "LFSREPO_CREDENTIAL_PASSWORD"
CREDENTIAL_REJECTED = "LFSREPO_CREDENTIAL_REJECTED"
CREDENTIAL_VARIABLES = (
    CREDENTIAL_PROTOCOL,
    CREDENTIAL_HOST,
    CREDENTIAL_USERNAME,
    CREDENTIAL_PASSWORD,
    CREDENTIAL_REJECTED,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

# git runs a helper that starts with "!" through the shell with the action ("get", "store",
# "erase") as $1 and the request (key=value lines) on stdin. This one answers "get" only, and only
# for the protocol and host (with a non-default port) in its environment; the secrets never appear
# in the snippet, so never in any argv. "erase" (git's verdict that the server refused the
# credentials) leaves a marker, after which "get" answers nothing: git-lfs 3.3 would otherwise ask
# again and resend the refused token forever. POSIX sh: builtins only, no process per line.
CREDENTIAL_HELPER = (
    "!f() { p= h=; "
    "while IFS= read -r line; do case $line in "
    "protocol=*) p=${line#protocol=};; host=*) h=${line#host=};; '') break;; esac; done; "
    "case $p:$h in https:*:443) h=${h%:443};; http:*:80) h=${h%:80};; esac; "
    f'test -n "$p" && test "$p" = "${CREDENTIAL_PROTOCOL}" && '
    f'test "$h" = "${CREDENTIAL_HOST}" || exit 0; '
    f'case $1 in erase) : > "${CREDENTIAL_REJECTED}";; '
    f'get) test -e "${CREDENTIAL_REJECTED}" || '
    f"printf 'username=%s\\npassword=%s\\n' "
    f'"${CREDENTIAL_USERNAME}" "${CREDENTIAL_PASSWORD}";; '
    "esac; }; f"
)

# Where each command's helper may leave its "refused" marker: one folder per Python process, made
# when first needed. The markers hold nothing; the folder goes at exit, after the last background
# command (see commands.py).
_markers_lock = threading.Lock()
_markers_folder: str | None = None


def _marker_path() -> str:
    global _markers_folder
    with _markers_lock:
        if _markers_folder is None:
            _markers_folder = tempfile.mkdtemp(prefix="lfsrepo-credentials-")
        return os.path.join(_markers_folder, os.urandom(16).hex())


def remove_credential_markers() -> None:
    """Remove this process's folder of credential markers, if it made one."""
    global _markers_folder
    with _markers_lock:
        if _markers_folder is not None:
            shutil.rmtree(_markers_folder, ignore_errors=True)
            _markers_folder = None


@dataclass(frozen=True)
class Token:
    """A token and how it is sent: as the Basic password (the forges' convention), or as the
    username with an empty password (``https://<token>@host/...``, a form GitHub documents).

    Example:
        >>> Token("t").basic_credentials("https://_jwt@h/r")
        ('_jwt', 't')
        >>> Token("t", as_username=True).basic_credentials("https://h/r")
        ('t', '')
    """

    value: str = field(repr=False)
    as_username: bool = False

    def __post_init__(self) -> None:
        if not self.value:
            raise ValueError("a token must not be empty")
        if any(character in self.value for character in "\r\n\0"):
            raise ValueError(
                "a token must not contain a line break or NUL; check how it was read "
                "(a trailing newline from a file, for example)"
            )

    def basic_credentials(self, remote_url: str | None) -> tuple[str, str]:
        """The (username, password) pair for ``remote_url``: its own username, else ``user``."""
        if self.as_username:
            return self.value, ""
        username = url_username(remote_url) if remote_url else None
        return username or DEFAULT_USERNAME, self.value

    def secret_forms(self, remote_url: str | None) -> list[str]:
        """Every spelling of the token that could show up in output, longest first.

        Example:
            >>> Token("a/b").secret_forms(None)
            ['dXNlcjphL2I=', 'a%2Fb', 'a/b']
        """
        username, password = self.basic_credentials(remote_url)
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        forms = {self.value, urllib.parse.quote(self.value, safe=""), basic}
        return sorted(forms, key=len, reverse=True)


@dataclass(frozen=True)
class CredentialEnvironment:
    """What one command needs to authenticate: git config entries and environment variables."""

    config: list[tuple[str, str]]
    variables: dict[str, str]


def resolve_token(token: str | bool | None) -> str | None:
    """Turn the ``token`` argument into a token string or ``None``.

    ``True`` keeps its legacy meaning, "use the token the environment provides": the first of
    ``LFSREPO_TOKEN``, ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` that is set, else the token that
    ``hf auth login`` saved (``$HF_TOKEN_PATH``, else ``$HF_HOME/token``). ``False``/``None`` mean
    none.

    Example:
        >>> resolve_token("abc"), resolve_token(None), resolve_token(False)
        ('abc', None, None)
    """
    if token is None or token is False:
        return None
    if token is True:
        for name in TOKEN_ENVIRONMENT_VARIABLES:
            if os.environ.get(name):
                return os.environ[name]
        return _saved_hub_token()
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, a bool or None, not {type(token).__name__}")
    return token or None


def _saved_hub_token() -> str | None:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.environ.get("HF_HOME", os.path.join(cache, "huggingface")))
    path = os.path.expanduser(os.environ.get("HF_TOKEN_PATH", os.path.join(home, "token")))
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Split ``user[:secret]@`` out of an http(s) URL: (URL without them, username, secret).

    Example:
        >>> split_credentials("https://me:tok@example.com/a/b")
        ('https://example.com/a/b', 'me', 'tok')
        >>> split_credentials("https://tok@example.com/a/b")
        ('https://example.com/a/b', 'tok', None)
        >>> split_credentials("git@host:a/b.git")
        ('git@host:a/b.git', None, None)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, has_secret, secret = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=hostport))
    return (
        clean,
        urllib.parse.unquote(username) or None,
        urllib.parse.unquote(secret) if has_secret and secret else None,
    )


def without_credentials(url: str) -> str:
    """``url`` without any ``user[:secret]@`` part."""
    return split_credentials(url)[0]


def with_username(url: str, username: str) -> str:
    """``url`` (an http(s) URL without credentials) with ``username@`` in it."""
    parts = urllib.parse.urlsplit(url)
    netloc = f"{urllib.parse.quote(username, safe='')}@{parts.netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def url_username(url: str) -> str | None:
    """The username written in an http(s) URL, if any."""
    return split_credentials(url)[1]


def credential_origin(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) as git's credential protocol names them; None if not http(s).

    A default port is left out, as git and git-lfs leave it out of their requests.

    Example:
        >>> credential_origin("https://u@example.com:443/r"), credential_origin("/tmp/r.git")
        (('https', 'example.com'), None)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.netloc.rpartition("@")[2]  # as written: git sends the host as the URL spells it
    default = f":{_DEFAULT_PORTS[parts.scheme]}"
    host = host.removesuffix(default)
    return parts.scheme, host


def credential_environment(token: Token | None, remote_url: str | None) -> CredentialEnvironment:
    """The config entries and variables that authenticate one command to ``remote_url``.

    Nothing for no token or a remote that is not http(s) (ssh, a path): the user's own setup
    applies there.

    Example:
        >>> credential_environment(None, "https://h/r")
        CredentialEnvironment(config=[], variables={})
        >>> credential_environment(Token("t"), "git@h:r.git").config
        []
    """
    origin = credential_origin(remote_url) if remote_url else None
    if token is None or origin is None:
        return CredentialEnvironment([], {})
    username, password = token.basic_credentials(remote_url)
    return CredentialEnvironment(
        config=[("credential.helper", ""), ("credential.helper", CREDENTIAL_HELPER)],
        variables={
            CREDENTIAL_PROTOCOL: origin[0],
            CREDENTIAL_HOST: origin[1],
            CREDENTIAL_USERNAME: username,
            CREDENTIAL_PASSWORD: password,
            CREDENTIAL_REJECTED: _marker_path(),
        },
    )
