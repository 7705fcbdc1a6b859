"""The agent's debug log: a file named by LFSREPO_AGENT_LOG, with secrets redacted.

git-lfs shows an agent's stderr only under GIT_TRACE, so humans get a file instead.

Example:
    >>> redact("PUT http://h/p?X-Amz-Signature=abc Authorization: Bearer tok")
    'PUT http://h/p?<redacted> Authorization: <redacted>'
"""

from __future__ import annotations

import os
import re
import threading
import time

_SECRETS = [
    (re.compile(r"(https?://[^\s\"'?]*)\?[^\s\"']*"), r"\1?<redacted>"),
    (re.compile(r"(?i)(authorization\"?\s*[:=]\s*\"?)[^\"\n]*"), r"\1<redacted>"),
    (re.compile(r"(https?://)[^/\s:@]+(:[^/\s@]*)?@"), r"\1<redacted>@"),
    (
        re.compile(r"(?i)((?:token|signature|credential)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
        r"\1<redacted>",
    ),
]

_lock = threading.Lock()
_path: str | None = None


def redact(text: str) -> str:
    """Hide URL query strings (presigned signatures), userinfo, Authorization values and tokens.

    Example:
        >>> redact("https://user:pw@host/x")
        'https://<redacted>@host/x'
    """
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def configure(path: str | None) -> None:
    """Send the debug log to ``path`` (appending); ``None`` or "" turns it off."""
    global _path
    _path = path or None


def enabled() -> bool:
    """Whether a log file is configured (to skip work that only feeds the log)."""
    return _path is not None


def debug(text: str) -> None:
    """Append one redacted, timestamped line to the log file if one is configured."""
    if _path is None:
        return
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    line = f"{stamp} {os.getpid()} {redact(text)}\n"
    with _lock:
        try:
            with open(_path, "a", encoding="utf-8") as log_file:
                log_file.write(line)
        except OSError:
            pass  # a broken log must never break a transfer
