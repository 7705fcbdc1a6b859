"""LFS transfer progress: git-lfs's progress file, read while a command runs, shown as tqdm bars.

git-lfs appends ``<direction> <n>/<files> <bytes>/<total> <name>`` lines to the file named by
``GIT_LFS_PROGRESS``; the name is the rest of the line and may contain spaces. The variable is set
in the environment of the one command, never in ``os.environ``.

Example:
    >>> line = parse_progress_line("upload 1/2 10/20 my file.bin")
    >>> line.name, line.bytes_so_far, line.total_bytes
    ('my file.bin', 10, 20)
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import IO, Any

from tqdm.auto import tqdm

DISABLE_VARIABLES = ("LFSREPO_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")


@dataclass(frozen=True)
class ProgressLine:
    """One line of git-lfs's progress file."""

    direction: str
    file_number: int
    file_count: int
    bytes_so_far: int
    total_bytes: int
    name: str


def parse_progress_line(line: str) -> ProgressLine | None:
    """Parse one progress line; ``None`` for anything malformed.

    Example:
        >>> parse_progress_line("garbage") is None
        True
    """
    fields = line.rstrip("\n").split(" ", 3)
    if len(fields) != 4:
        return None
    direction, files, transferred, name = fields
    try:
        file_number, file_count = (int(x) for x in files.split("/"))
        bytes_so_far, total_bytes = (int(x) for x in transferred.split("/"))
    except ValueError:
        return None
    return ProgressLine(direction, file_number, file_count, bytes_so_far, total_bytes, name)


def bars_wanted(enabled: bool | None = None) -> bool:
    """Whether to draw bars: stderr is a terminal, and neither caller nor environment said no."""
    if enabled is False:
        return False
    if any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in DISABLE_VARIABLES):
        return False
    return enabled is True or sys.stderr.isatty()


class LfsProgress:
    """Follows one command's progress file; keeps a summary and, if wanted, one bar per file.

    Use as a context manager around the command; pass :attr:`environment` to the command.

    Example:
        >>> with LfsProgress(show_bars=False) as progress:
        ...     env = progress.environment  # {"GIT_LFS_PROGRESS": "/tmp/..."}
        >>> progress.summary()
        'no LFS transfer yet'
    """

    def __init__(self, show_bars: bool = False, poll_seconds: float = 0.1) -> None:
        self.show_bars = show_bars
        self._poll_seconds = poll_seconds
        self._directory = tempfile.mkdtemp(prefix="lfsrepo-progress-")
        self.path = os.path.join(self._directory, "progress")
        self.environment = {"GIT_LFS_PROGRESS": self.path}
        self._bars: dict[str, tqdm[Any]] = {}
        self._latest: dict[str, ProgressLine] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LfsProgress:
        self._thread = threading.Thread(target=self._follow, name="lfs-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for bar in self._bars.values():
            bar.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.rmdir(self._directory)

    def summary(self) -> str:
        """How far the transfers got, e.g. ``"upload: 1/3 files, 12.0/40.0 MB"``."""
        with self._lock:
            lines = list(self._latest.values())
        if not lines:
            return "no LFS transfer yet"
        last = lines[-1]
        done = sum(line.bytes_so_far for line in lines)
        total = sum(line.total_bytes for line in lines)
        finished = sum(1 for line in lines if line.bytes_so_far >= line.total_bytes)
        return (
            f"{last.direction}: {finished}/{last.file_count} files, "
            f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        )

    def _follow(self) -> None:
        handle: IO[str] | None = None
        pending = ""
        try:
            while True:
                stopping = self._stop.is_set()
                if handle is None and os.path.exists(self.path):
                    # Opened once it exists and closed in `finally`: no `with` fits a polling loop.
                    handle = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
                if handle is not None:
                    pending += handle.read()
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        self._record(line)
                if stopping:
                    return
                self._stop.wait(self._poll_seconds)
        finally:
            if handle is not None:
                handle.close()

    def _record(self, text: str) -> None:
        line = parse_progress_line(text)
        if line is None:
            return
        with self._lock:
            self._latest[line.name] = line
        if not self.show_bars:
            return
        bar = self._bars.get(line.name)
        if bar is None:
            bar = tqdm(
                total=line.total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{line.direction} {line.name}",
                leave=True,
            )
            self._bars[line.name] = bar
        bar.update(line.bytes_so_far - bar.n)
