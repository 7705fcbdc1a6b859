"""Token auth for the local server: HTTP Basic (token as password) or Bearer, and signed URLs.

Object and part URLs handed out by the batch API carry a signature instead, as presigned object
store URLs do, so a transfer agent need not send credentials to them.

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

from ._http import Environ, HttpError

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
                given = base64.b64decode(value, validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return False
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
        raise HttpError(401, "authentication required: pass the token as password or Bearer",
                        headers)
