"""Line-delimited JSON messages of git-lfs's custom transfer protocol: parse, validate, write.

Example:
    >>> parse_message('{"event": "terminate"}')
    {'event': 'terminate'}
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, TypeGuard

from lfs_agent.errors import ProtocolError

EVENTS = ("init", "upload", "download", "terminate")
# The code of an ``init`` answer that refuses the session (the one in git-lfs's own example).
INIT_ERROR_CODE = 32


def parse_message(line: str | bytes) -> dict[str, Any]:
    """Parse and validate one protocol line; raise ProtocolError saying what is wrong.

    Example:
        >>> parse_message('{"event": "upload", "oid": "ab", "size": -1}')
        Traceback (most recent call last):
        lfs_agent.errors.ProtocolError: size must be a non-negative integer, got -1
    """
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    event = message.get("event")
    if event not in EVENTS:
        raise ProtocolError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
    if event == "init":
        if message.get("operation") not in ("upload", "download"):
            raise ProtocolError(
                f"init: operation must be 'upload' or 'download', got {message.get('operation')!r}"
            )
        count = message.get("concurrenttransfers", 8)
        if not _is_int(count) or count < 1:
            raise ProtocolError(
                f"init: concurrenttransfers must be a positive integer, got {count!r}"
            )
    elif event in ("upload", "download"):
        _validate_transfer(message)
    return message


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_transfer(message: dict[str, Any]) -> None:
    oid = message.get("oid")
    if not isinstance(oid, str) or not oid:
        raise ProtocolError(f"{message['event']}: oid must be a non-empty string, got {oid!r}")
    size = message.get("size")
    if not _is_int(size) or size < 0:
        raise ProtocolError(f"size must be a non-negative integer, got {size!r}", oid)
    if message["event"] == "upload" and (
        not isinstance(message.get("path"), str) or not message["path"]
    ):
        raise ProtocolError(f"path must be a non-empty string, got {message.get('path')!r}", oid)
    action = message.get("action")
    if not isinstance(action, dict):
        raise ProtocolError(f"action must be an object, got {action!r}", oid)
    if not isinstance(action.get("href"), str) or not action["href"]:
        raise ProtocolError(
            f"action.href must be a non-empty string, got {action.get('href')!r}", oid
        )
    header = action.get("header", {})
    if header is None:
        header = action["header"] = {}
    if not isinstance(header, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in header.items()
    ):
        raise ProtocolError("action.header must be an object of strings", oid)


class MessageWriter:
    """Writes protocol messages to a file descriptor, one compact JSON line each, thread-safe.

    Each message goes out in ``os.write`` calls at once: no buffer sits between us and git-lfs.

    Example:
        >>> import os; r, w = os.pipe()
        >>> MessageWriter(w).error("ab", 404, "gone"); os.read(r, 100)
        b'{"event":"complete","oid":"ab","error":{"code":404,"message":"gone"}}\\n'
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def write(self, message: dict[str, Any]) -> None:
        """Write one message as a single line."""
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]

    def error(self, oid: str, code: int, text: str) -> None:
        """Report that object ``oid`` failed: ``complete`` with an error, as the protocol wants."""
        self.write({"event": "complete", "oid": oid, "error": {"code": code, "message": text}})
