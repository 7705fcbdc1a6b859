"""Token auth for the local server: HTTP Basic or Bearer, and signed URLs.

HTTP Basic takes the token as the password (any username), or as the username with an empty
password, the two forms GitHub accepts.

Object and part URLs handed out by the batch API carry a signature instead, as presigned object
store URLs do, so a transfer agent need not send credentials to them. With per-action headers
(as giftless, GitLab and Gitea hand out), a basic transfer's URL is plain and its action carries an
``Authorization`` header that must arrive exactly as given: doubled or replaced, it is a 403.

Example:
    >>> auth = Auth("s3cret")
    >>> auth.header_ok({"HTTP_AUTHORIZATION": "Bearer s3cret"})
    True
    >>> auth.signature_ok("/a", auth.sign("/a"))
    True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

from ._http import Environ
from .errors import HttpError, InvalidArgumentError

REALM = 'Basic realm="lfsrepo"'
MIN_SIGNING_KEY_LENGTH = 32


def signing_key_bytes(key: str) -> bytes:
    """``key`` as the HMAC key of signed URLs; an :class:`InvalidArgumentError` saying how to
    make a good one if it is too short to be a secret.

    Example:
        >>> len(signing_key_bytes("0123456789abcdef" * 4))
        64
        >>> signing_key_bytes("s3cret")
        Traceback (most recent call last):
        ...
        repository.testing.errors.InvalidArgumentError: the signing key has 6 characters, ...
    """
    if len(key) < MIN_SIGNING_KEY_LENGTH:
        raise InvalidArgumentError(
            f"the signing key has {len(key)} characters, fewer than {MIN_SIGNING_KEY_LENGTH}: "
            "make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return key.encode()


class Auth:
    """Checks requests against an optional token; with no token everything is allowed.

    URLs are signed with ``signing_key`` (see :func:`signing_key_bytes`), or with a random key
    of this process when it is None: then no other process accepts them.

    Example:
        >>> Auth(None).header_ok({})
        True
        >>> key = "k" * 32
        >>> Auth(None, key).signature_ok("/a", Auth(None, key).sign("/a"))
        True
    """

    def __init__(self, token: str | None, signing_key: str | None = None) -> None:
        self.token = token
        self._key = (
            secrets.token_bytes(32) if signing_key is None else signing_key_bytes(signing_key)
        )

    def header_ok(self, environ: Environ) -> bool:
        """True if no token is required or the Authorization header carries it.

        Example:
            >>> import base64
            >>> basic = "Basic " + base64.b64encode(b"user:tok").decode()
            >>> Auth("tok").header_ok({"HTTP_AUTHORIZATION": basic})
            True
        """
        if not self.token:
            return True
        scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            given = value
        elif scheme.lower() == "basic":
            try:
                username, _, given = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            given = given or username
        else:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def sign(self, path: str) -> str:
        """The signature to put in ``?sig=`` of a URL for ``path``.

        Example:
            >>> len(Auth("t").sign("/x"))
            32
        """
        return hmac.new(self._key, path.encode(), hashlib.sha256).hexdigest()[:32]

    def signature_ok(self, path: str, sig: str) -> bool:
        """True if ``sig`` is this server's signature of ``path``.

        Example:
            >>> Auth("t").signature_ok("/x", "bad")
            False
        """
        return hmac.compare_digest(self.sign(path), sig)

    def action_authorization(self, path: str) -> str:
        """The ``Authorization`` header value of an action on ``path`` (per-action mode).

        Example:
            >>> Auth(None).action_authorization("/x").startswith("Bearer lfsrepo-action-")
            True
        """
        return f"Bearer lfsrepo-action-{self.sign(path)}"

    def require_action(self, environ: Environ) -> None:
        """Pass only a request whose ``Authorization`` is exactly its action's header.

        A missing header is a 401; any other value, one header doubled by a client that added
        its own credentials, or one replaced by them, is a 403, as giftless answers it.

        Example:
            >>> auth = Auth("t")
            >>> auth.require_action({"PATH_INFO": "/x",
            ...                      "HTTP_AUTHORIZATION": auth.action_authorization("/x")})
        """
        given = environ.get("HTTP_AUTHORIZATION")
        if given is None:
            raise HttpError(401, "this action needs the Authorization header the batch API gave")
        expected = self.action_authorization(environ.get("PATH_INFO", ""))
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HttpError(
                403,
                "You are not authorized to perform this action: the "
                "Authorization header is not the one the batch API gave (doubled "
                "or replaced by the client?)",
            )

    def require(self, environ: Environ, *, lfs: bool, allow_signed: bool = False) -> None:
        """Raise a 401 :class:`HttpError` with the right challenge unless the request may pass;
        a 403 for a signed URL (``allow_signed``) whose signature is not this server's.

        Example:
            >>> Auth(None).require({}, lfs=True)
        """
        if self.header_ok(environ):
            return
        if allow_signed:
            sig = parse_qs(environ.get("QUERY_STRING", "")).get("sig", [""])[0]
            if sig and self.signature_ok(environ.get("PATH_INFO", ""), sig):
                return
            if sig:
                raise HttpError(
                    403,
                    "this URL's signature is not valid here: it was altered, or signed by another "
                    "server process (processes serving the same repositories need the same "
                    "signing key, LFSREPO_SERVE_SIGNING_KEY)",
                )
        headers = [("WWW-Authenticate", REALM)]
        if lfs:
            headers.append(("LFS-Authenticate", REALM))
        raise HttpError(
            401, "authentication required: pass the token as password or Bearer", headers
        )
