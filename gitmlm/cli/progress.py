"""A progress line on stderr for long hashing, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

DELAY = 0.5
"""Seconds of work before the line appears: quick runs stay silent."""
INTERVAL = 0.1


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Bar:
    """Callable as a hashing.Progress; thread-safe; `close()` erases the line."""

    def __init__(
        self, total_bytes: int, total_files: int, stream: TextIO, label: str = "hashing"
    ) -> None:
        self.label = label
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.stream = stream
        self.bytes = 0
        self.files = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self._lock = threading.Lock()

    def __call__(self, nbytes: int, nfiles: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += nfiles
            now = time.monotonic()
            if now - self.start < DELAY or now - self.last < INTERVAL:
                return
            self.last = now
            rate = self.bytes / max(now - self.start, 1e-9)
            pct = 100 * self.bytes / self.total_bytes if self.total_bytes else 100.0
            if self.total_files:
                line = (
                    f"\r{self.label} {self.files}/{self.total_files} files, "
                    f"{_size(self.bytes)}/{_size(self.total_bytes)} ({pct:.0f}%, {_size(rate)}/s) "
                )
            else:  # totals unknown (a transfer learns them from its listing)
                line = f"\r{self.label} {self.files} files, {_size(self.bytes)} ({_size(rate)}/s) "
            self.stream.write(line)
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def for_stderr(total_bytes: int, total_files: int, label: str = "hashing") -> Bar | None:
    """A bar on stderr when it is a terminal, else None (pipes and CI logs stay clean)."""
    stream = sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Bar(total_bytes, total_files, stream, label) if tty else None
