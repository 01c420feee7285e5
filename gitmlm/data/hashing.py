"""Hashing files in parallel, refusing torn reads: a file that changes while it is read is
re-read, and after a few tries it is an error rather than a digest of nothing that existed.

Two ways to use the cores. Forked processes, for many files, where the process may fork
(`forking`: the command line and the hooks): per file, Python's own work (open, stat, read,
close) holds the GIL, so only processes scale it. Threads otherwise: hashlib and os.readv
release the GIL on large buffers, so a big file hashes on one core while the others take the
small files, and threads need no fork (unsafe in a training process with threads of its own)
nor a re-import of the user's __main__ (spawn). Either way one file is hashed by one core: a
single huge file goes at one core's sha256 rate.
"""

from __future__ import annotations

import hashlib
import marshal
import mmap
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from gitmlm.data import forking
from gitmlm.data.lock import ALGORITHMS
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    from gitmlm.storage.objects import Store

"""What a dataset may declare as `algorithm`; sha256 is the default."""
DEFAULT = "sha256"
TRIES = 3
CHUNK = 1 << 20
SMALL_JOB = 8 << 20
"""Below this many bytes in total, threads cost more than they save."""

StatKey = tuple[int, int, int, int]
"""(size, mtime_ns, ctime_ns, inode): what the stat cache compares."""
Progress = Callable[[int, int], None]


class ProgressSink(Protocol):
    """What a progress factory returns: called with (bytes, files) done, closed at the end."""

    def __call__(self, nbytes: int, nfiles: int) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[int, int], ProgressSink | None]
"""Given (total bytes, total files), a sink for progress or None; the CLI passes one that draws
on a terminal, and domain code never draws (a training script's stderr stays its own)."""
"""Called with (bytes, files) just hashed; may be called from several threads."""


class Hashed(NamedTuple):
    """A tuple, not a dataclass: `data add` makes 100,000 of them."""

    key: StatKey
    hex: str
    stored: bool = False
    """Its bytes were put into the object store as they were hashed (the same read)."""


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def check_algorithm(name: str) -> str:
    if name not in ALGORITHMS:
        raise MlmError(f"unknown hash algorithm {name!r}; use one of {', '.join(ALGORITHMS)}")
    return name


def _read_into(
    fd: int, h: hashlib._Hash, size: int, buf: bytearray, keep: list[bytes] | None, mapped: bool
) -> int:
    if mapped and size >= CHUNK:
        # Hashing the page cache in place: no copy into a buffer, so one core's full sha256
        # rate. A file truncated meanwhile raises SIGBUS, which kills the process: only the
        # forked hashing processes map files, and their death means "redo it in threads".
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            m.madvise(mmap.MADV_SEQUENTIAL)
            h.update(m)
            return len(m)
    if size < CHUNK:
        # Small files: one read of the expected size plus one to see the end.
        total = 0
        while True:
            data = os.read(fd, max(size - total, 0) + 1)
            if not data:
                return total
            h.update(data)
            if keep is not None:
                keep.append(data)
            total += len(data)
    view = memoryview(buf)
    total = 0
    while True:
        n = os.readv(fd, [buf])
        if not n:
            return total
        h.update(view[:n])
        total += n


def hash_file(
    full: str,
    rel: str,
    algorithm: str,
    buf: bytearray | None = None,
    store: Store | None = None,
    mapped: bool = False,
) -> Hashed:
    """The digest of one regular file with the stat it had throughout the read. With `store`,
    a small file's bytes (read whole anyway) go into the object store from that same read:
    the object holds exactly the bytes hashed, with no second read."""
    buf = buf if buf is not None else bytearray(CHUNK)
    for _ in range(TRIES):
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise MlmError(f"{rel} disappeared while being hashed; run the command again") from exc
        except PermissionError as exc:
            raise MlmError(f"cannot read {rel}: permission denied; fix its permissions") from exc
        except OSError as exc:
            raise MlmError(f"cannot read {rel}: {exc.strerror}") from exc
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise MlmError(f"{rel} is not a regular file; datasets hold regular files only")
            h = hashlib.new(algorithm)
            keep: list[bytes] | None = [] if store is not None and before.st_size < CHUNK else None
            try:
                n = _read_into(fd, h, before.st_size, buf, keep, mapped)
            except OSError as exc:
                raise MlmError(f"cannot read {rel}: {exc.strerror}") from exc
            after = os.fstat(fd)
        finally:
            os.close(fd)
        key = stat_key(after)
        if key == stat_key(before) and n == before.st_size:
            hex_ = h.hexdigest()
            if store is not None and keep is not None:
                store.put_hashed(b"".join(keep), algorithm, hex_)
                return Hashed(key, hex_, True)
            return Hashed(key, hex_)
    raise MlmError(
        f"{rel} changed while it was being hashed ({TRIES} tries); "
        "stop whatever is writing it and run the command again"
    )


PROCESSES_OVER = 2_000
"""Files above which hashing is split across forked processes (when `forking` allows): per
file, Python's own work holds the GIL, so threads only help with large buffers."""
PROCESS_BYTES = 256 << 20
"""...or bytes above which they are (large buffers hash faster mapped than read into a buffer,
and a fork costs less than hashing this much)."""
BATCH = 256
"""Results a hashing process sends at a time."""


def hash_files(
    root: str,
    jobs: Sequence[tuple[str, int]],
    algorithm: str,
    progress: Progress | None = None,
    workers: int | None = None,
    store: Store | None = None,
) -> dict[str, Hashed]:
    """Hash (repo-relative path, expected size) jobs under `root`, largest first. Many files:
    one forked process per core where this process may fork (the command line), each taking
    every n-th file of the size order; otherwise one thread per core, so the biggest file starts
    at once and small files fill the other cores. With `store`, small files are stored from the
    read that hashed them (`hash_file`)."""
    ordered = sorted(jobs, key=lambda j: j[1], reverse=True)
    out: dict[str, Hashed] = {}
    total = sum(size for _, size in ordered)
    count = workers or os.cpu_count() or 1
    procs = min(count, forking.workers())
    if procs > 1 and (
        len(ordered) >= PROCESSES_OVER or (len(ordered) > 1 and total >= PROCESS_BYTES)
    ):
        try:
            _in_processes(root, ordered, algorithm, progress, procs, store, out)
            return out
        except forking.ChildFailed:
            ordered = [job for job in ordered if job[0] not in out]  # finish here, in threads
            # A child that died may not have completed its pack: nothing it stored is trusted
            # (the caller stores what the cache lacks).
            out.update({rel: h._replace(stored=False) for rel, h in out.items() if h.stored})
    if count == 1 or len(ordered) < 2 or total < SMALL_JOB:
        buf = bytearray(CHUNK)
        for rel, size in ordered:
            out[rel] = hash_file(f"{root}/{rel}", rel, algorithm, buf, store)
            if progress:
                progress(size, 1)
        return out

    lock = threading.Lock()
    feed = iter(ordered)
    failures: list[BaseException] = []

    def work() -> None:
        buf = bytearray(CHUNK)
        while not failures:
            with lock:
                job = next(feed, None)
            if job is None:
                return
            rel, size = job
            try:
                result = hash_file(f"{root}/{rel}", rel, algorithm, buf, store)
            except BaseException as exc:  # handed to the caller's thread below
                failures.append(exc)
                return
            out[rel] = result  # distinct keys per thread: dict item assignment is atomic
            if progress:
                progress(size, 1)

    threads = [
        threading.Thread(target=work, name=f"gitmlm-hash-{i}", daemon=True)
        for i in range(min(count, len(ordered)))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return out


def _in_processes(
    root: str,
    ordered: list[tuple[str, int]],
    algorithm: str,
    progress: Progress | None,
    procs: int,
    store: Store | None,
    out: dict[str, Hashed],
) -> None:
    def work(part: Sequence[tuple[str, int]]) -> Iterator[bytes]:
        buf = bytearray(CHUNK)
        batch: list[tuple[Any, ...]] = []
        for rel, _ in part:
            try:
                h = hash_file(f"{root}/{rel}", rel, algorithm, buf, store, mapped=True)
            except MlmError as exc:  # the parent raises it; this process stops here
                batch.append((rel, str(exc)))
                yield marshal.dumps(batch)
                return
            batch.append((rel, h.key, h.hex, h.stored))
            if len(batch) == BATCH:
                yield marshal.dumps(batch)
                batch = []
        if store is not None:
            try:  # this process's pack of small objects becomes visible to the others
                store.flush()
            except MlmError as exc:
                batch.append(("", str(exc)))
        if batch:
            yield marshal.dumps(batch)

    def take(frame: bytes) -> None:
        size = 0
        items = marshal.loads(frame)
        for item in items:
            if len(item) == 2:
                raise MlmError(item[1])
            rel, key, hex_, stored = item
            out[rel] = Hashed(tuple(key), hex_, stored)
            size += key[0]
        if progress:
            progress(size, len(items))

    forking.stream(work, [ordered[i::procs] for i in range(procs)], take)
