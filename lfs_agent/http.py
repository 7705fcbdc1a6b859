"""HTTP for the agent: one pooled session, file-slice bodies, bounded retries with backoff."""

from __future__ import annotations

import calendar
import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from urllib.parse import parse_qs, urlsplit

import requests
import requests.adapters
import requests.auth

from lfs_agent import log
from lfs_agent.errors import Cancelled, TransferError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# A big part at a capped bandwidth can take long, but a socket idle this long is dead.
TIMEOUT = (10.0, float(os.environ.get("LFSREPO_AGENT_TIMEOUT", "60")))
ATTEMPTS = int(os.environ.get("LFSREPO_AGENT_ATTEMPTS", "10"))
BACKOFF_BASE = 0.25
BACKOFF_CAP = 20.0
# Small first block: progress starts at once; then blocks small enough for a few progress
# events a second even on a slow connection, large enough to cost little CPU.
FIRST_BLOCK = 64 * 1024
READ_BLOCK = 256 * 1024


class _NoCredentials(requests.auth.AuthBase):
    """Sends a request as it is: no credentials from ~/.netrc (or $NETRC), which requests would
    otherwise add for a matching host. Action URLs authorise themselves (presigned S3 URLs,
    signed completion URLs), and S3 refuses a presigned request that also carries an
    ``Authorization`` header."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def new_session(pool_size: int) -> requests.Session:
    """A session keeping ``pool_size`` connections per host alive; retrying is ours to do. It
    honours the proxy and CA settings of the environment, and adds no credentials of its own:
    requests carry the action's headers and nothing else."""
    session = requests.Session()
    session.trust_env = True
    session.auth = _NoCredentials()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=pool_size, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class FileSlice:
    """A request body of ``length`` bytes of a file from ``offset``, read as it is sent.

    Iterable with a length, so requests sends a Content-Length and never chunked encoding, and only
    one block per connection is in memory. ``on_sent(n)`` runs after each block went to the socket.

    Example:
        >>> import tempfile; f = tempfile.NamedTemporaryFile(); _ = f.write(b"abcdef"); f.flush()
        >>> b"".join(FileSlice(f.name, 2, 3))
        b'cde'
    """

    def __init__(
        self, path: str, offset: int, length: int, on_sent: Callable[[int], None] | None = None
    ) -> None:
        self.path, self.offset, self.length, self.on_sent = path, offset, length, on_sent

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as source:
            position, end = self.offset, self.offset + self.length
            block_size = FIRST_BLOCK
            while position < end:
                block = os.pread(source.fileno(), min(block_size, end - position), position)
                block_size = READ_BLOCK
                if not block:
                    raise OSError(
                        f"{self.path} is shorter than expected ({position} < {end} bytes)"
                    )
                position += len(block)
                yield block
                if self.on_sent is not None:
                    self.on_sent(len(block))


def retry_after_seconds(response: requests.Response) -> float | None:
    """The delay a Retry-After header asks for (seconds or an HTTP date), if any.

    Example:
        >>> r = requests.Response(); r.headers["Retry-After"] = "3"; retry_after_seconds(r)
        3.0
    """
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins (capped at a minute).

    Example:
        >>> backoff_delay(1, retry_after=5.0)
        5.0
    """
    if retry_after is not None:
        return min(retry_after, 60.0)
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def server_message(response: requests.Response) -> str:
    """The server's own words for an error: a JSON ``message``, S3's XML ``Code`` and
    ``Message``, or the start of the body; for a presigned URL that expired, what to do.

    Example:
        >>> r = requests.Response(); r.status_code = 403; r._content = b'{"message": "denied"}'
        >>> server_message(r)
        'HTTP 403: denied'
        >>> r._content = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
        >>> server_message(r)
        'HTTP 403: AccessDenied: Request has expired'
    """
    text = response.text.strip() if response.content else ""
    try:
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            text = body["message"]
    except ValueError:
        code, message = (re.search(f"<{tag}>([^<]*)</{tag}>", text) for tag in ("Code", "Message"))
        if code or message:
            text = ": ".join(m.group(1).strip() for m in (code, message) if m)
    text = " ".join(text.split())[:300] or response.reason or ""
    problem = f"HTTP {response.status_code}: {text}".rstrip(": ")
    expired = url_expiry(response.url or "")
    if response.status_code == 403 and expired is not None and expired <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expired))
        problem += (
            f" (the presigned URL expired at {when}: run the push or pull again; git-lfs then "
            "asks the server for fresh URLs, and a push resumes from the parts already uploaded)"
        )
    return log.redact(problem)


def url_expiry(url: str) -> float | None:
    """When a presigned URL stops working (seconds since the epoch), if it says: SigV4's
    ``X-Amz-Date`` plus ``X-Amz-Expires``, or an ``Expires`` timestamp (SigV2, GCS).

    Example:
        >>> url_expiry("https://s3/b/k?X-Amz-Date=20250101T000000Z&X-Amz-Expires=60")
        1735689660.0
        >>> url_expiry("https://s3/b/k?Expires=1735689600"), url_expiry("https://h/x")
        (1735689600.0, None)
    """
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        if "x-amz-date" in query and "x-amz-expires" in query:
            signed = time.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ")
            return float(calendar.timegm(signed) + int(query["x-amz-expires"]))
        if "expires" in query:
            return float(int(query["expires"]))
    except ValueError:
        return None
    return None


def with_retries(
    what: str,
    send: Callable[[], requests.Response],
    stop: threading.Event | None = None,
    attempts: int | None = None,
) -> requests.Response:
    """Call ``send`` until it returns a success, retrying what retrying can fix.

    Retries 5xx, 408, 429, timeouts and dropped connections with backoff; raises TransferError at
    once for other 4xx, and after ``attempts`` tries. ``stop`` set raises Cancelled between tries.

    Example:
        >>> gone = requests.Response(); gone.status_code = 404
        >>> with_retries("part 1", lambda: gone)
        Traceback (most recent call last):
        lfs_agent.errors.TransferError: part 1: HTTP 404
    """
    attempts = attempts or ATTEMPTS
    for attempt in range(1, attempts + 1):
        if stop is not None and stop.is_set():
            raise Cancelled(what)
        retry_after = None
        try:
            response = send()
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            problem = f"{what}: connection failed ({type(error).__name__})"
            code = 0
        else:
            if response.status_code < 400:
                return response
            problem, code = f"{what}: {server_message(response)}", response.status_code
            if code not in RETRYABLE_STATUS:
                raise TransferError(code, problem)
            retry_after = retry_after_seconds(response)
            response.close()
        if attempt == attempts:
            raise TransferError(code, f"{problem}; gave up after {attempts} attempts")
        delay = backoff_delay(attempt, retry_after)
        log.debug(f"{problem}; retry {attempt} in {delay:.2f}s")
        if stop is not None:
            if stop.wait(delay):
                raise Cancelled(what)
        else:
            time.sleep(delay)
    raise AssertionError("unreachable")


def run_parallel(
    tasks: Sequence[Callable[[threading.Event], None]], workers: int, name: str
) -> None:
    """Run ``tasks(stop)`` on up to ``workers`` threads; the first failure stops them all.

    On a failure ``stop`` is set (tasks check it between blocks and tries) and tasks not yet
    started are dropped; once the ones in flight have ended, the first real error is raised
    (not a Cancelled, which only says that a task stopped because another failed).

    Example:
        >>> def part(stop): raise TransferError(403, "part 2: HTTP 403")
        >>> run_parallel([part, lambda stop: None], workers=2, name="part")
        Traceback (most recent call last):
        lfs_agent.errors.TransferError: part 2: HTTP 403
    """
    stop = threading.Event()
    with ThreadPoolExecutor(min(workers, len(tasks)), name) as pool:
        futures = [pool.submit(task, stop) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if all(future.exception() is None for future in done):
            return
        stop.set()
        for future in futures:
            future.cancel()
        errors = [
            error
            for future in futures
            if future.done() and not future.cancelled()
            if (error := future.exception()) is not None
        ]
        raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
