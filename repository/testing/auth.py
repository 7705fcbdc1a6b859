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
from .errors import HttpError

REALM = 'Basic realm="lfsrepo"'


class Auth:
    """Checks requests against an optional token; with no token everything is allowed.

    Example:
        >>> Auth(None).header_ok({})
        True
    """

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._key = secrets.token_bytes(32)

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
        """Raise a 401 :class:`HttpError` with the right challenge unless the request may pass.

        Example:
            >>> Auth(None).require({}, lfs=True)
        """
        if self.header_ok(environ):
            return
        if allow_signed:
            sig = parse_qs(environ.get("QUERY_STRING", "")).get("sig", [""])[0]
            if sig and self.signature_ok(environ.get("PATH_INFO", ""), sig):
                return
        headers = [("WWW-Authenticate", REALM)]
        if lfs:
            headers.append(("LFS-Authenticate", REALM))
        raise HttpError(
            401, "authentication required: pass the token as password or Bearer", headers
        )
