"""Splitting work across forked children, when this process may fork.

Forking is only safe in a process that runs nothing else: a child of a process with other
threads (a training script's data loaders, a server) inherits their locks in whatever state
they were. So it is off by default, and only the interfaces that own their whole process — the
`git mlm` command line and the hooks — turn it on (`allow`); even then it is skipped while any
other Python thread runs. Everything else runs in one process (threads where the GIL is
released, as hashing large buffers does).

The children compute, write their result to a pipe and `os._exit`: no atexit handler, no
buffered output of the parent's is run or flushed twice.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

_allowed = False


def allow() -> None:
    """Called by the command line and the hooks: this process runs nothing but gitmlm."""
    global _allowed
    _allowed = True


def workers() -> int:
    """How many processes work may be split across now (1: do it here)."""
    if not _allowed or threading.active_count() > 1 or not hasattr(os, "fork"):
        return 1
    return os.cpu_count() or 1


class ChildFailed(Exception):
    """A forked child exited without a result (its error is not known here)."""


def split(func: Callable[[Sequence[T]], bytes], parts: list[Sequence[T]]) -> list[bytes]:
    """`func` of each part, in order: the first here, the others in forked children. A child
    that fails raises ChildFailed once every child is reaped (the caller then falls back)."""
    children: list[tuple[int, int]] = []
    try:
        for part in parts[1:]:
            children.append(_fork(lambda p: (func(p),), part))
        out = [func(parts[0])] if parts else []
    except BaseException:
        _reap(children)
        raise
    failed = False
    for pid, r in children:
        chunks = []
        with os.fdopen(r, "rb") as fh:
            while chunk := fh.read(1 << 20):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        failed |= status != 0
        out.append(b"".join(chunks))
    if failed:
        raise ChildFailed("a helper process failed")
    return out


def stream(
    work: Callable[[Sequence[T]], Iterator[bytes]],
    parts: list[Sequence[T]],
    take: Callable[[bytes], None],
) -> None:
    """Run `work` on each part in its own forked child; `take` gets every frame a child yields,
    in this thread, as it arrives (so progress can be drawn). `work` reports its own errors as
    frames; a child that dies raises ChildFailed once every child is reaped."""
    children: dict[int, tuple[int, bytearray]] = {}
    try:
        for part in parts:
            pid, r = _fork(lambda p: (len(f).to_bytes(8, "little") + f for f in work(p)), part)
            children[r] = (pid, bytearray())
        failed = False
        with selectors.DefaultSelector() as sel:
            for r in children:
                sel.register(r, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    r = int(key.fd)
                    pid, pending = children[r]
                    chunk = os.read(r, 1 << 20)
                    if not chunk:
                        sel.unregister(r)
                        os.close(r)
                        del children[r]
                        failed |= os.waitpid(pid, 0)[1] != 0 or bool(pending)
                        continue
                    pending += chunk
                    while len(pending) >= 8:
                        size = int.from_bytes(pending[:8], "little")
                        if len(pending) < 8 + size:
                            break
                        take(bytes(pending[8 : 8 + size]))
                        del pending[: 8 + size]
    except BaseException:
        for r, (pid, _) in children.items():  # stop the others: their work is not wanted now
            with contextlib.suppress(OSError):
                os.close(r)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        raise
    if failed:
        raise ChildFailed("a helper process failed")


def _fork(produce: Callable[[Sequence[T]], Iterable[bytes]], part: Sequence[T]) -> tuple[int, int]:
    """Fork a child that writes everything `produce(part)` yields to a pipe and leaves without
    any cleanup of the parent's; (its pid, the pipe's read end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            for chunk in produce(part):
                data = memoryview(chunk)
                while data:
                    data = data[os.write(w, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _reap(children: list[tuple[int, int]]) -> None:
    for pid, r in children:
        os.close(r)
        os.waitpid(pid, 0)
