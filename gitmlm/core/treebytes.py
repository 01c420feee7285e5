"""Git tree objects edited as their bytes, and the trees a process wrote kept parsed.

Recording a run changes one entry of a few trees, one of them the run store's top folder of
up to 1,024 entries (core/notes.py). libgit2's TreeBuilder loads, checks and re-serialises every
entry for each change (about a millisecond for that folder); splicing the one entry into the
bytes kept from the last write costs microseconds, and the object written is the same.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TREE = 0o040000


@dataclass(frozen=True)
class Entries:
    """A tree's entries in git's order: `keys` sort them (a folder's name ends with "/", as
    git compares it), `chunks` are the entries as stored (`<mode> <name>\\0<20-byte id>`)."""

    keys: tuple[bytes, ...]
    chunks: tuple[bytes, ...]


EMPTY = Entries((), ())


def parse(raw: bytes) -> Entries:
    """A tree object's content (as `git cat-file tree` prints it) split into its entries."""
    keys: list[bytes] = []
    chunks: list[bytes] = []
    pos, size = 0, len(raw)
    while pos < size:
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        end = nul + 21
        if end > size:
            raise ValueError("a tree entry is cut short")
        name = raw[space + 1 : nul]
        folder = int(raw[pos:space], 8) == TREE
        keys.append(name + b"/" if folder else name)
        chunks.append(raw[pos:end])
        pos = end
    return Entries(tuple(keys), tuple(chunks))


def data(entries: Entries) -> bytes:
    """The tree object's content."""
    return b"".join(entries.chunks)


def _index(keys: Sequence[bytes], name: bytes) -> int | None:
    for key in (name, name + b"/"):
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return i
    return None


def find(entries: Entries, name: str) -> tuple[int, str] | None:
    """(mode, hex id) of the entry `name`, or None."""
    i = _index(entries.keys, name.encode())
    if i is None:
        return None
    chunk = entries.chunks[i]
    return int(chunk[: chunk.index(b" ")], 8), chunk[-20:].hex()


def edit(entries: Entries, changes: Mapping[str, tuple[int, str] | None]) -> Entries:
    """`entries` with each named entry set to (mode, hex id), or removed for None."""
    keys = list(entries.keys)
    chunks = list(entries.chunks)
    for name, entry in changes.items():
        raw_name = name.encode()
        if not raw_name or b"/" in raw_name or b"\0" in raw_name:
            raise ValueError(f"not a tree entry name: {name!r}")
        old = _index(keys, raw_name)
        if old is not None:
            del keys[old], chunks[old]
        if entry is None:
            continue
        mode, oid = entry
        key = raw_name + b"/" if mode == TREE else raw_name
        i = bisect.bisect_left(keys, key)
        keys.insert(i, key)
        chunks.insert(i, b"%o %s\0" % (mode, raw_name) + bytes.fromhex(oid))
    return Entries(tuple(keys), tuple(chunks))


class Cache:
    """Parsed trees by id (content-addressed: never stale), the newest `size` kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._trees: dict[str, Entries] = {}

    def get(self, oid: str) -> Entries | None:
        return self._trees.get(oid)

    def put(self, oid: str, entries: Entries) -> Entries:
        trees = self._trees
        trees.pop(oid, None)
        while len(trees) >= self.size:
            trees.pop(next(iter(trees)), None)
        trees[oid] = entries
        return entries
