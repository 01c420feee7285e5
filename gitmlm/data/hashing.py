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
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Protocol

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


POPULATE_UNDER = 64 << 20
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
"""Linux: map a file's pages at once; a 2 MB file otherwise takes about 30 page faults, a
tenth of its hashing time on a virtual machine. Not for big files: populating reads the whole
file in before hashing starts, which for a file larger than memory evicts its own start."""


def _read_into(
    fd: int, h: hashlib._Hash, size: int, buf: bytearray, keep: list[bytes] | None, mapped: bool
) -> int:
    if mapped and size >= CHUNK:
        # Hashing the page cache in place: no copy into a buffer, so one core's full sha256
        # rate. A file truncated meanwhile raises SIGBUS, which kills the process: only the
        # forked hashing processes map files, and their death means "redo it in threads".
        populate = _POPULATE if size < POPULATE_UNDER else 0
        with mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ) as m:
            if not populate:
                m.madvise(mmap.MADV_SEQUENTIAL)
            h.update(m)
            return len(m)
    # Into the caller's buffer, reused for every file: no bytes object per read. A read that
    # does not fill the buffer reached the end (of a regular file), so a small file costs one
    # read; one cut short otherwise shows as fewer bytes than its size, and is read again.
    view = memoryview(buf)
    total = 0
    while True:
        n = os.readv(fd, [buf])
        if n:
            h.update(view[:n])
            if keep is not None:
                keep.append(bytes(view[:n]))
            total += n
        if n < len(buf):
            return total


_CONSTRUCTORS: dict[str, Callable[..., hashlib._Hash]] = {}


def _hasher(algorithm: str) -> Callable[..., hashlib._Hash]:
    """The algorithm's constructor (`hashlib.new` looks the name up on every call, a cost per
    file when files are small)."""
    new = _CONSTRUCTORS.get(algorithm)
    if new is None:
        named = getattr(hashlib, algorithm, None)
        new = _CONSTRUCTORS[algorithm] = (
            named if callable(named) else partial(hashlib.new, algorithm)
        )
    return new


def hash_file(
    full: str,
    rel: str,
    algorithm: str,
    buf: bytearray | None = None,
    store: Store | None = None,
    mapped: bool = False,
    expected: int = -1,
    stamp: int = 0,
) -> Hashed:
    """The digest of one regular file with the stat it had throughout the read. With `store`,
    a small file's bytes (read whole anyway) go into the object store from that same read:
    the object holds exactly the bytes hashed, with no second read.

    The read is between two fstats that must agree. With `stamp` (the file-system time taken
    before hashing began) and `expected` (the size the walk saw), the first try has one fstat,
    after the read: a file whose mtime and ctime are older than `stamp` was last written before
    it was opened, so what was read is what the fstat describes (the stat cache's own
    reasoning, see statcache). A file written since, or any surprise, gets the two fstats."""
    buf = buf if buf is not None else bytearray(CHUNK)
    new = _hasher(algorithm)
    for attempt in range(TRIES):
        fd = _open(full, rel)
        one_stat = attempt == 0 and stamp > 0 and expected >= 0
        try:
            before = None if one_stat else os.fstat(fd)
            if before is not None and not stat.S_ISREG(before.st_mode):
                raise MlmError(f"{rel} is not a regular file; datasets hold regular files only")
            size = expected if before is None else before.st_size
            h = new()
            keep: list[bytes] | None = [] if store is not None and size < CHUNK else None
            try:
                n = _read_into(fd, h, size, buf, keep, mapped)
            except OSError as exc:
                if one_stat:
                    continue  # not a regular file any more, perhaps: the careful way says
                raise MlmError(f"cannot read {rel}: {exc.strerror}") from exc
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(after.st_mode):
            raise MlmError(f"{rel} is not a regular file; datasets hold regular files only")
        key = stat_key(after)
        if n != after.st_size:
            continue
        if before is None:
            if max(after.st_mtime_ns, after.st_ctime_ns) >= stamp:
                continue  # written since hashing began: read it again between two fstats
        elif key != stat_key(before):
            continue
        hex_ = h.hexdigest()
        if store is not None and keep is not None:
            store.put_hashed(b"".join(keep), algorithm, hex_)
            return Hashed(key, hex_, True)
        return Hashed(key, hex_)
    raise MlmError(
        f"{rel} changed while it was being hashed ({TRIES} tries); "
        "stop whatever is writing it and run the command again"
    )


def hash_many(
    root: str,
    jobs: Iterable[tuple[str, int]],
    algorithm: str,
    buf: bytearray,
    store: Store | None = None,
    mapped: bool = False,
    stamp: int = 0,
) -> Iterator[tuple[str, tuple[StatKey, str, bool]]]:
    """(path, `hash_file`'s result as a plain tuple) for each (path, expected size) job, in
    order (plain: what the hashing processes marshal, and `as_hashed` makes). Most small
    files take a lean loop here (per file: open, one read into `buf`, one fstat, close), which
    is where hashing many small files spends its time; everything else — a big file, one to
    store, one written since `stamp`, any error or surprise — goes to `hash_file`."""
    view = memoryview(buf)
    new = _hasher(algorithm)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    lean = stamp > 0 and store is None
    into = [buf]
    limit = len(buf)
    for rel, size in jobs:
        if lean and size < limit:
            full = f"{root}/{rel}"
            try:
                fd = os.open(full, flags)
            except OSError:
                h = hash_file(full, rel, algorithm, buf, store, mapped, size, stamp)
                yield rel, (h.key, h.hex, h.stored)
                continue
            try:
                n = os.readv(fd, into)
                st = os.fstat(fd)
            except OSError:
                n, st = -1, None
            finally:
                os.close(fd)
            # A regular file, read whole (a short read is its end), last written before stamp.
            if (
                st is not None
                and n == st.st_size
                and n < limit
                and st.st_mode & _IFMT == _IFREG
                and st.st_mtime_ns < stamp
                and st.st_ctime_ns < stamp
            ):
                key = (n, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                yield rel, (key, new(view[:n]).hexdigest(), False)
                continue
        h = hash_file(f"{root}/{rel}", rel, algorithm, buf, store, mapped, size, stamp)
        yield rel, (h.key, h.hex, h.stored)


_IFMT = 0o170000
_IFREG = 0o100000
as_hashed = partial(tuple.__new__, Hashed)
"""A plain (key, hex, stored) tuple as a Hashed, in C (no Python-level __new__ per file)."""


def _open(full: str, rel: str) -> int:
    try:
        return os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise MlmError(f"{rel} disappeared while being hashed; run the command again") from exc
    except PermissionError as exc:
        raise MlmError(f"cannot read {rel}: permission denied; fix its permissions") from exc
    except OSError as exc:
        raise MlmError(f"cannot read {rel}: {exc.strerror}") from exc


PROCESSES_OVER = 2_000
"""Files above which hashing is split across forked processes (when `forking` allows): per
file, Python's own work holds the GIL, so threads only help with large buffers."""
PROCESS_BYTES = 256 << 20
"""...or bytes above which they are (large buffers hash faster mapped than read into a buffer,
and a fork costs less than hashing this much)."""
BATCH = 1024
"""Results a hashing process sends at a time."""


def hash_files(
    root: str,
    jobs: Sequence[tuple[str, int]],
    algorithm: str,
    progress: Progress | None = None,
    workers: int | None = None,
    store: Store | None = None,
    stamp: int = 0,
) -> dict[str, Hashed]:
    """Hash (repo-relative path, expected size) jobs under `root`, largest first. Many files:
    one forked process per core where this process may fork (the command line), each taking
    every n-th file of the size order; otherwise one thread per core, so the biggest file starts
    at once and small files fill the other cores. With `store`, small files are stored from the
    read that hashed them; `stamp`: the file-system time before hashing began (`hash_file`)."""
    ordered = sorted(jobs, key=lambda j: j[1], reverse=True)
    out: dict[str, Hashed] = {}
    total = sum(size for _, size in ordered)
    count = workers or os.cpu_count() or 1
    procs = min(count, forking.workers())
    if procs > 1 and (
        len(ordered) >= PROCESSES_OVER or (len(ordered) > 1 and total >= PROCESS_BYTES)
    ):
        try:
            _in_processes(root, ordered, algorithm, progress, procs, store, stamp, out)
            return out
        except forking.ChildFailed:
            ordered = [job for job in ordered if job[0] not in out]  # finish here, in threads
            # A child that died may not have completed its pack: nothing it stored is trusted
            # (the caller stores what the cache lacks).
            out.update({rel: h._replace(stored=False) for rel, h in out.items() if h.stored})
    if count == 1 or len(ordered) < 2 or total < SMALL_JOB:
        for rel, h in hash_many(root, ordered, algorithm, bytearray(CHUNK), store, False, stamp):
            out[rel] = as_hashed(h)
            if progress:
                progress(h[0][0], 1)
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
                result = hash_file(f"{root}/{rel}", rel, algorithm, buf, store, False, size, stamp)
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
    stamp: int,
    out: dict[str, Hashed],
) -> None:
    def work(part: Sequence[tuple[str, int]]) -> Iterator[bytes]:
        # Frames of (paths, results): the parent makes its Hashed objects in C (as_hashed).
        rels: list[str] = []
        vals: list[tuple[StatKey, str, bool]] = []
        results = hash_many(root, part, algorithm, bytearray(CHUNK), store, True, stamp)
        while True:
            try:
                item = next(results, None)
            except MlmError as exc:  # the parent raises it; this process stops here
                if rels:
                    yield marshal.dumps((rels, vals))
                yield marshal.dumps((None, str(exc)))
                return
            if item is None:
                break
            rels.append(item[0])
            vals.append(item[1])
            if len(rels) == BATCH:
                yield marshal.dumps((rels, vals))
                rels, vals = [], []
        if rels:
            yield marshal.dumps((rels, vals))
        if store is not None:
            try:  # this process's pack of small objects becomes visible to the others
                store.flush()
            except MlmError as exc:
                yield marshal.dumps((None, str(exc)))

    def take(frame: bytes) -> None:
        rels, vals = marshal.loads(frame)
        if rels is None:
            raise MlmError(vals)
        out.update(zip(rels, map(as_hashed, vals), strict=True))
        if progress:
            progress(sum(v[0][0] for v in vals), len(rels))

    forking.stream(work, [ordered[i::procs] for i in range(procs)], take)
