"""The stat cache: which digest a file had when it had a given (size, mtime, ctime, inode), so
an unchanged file is never read again. One cache per work tree under .git/mlm/cache/stat/.

Two files. The table (`<worktree>`) maps each file to its stat key, digest and stamp; it is
loaded only when something changed. The memos (`<worktree>.memo`) hold, per dataset, the stat of
all its files packed into one bytes value, with its digest: an unchanged dataset is answered by
one bytes comparison, whatever its size.

Racy timestamps, as git handles them: a file changed twice within one timestamp tick keeps its
stat. Each entry remembers a stamp — the file-system time at which its hashing began (the
mtime of a freshly touched stamp file, so the same clock and granularity as the data). An entry
whose mtime or ctime is not older than its stamp may have changed after it was read without the
stat showing it, so it is hashed again next time; by then its stamp is newer and it settles. A
memo is only written when none of its entries is racy.

Both files are marshal dumps; they are caches, so any damage or a format from another Python
just means a cold start.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import marshal
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gitmlm.data.hashing import Hashed, StatKey

MAGIC = "gitmlm-stat-2"

Entry = tuple[StatKey, str, int]
"""(stat key, hex digest, stamp ns)."""
Memo = tuple[str, bytes, str, int]
"""A dataset's last verified state: (its paths joined by NUL in walk order, their packed stat
keys, digest, total size)."""


def fresh(entry: Entry | None, key: StatKey) -> bool:
    """Whether `entry` vouches for a file that now has `key` (not racy, stat unchanged)."""
    if entry is None or entry[0] != key:
        return False
    return max(key[1], key[2]) < entry[2]


def pack(keys: Iterable[StatKey]) -> bytes:
    """Stat keys as one bytes value (signed 64-bit each; inodes folded into that range)."""
    mask = 0x7FFF_FFFF_FFFF_FFFF
    return array.array("q", [v for s, m, c, i in keys for v in (s, m, c, i & mask)]).tobytes()


def _load(file: Path) -> Any:
    try:
        doc = marshal.loads(file.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if isinstance(doc, tuple) and len(doc) == 2 and doc[0] == MAGIC and isinstance(doc[1], dict):
        return doc[1]
    return None


def _save(file: Path, value: Any) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".stat-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(marshal.dumps((MAGIC, value)))
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StatCache:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.memo_file = file.with_name(file.name + ".memo")
        self._files: dict[str, dict[str, Entry]] | None = None
        """algorithm -> repo-relative path -> entry; loaded on first use."""
        self.memos: dict[str, Memo] = _load(self.memo_file) or {}
        """Spec.memo_key -> memo."""
        self.dirty = False
        self.memos_dirty = False

    @classmethod
    def load(cls, mlm_dir: Path, workdir: Path) -> StatCache:
        # Work trees share .git/mlm but not their files: one cache per work tree.
        key = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:16]
        return cls(mlm_dir / "cache" / "stat" / key)

    @property
    def files(self) -> dict[str, dict[str, Entry]]:
        if self._files is None:
            self._files = _load(self.file) or {}
        return self._files

    def table(self, algorithm: str) -> dict[str, Entry]:
        return self.files.setdefault(algorithm, {})

    def stamp(self) -> int:
        """The file-system time now, as data files would be stamped by a write now."""
        stamp = self.file.with_name(self.file.name + ".stamp")
        stamp.parent.mkdir(parents=True, exist_ok=True)
        with open(stamp, "w"):
            pass
        os.utime(stamp)  # an existing file's mtime moves only when told to
        return os.stat(stamp).st_mtime_ns

    def put_many(self, algorithm: str, hashed: Mapping[str, Hashed], stamp: int) -> None:
        table = self.table(algorithm)
        for path, h in hashed.items():
            table[path] = (h.key, h.hex, stamp)
        self.dirty = True

    def remember(
        self, key: str, algorithm: str, paths: Sequence[str], digest: str, size: int
    ) -> None:
        """Memo a dataset whose every file is in the table; not when any entry is racy."""
        table = self.table(algorithm)
        entries = [table[p] for p in paths]
        if any(max(e[0][1], e[0][2]) >= e[2] for e in entries):
            self.forget(key)
            return
        memo = ("\0".join(paths), pack(e[0] for e in entries), digest, size)
        if self.memos.get(key) != memo:
            self.memos[key] = memo
            self.memos_dirty = True

    def forget(self, key: str) -> None:
        if self.memos.pop(key, None) is not None:
            self.memos_dirty = True

    def prune(self, live: Iterable[str], memo_keys: Iterable[str]) -> None:
        """Forget files and memos outside `live`: deleted files must not pile up for ever."""
        keep = set(memo_keys)
        for k in [k for k in self.memos if k not in keep]:
            self.forget(k)
        if self._files is None:
            return  # not loaded: nothing was hashed, so nothing new to prune
        alive = set(live)
        for table in self._files.values():
            gone = [p for p in table if p not in alive]
            for p in gone:
                del table[p]
            self.dirty |= bool(gone)

    def save(self) -> None:
        if self.dirty and self._files is not None:
            _save(self.file, self._files)
            self.dirty = False
        if self.memos_dirty:
            _save(self.memo_file, self.memos)
            self.memos_dirty = False
