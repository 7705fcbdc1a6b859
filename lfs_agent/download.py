"""Downloads: parallel ranged GETs into a temp file, one GET when the server ignores Range."""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from typing import Any

import requests

from lfs_agent import log
from lfs_agent.errors import Cancelled, TransferError
from lfs_agent.http import (
    ATTEMPTS,
    TIMEOUT,
    backoff_delay,
    new_session,
    run_parallel,
    with_retries,
)
from lfs_agent.progress import Progress

MIN_RANGE = 16 * 1024 * 1024  # below this, a range's round trip costs more than parallelism wins
BLOCK = 1024 * 1024
_DROPS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def split_ranges(size: int, range_size: int) -> list[tuple[int, int]]:
    """Cut ``size`` bytes into ``(offset, length)`` ranges of ``range_size`` (the last shorter).

    Example:
        >>> split_ranges(10, 4)
        [(0, 4), (4, 4), (8, 2)]
    """
    return [(offset, min(range_size, size - offset)) for offset in range(0, size, range_size)]


class Downloader:
    """Downloads objects for one agent process into ``temp_dir``, beside git-lfs's temp files."""

    def __init__(
        self, concurrency: int, temp_dir: str, session: requests.Session | None = None
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.temp_dir = temp_dir
        self.session = session or new_session(self.concurrency + 2)

    def download(self, request: dict[str, Any], progress: Progress) -> str:
        """Fetch one object and return the temp file's path; the caller hands it to git-lfs."""
        oid, size, action = request["oid"], request["size"], request["action"]
        os.makedirs(self.temp_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"{oid[:16]}-", suffix=".part", dir=self.temp_dir)
        try:
            os.ftruncate(fd, size)
            headers = dict(action.get("header") or {})
            range_size = max(MIN_RANGE, -(-size // (self.concurrency * 4)))
            if size <= range_size or not self._supports_range(action["href"], headers):
                self._fetch(fd, action["href"], headers, 0, size, progress, None, ranged=False)
            else:
                self._fetch_ranges(
                    fd, action["href"], headers, split_ranges(size, range_size), progress
                )
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        progress.finish()
        return path

    def _supports_range(self, href: str, headers: dict[str, str]) -> bool:
        def send() -> requests.Response:
            return self.session.get(
                href, headers={**headers, "Range": "bytes=0-0"}, stream=True, timeout=TIMEOUT
            )

        response = with_retries("download", send)
        response.close()
        log.debug(f"range probe: HTTP {response.status_code}")
        return response.status_code == 206

    def _fetch_ranges(
        self,
        fd: int,
        href: str,
        headers: dict[str, str],
        ranges: list[tuple[int, int]],
        progress: Progress,
    ) -> None:
        run_parallel(
            [
                functools.partial(self._fetch, fd, href, headers, offset, length, progress)
                for offset, length in ranges
            ],
            self.concurrency,
            "range",
        )

    def _fetch(
        self,
        fd: int,
        href: str,
        headers: dict[str, str],
        offset: int,
        length: int,
        progress: Progress,
        stop: threading.Event | None,
        ranged: bool = True,
    ) -> None:
        """Write bytes ``[offset, offset + length)``; a dropped body resumes where it stopped."""
        got = 0
        counter = progress.attempt(offset)
        for attempt in range(1, ATTEMPTS + 1):
            request_headers = dict(headers)
            if ranged or got:
                request_headers["Range"] = f"bytes={offset + got}-{offset + length - 1}"

            def send(request_headers: dict[str, str] = request_headers) -> requests.Response:
                return self.session.get(href, headers=request_headers, stream=True, timeout=TIMEOUT)

            try:
                response = with_retries(f"bytes {offset}-{offset + length - 1}", send, stop)
            except TransferError:
                if stop is not None:
                    stop.set()
                raise
            if "Range" in request_headers and response.status_code != 206:
                if ranged:
                    response.close()
                    raise TransferError(
                        response.status_code,
                        f"asked for a byte range, got HTTP {response.status_code}",
                    )
                # The server restarted from the first byte: so do we, counting afresh.
                got, counter = 0, progress.attempt(offset)
            try:
                for block in response.iter_content(BLOCK):
                    if got + len(block) > length:
                        if stop is not None:
                            stop.set()
                        raise TransferError(
                            response.status_code, f"the server sent more than {length} bytes"
                        )
                    os.pwrite(fd, block, offset + got)
                    got += len(block)
                    counter(len(block))
            except _DROPS as error:
                log.debug(f"range at {offset}: dropped after {got} bytes ({type(error).__name__})")
            finally:
                response.close()
            if got == length:
                return
            if stop is None:
                time.sleep(backoff_delay(attempt, None))
            elif stop.wait(backoff_delay(attempt, None)):
                raise Cancelled("download")
        raise TransferError(
            0,
            f"bytes {offset}-{offset + length - 1}: connection kept dropping; "
            f"gave up after {ATTEMPTS} attempts",
        )
