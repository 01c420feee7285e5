"""Packed small objects: many objects of the local cache in one file, found through an index.

One file per object costs a file creation each (about 100 µs here): on 100,000 small dataset
files that, not hashing, was most of `git mlm data add`. Small objects stored by `data add`
are appended instead to a pack, and the pack gets an index once it is complete:

    packs/<id>.pack     the objects' bytes, one after the other (read-only)
    packs/<id>.idx      digest -> (offset, length) for every object of the pack (read-only)

`<id>` is the time, the process id and 48 random bits: writers sharing a cache (`mlm.cache`)
never pick the same name, and never lock. A pack is written whole, fsynced and closed before
its index is written under tmp/ and renamed into place, so an index never names bytes that are
not there: a crash before that rename leaves a pack no index names, invisible to readers
(gc deletes it after the grace period). Index files never change once in place; gc replaces a
pack by writing a new pack and index of the live objects, then deleting the old index and pack.

Every read of a packed object checks its digest (the objects are small, so it costs little):
a pack damaged on disk gives an error naming the object, never wrong bytes.

Index format, little-endian: the magic b"MLMIDX2\n", the pack's size (u64), a section count
(u32), and per section: the algorithm's name (u8 length, ASCII), the entry count n (u32), then
n raw digests sorted, n offsets (u64) and n lengths (u64), in the digests' order (columns: one
`bytes.fromhex` and two arrays to write or read 100,000 entries); then the sha256 of everything
before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Iterator, Set
from itertools import repeat
from typing import NamedTuple

from gitmlm.errors import MlmError


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`: os.write may write less than it is given."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


PACK_BELOW = 128 << 10
"""Objects smaller than this are packed when `data add` stores them from the hashing read;
larger ones stay one file each, where a checkout can reflink or hard-link them."""
PACK_LIMIT = 256 << 20
"""A pack is closed (and indexed) once it holds this many bytes; the next object starts one."""
WRITE_EVERY = 1 << 20
"""Appended bytes are written out in chunks of this size: one write per many objects."""
MAGIC = b"MLMIDX2\n"
FOLDER = "packs"


class Entry(NamedTuple):
    pack: str
    """The pack's path."""
    offset: int
    length: int


_U64 = "Q"
assert array(_U64).itemsize == 8 and sys.byteorder == "little"  # the format's u64, as is


def encode_index(entries: dict[str, tuple[int, int]], pack_size: int) -> bytes:
    """An index file's bytes for `entries` ("algorithm:hex" -> (offset, length))."""
    sections: dict[str, list[str]] = {}
    for digest in entries:
        algorithm, _, hex_ = digest.partition(":")
        sections.setdefault(algorithm, []).append(hex_)
    parts = [MAGIC, struct.pack("<QI", pack_size, len(sections))]
    for algorithm, hexes in sorted(sections.items()):
        name = algorithm.encode("ascii")
        hexes.sort()
        rows = [entries[f"{algorithm}:{h}"] for h in hexes]
        parts.append(struct.pack("<B", len(name)) + name + struct.pack("<I", len(hexes)))
        parts.append(bytes.fromhex("".join(hexes)))
        parts.append(array(_U64, [r[0] for r in rows]).tobytes())
        parts.append(array(_U64, [r[1] for r in rows]).tobytes())
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode_index(data: bytes, pack: str) -> tuple[int, dict[str, Entry]]:
    """(the pack's size, digest -> Entry) from an index file's bytes; MlmError if damaged."""
    body, check = data[:-32], data[-32:]
    if not data.startswith(MAGIC) or hashlib.sha256(body).digest() != check:
        name = os.path.basename(pack)[:-5]
        raise MlmError(
            f"the pack index {name}.idx of the object cache is damaged; delete it and its "
            f"{name}.pack, then `git mlm data pull` fetches their objects again"
        )
    try:
        pos = len(MAGIC)
        pack_size, count = struct.unpack_from("<QI", body, pos)
        pos += 12
        out: dict[str, Entry] = {}
        for _ in range(count):
            (n,) = struct.unpack_from("<B", body, pos)
            algorithm = body[pos + 1 : pos + 1 + n].decode("ascii")
            pos += 1 + n
            (rows,) = struct.unpack_from("<I", body, pos)
            pos += 4
            width = hashlib.new(algorithm).digest_size
            text = body[pos : pos + rows * width].hex()
            pos += rows * width
            offsets = array(_U64, body[pos : pos + rows * 8])
            pos += rows * 8
            lengths = array(_U64, body[pos : pos + rows * 8])
            pos += rows * 8
            step = width * 2
            keys = [f"{algorithm}:{text[i : i + step]}" for i in range(0, len(text), step)]
            out.update(zip(keys, map(Entry, repeat(pack), offsets, lengths), strict=True))
        return pack_size, out
    except (struct.error, ValueError, UnicodeDecodeError) as exc:  # checksummed, so a bug
        raise MlmError(f"the pack index of {pack} cannot be read: {exc}") from exc


class Packs:
    """The packs of one cache folder, as this process knows them: the loaded indexes, and the
    pack being written by this process (if any). One per cache root per process (`of`)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.folder = f"{root}/{FOLDER}"
        self.index: dict[str, Entry] = {}
        self._loaded: dict[str, list[str]] = {}
        """Index file name -> the digests it added (so a removed index can be forgotten)."""
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.RLock()
        self._writer: _Writer | None = None
        self._fds: dict[str, int] = {}

    # --- reading ---------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Load indexes that appeared, forget those that went. Cheap when nothing changed: one
        stat of the packs folder (a new or removed index changes its mtime)."""
        try:
            st = os.stat(self.folder)
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            # A change within the same timestamp tick as our last look would not move the
            # mtime: a folder changed in the last second is listed again (as git treats racy
            # index entries).
            if stamp == self._stamp and not force and time.time_ns() - stamp[0] > 1_000_000_000:
                return
            self._stamp = stamp
            try:
                names = {n for n in os.listdir(self.folder) if n.endswith(".idx")}
            except FileNotFoundError:
                names = set()
            for gone in set(self._loaded) - names:
                for digest in self._loaded.pop(gone):
                    entry = self.index.get(digest)
                    if entry is not None and entry.pack == self._pack_of(gone):
                        del self.index[digest]
            for name in sorted(names - set(self._loaded)):
                pack = self._pack_of(name)
                try:
                    with open(f"{self.folder}/{name}", "rb") as fh:
                        data = fh.read()
                except FileNotFoundError:  # a gc replaced it meanwhile
                    continue
                _, entries = decode_index(data, pack)
                self.index.update(entries)
                self._loaded[name] = list(entries)

    def _pack_of(self, index_name: str) -> str:
        return f"{self.folder}/{index_name[:-4]}.pack"

    def find(self, digest: str, refresh: bool = True) -> Entry | None:
        """Where a packed object is, or None. What other processes changed is looked at once
        per tenth of a second (loops ask 100,000 times), and again on a miss with `refresh`."""
        now = time.monotonic()
        if self._stamp is None or now - self._checked > 0.1:
            self._checked = now
            self.refresh()
        entry = self.index.get(digest)
        if entry is None and refresh:
            self.refresh()
            entry = self.index.get(digest)
        return entry

    def pending(self, digest: str) -> bool:
        w = self._writer
        return w is not None and digest in w.entries

    def read(self, digest: str) -> bytes | None:
        """A packed object's bytes, checked against its digest (an MlmError if they do not
        match); None when no pack holds it."""
        if self.pending(digest):
            self.flush()
        for attempt in range(2):
            entry = self.find(digest)
            if entry is None:
                return None
            try:
                data = self._pread(entry)
            except FileNotFoundError:  # gc rewrote that pack meanwhile: look again
                self.refresh(force=True)
                if attempt:
                    return None
                continue
            if not matches(digest, data):
                raise MlmError(
                    f"object {digest[:19]}… in pack {os.path.basename(entry.pack)} does not "
                    "match its digest (the cache was changed); it was not used. `git mlm data "
                    "verify` lists such objects; `git mlm data pull` fetches them again"
                )
            return data
        return None

    def _pread(self, entry: Entry) -> bytes:
        fd = self._fds.get(entry.pack)
        if fd is None:
            fd = os.open(entry.pack, os.O_RDONLY | os.O_CLOEXEC)
            with self._lock:
                if entry.pack in self._fds:
                    os.close(fd)
                    fd = self._fds[entry.pack]
                else:
                    self._fds[entry.pack] = fd
        return os.pread(fd, entry.length, entry.offset)  # cut short: the digest check refuses it

    def forget_fds(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()

    def digests(self) -> set[str]:
        self.refresh(force=True)
        return set(self.index)

    def indexes(self) -> Iterator[tuple[str, str, dict[str, Entry]]]:
        """(index path, pack path, entries) of every complete pack now in the folder."""
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".idx"))
        except FileNotFoundError:
            return
        for name in names:
            pack = self._pack_of(name)
            try:
                with open(f"{self.folder}/{name}", "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                continue
            yield f"{self.folder}/{name}", pack, decode_index(data, pack)[1]

    # --- writing ---------------------------------------------------------------------------

    def add(self, digest: str, data: bytes) -> None:
        """Append an object to this process's open pack (made on first use). It becomes
        visible to other processes at `flush`; in this process at once."""
        with self._lock:
            w = self._writer
            if w is None:
                w = self._writer = _Writer(self.root)
            if digest in w.entries:
                return
            w.add(digest, data)
            if w.size >= PACK_LIMIT:
                self._finish(w)

    def flush(self) -> None:
        """Complete this process's open pack: written, fsynced, then indexed."""
        with self._lock:
            w = self._writer
            if w is not None:
                self._finish(w)

    def _finish(self, w: _Writer) -> None:
        self._writer = None
        name = w.finish()
        if name is None:
            return
        # Not added to `index` here: a hashing process never reads them back, and this one
        # loads the new index from disk on its first miss.
        self._stamp = None

    def remove(self, digests: Set[str]) -> None:
        """Drop `digests` from every pack holding them: such a pack is replaced by a new one of
        its other objects (written and indexed first), then its index and itself are deleted.
        Objects whose bytes no longer match their digest are not carried over."""
        self.flush()
        for index, pack, entries in list(self.indexes()):
            if digests.isdisjoint(entries):
                continue
            keep = [(d, e) for d, e in sorted(entries.items(), key=lambda i: i[1].offset)]
            keep = [(d, e) for d, e in keep if d not in digests]
            w = _Writer(self.root) if keep else None
            if w is not None:
                with open(pack, "rb") as fh:
                    for digest, e in keep:
                        fh.seek(e.offset)
                        data = fh.read(e.length)
                        if matches(digest, data) and digest not in w.entries:
                            w.add(digest, data)
                name = w.finish()
                if name is not None:  # the objects keep their age: gc's grace counts from it
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(index)
                        os.utime(f"{self.folder}/{name}", ns=(st.st_atime_ns, st.st_mtime_ns))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(index)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pack)
        self.forget_fds()
        self.refresh(force=True)

    def orphans(self) -> Iterator[str]:
        """Packs no index names: written by a process that stopped before indexing them (or
        being written now: gc removes only old ones)."""
        try:
            names = set(os.listdir(self.folder))
        except FileNotFoundError:
            return
        for name in sorted(names):
            if name.endswith(".pack") and f"{name[:-5]}.idx" not in names:
                yield f"{self.folder}/{name}"


class _Writer:
    def __init__(self, root: str) -> None:
        self.root = root
        folder = f"{root}/{FOLDER}"
        self.name = f"{time.time_ns() // 1_000_000:x}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.path = f"{folder}/{self.name}.pack"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self.fd = os.open(self.path, flags, 0o444)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            self.fd = os.open(self.path, flags, 0o444)
        self.buf = bytearray()
        self.size = 0
        self.entries: dict[str, tuple[int, int]] = {}

    def add(self, digest: str, data: bytes) -> None:
        self.entries[digest] = (self.size, len(data))
        self.buf += data
        self.size += len(data)
        if len(self.buf) >= WRITE_EVERY:
            self._write_out()

    def _write_out(self) -> None:
        view = memoryview(self.buf)
        while view:
            view = view[os.write(self.fd, view) :]
        del view
        self.buf.clear()

    def finish(self) -> str | None:
        """Write, fsync and close the pack, then put its index in place; the index's file name
        (None for an empty pack, which is removed)."""
        try:
            if not self.entries:
                os.close(self.fd)
                os.unlink(self.path)
                return None
            self._write_out()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            data = encode_index(self.entries, self.size)
            tmp = f"{self.root}/tmp/{self.name}.idx.part"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            except FileNotFoundError:
                os.makedirs(f"{self.root}/tmp", exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            name = f"{self.name}.idx"
            os.replace(tmp, f"{self.root}/{FOLDER}/{name}")
            return name
        except OSError:
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise

    def abandon(self) -> None:
        """Drop a writer inherited through fork: its file belongs to the parent."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def matches(digest: str, data: bytes) -> bool:
    algorithm, _, hex_ = digest.partition(":")
    return hashlib.new(algorithm, data).hexdigest() == hex_


_BY_ROOT: dict[str, Packs] = {}
_BY_ROOT_LOCK = threading.Lock()


def of(root: str) -> Packs:
    """This process's view of the packs under cache root `root` (shared by every Store of that
    root, so indexes are loaded once per process)."""
    with _BY_ROOT_LOCK:
        packs = _BY_ROOT.get(root)
        if packs is None:
            packs = _BY_ROOT[root] = Packs(root)
        return packs


def _after_fork_in_child() -> None:
    """A forked child starts packs of its own: the parent's open pack is the parent's to
    finish (its pending objects are not the child's to index or to read)."""
    global _BY_ROOT_LOCK
    _BY_ROOT_LOCK = threading.Lock()
    for packs in _BY_ROOT.values():
        packs._lock = threading.RLock()
        if packs._writer is not None:
            packs._writer.abandon()
            packs._writer = None


os.register_at_fork(after_in_child=_after_fork_in_child)
