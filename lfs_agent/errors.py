"""The agent's exceptions: every one is an :class:`AgentError`.

Each carries ``code``, the HTTP-like status the agent reports to git-lfs when the error ends an
object's transfer (``complete`` with an error), so the mapping from failures to protocol answers
lives with the failures. Setting a clone up (``enable_largefiles``) is about a clone, not a
transfer: it raises the Repository's errors instead (see :mod:`lfs_agent.setup`).
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of the errors the transfer agent raises; ``code`` is what git-lfs is told."""

    code: int = 500


class ProtocolError(AgentError):
    """A message from git-lfs that does not follow the custom transfer protocol.

    ``oid`` is set when the message names an object, so the error can go into its ``complete``.
    """

    code = 422

    def __init__(self, message: str, oid: str | None = None) -> None:
        super().__init__(message)
        self.oid = oid


class TransferError(AgentError):
    """A request that failed for good; ``code`` is its HTTP status, 0 when none came back."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ActionError(AgentError):
    """The upload action the server sent is not a valid multipart plan."""

    code = 422


class Cancelled(AgentError):
    """Another part of the same object failed for good, so this one stops."""


def protocol_code(error: BaseException) -> int:
    """The status to report to git-lfs when ``error`` ends a transfer: 500 unless it has its own.

    Example:
        >>> protocol_code(TransferError(403, "part 2: HTTP 403: expired"))
        403
        >>> protocol_code(TransferError(0, "part 2: connection failed")), protocol_code(OSError())
        (500, 500)
    """
    return (error.code if isinstance(error, AgentError) else 0) or 500
