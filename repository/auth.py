"""Tokens: where they come from and how they reach one git command, and only that command.

A token never goes to disk, into argv, into a remote URL or into a message: it becomes an
``http.<origin>.extraHeader`` entry in the ``GIT_CONFIG_*`` environment of each command that talks to
the remote, and git and git-lfs both read it from there.

Example:
    >>> config_entries_for_token("s3cret", "https://example.com/ns/repo.git")[-1][0]
    'http.https://example.com/.extraHeader'
"""

from __future__ import annotations

import os
import urllib.parse

TOKEN_ENVIRONMENT_VARIABLES = ("LFSREPO_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def resolve_token(token: str | bool | None) -> str | None:
    """Turn the ``token`` argument into a token string or ``None``.

    ``True`` keeps its legacy meaning, "use the token the environment provides": the first of
    ``LFSREPO_TOKEN``, ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` that is set. ``False``/``None`` mean none.

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
        return None
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, a bool or None, not {type(token).__name__}")
    return token or None


def split_credentials(url: str) -> tuple[str, str | None]:
    """Remove ``user:secret@`` from a URL; return the clean URL and the secret (or ``None``).

    Example:
        >>> split_credentials("https://me:tok@example.com/a/b")
        ('https://example.com/a/b', 'tok')
        >>> split_credentials("git@host:a/b.git")
        ('git@host:a/b.git', None)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    _, _, secret = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=hostport))
    return clean, urllib.parse.unquote(secret) or None


def http_origin(url: str) -> str | None:
    """Return ``scheme://host[:port]/`` for an http(s) URL, else ``None``.

    Example:
        >>> http_origin("http://127.0.0.1:8080/ns/r.git"), http_origin("/tmp/r.git")
        ('http://127.0.0.1:8080/', None)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"


def config_entries_for_token(token: str | None, remote_url: str | None) -> list[tuple[str, str]]:
    """The per-command git config that authenticates to ``remote_url`` with ``token`` and never prompts.

    The header is scoped to the remote's origin so it is never sent to another host (for example
    the storage URLs an LFS server hands out). Credential helpers are reset so that nothing stores
    or replaces the token.

    Example:
        >>> config_entries_for_token(None, "https://h/r")
        []
        >>> [key for key, _ in config_entries_for_token("t", "https://h/r")]
        ['credential.helper', 'http.https://h/.extraHeader']
    """
    origin = http_origin(remote_url) if remote_url else None
    if not token or origin is None:
        return []
    return [
        ("credential.helper", ""),
        (f"http.{origin}.extraHeader", f"Authorization: Bearer {token}"),
    ]
