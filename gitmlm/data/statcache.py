"""The stat cache: which digest a file had when it had a given (size, mtime, ctime, inode), so
an unchanged file is never read again. One cache per work tree under .git/mlm/cache/stat/.

Two files. The table (`<worktree>`) maps each file to its stat key, digest and stamp; it is
loaded only when something changed. The memos (`<worktree>.memo`) hold, per dataset, what its
last verified enumeration saw — its files and their packed lstat (type, size, mtime, ctime,
inode), and each folder listed with its inode and names — with the digest. An unchanged dataset
is answered without a walk: list its folders (C-level `os.listdir`), lstat its files (C-level
`map`), and compare two bytes values; no per-file Python object beyond the stat itself.

When a memo may answer without a walk (`quick`): the walk met no symlink; the dataset's top
has the same real path; every folder listed still is a folder with the same inode and the same
names (for a glob, the same kinds of names too: a name becoming a folder or a link could bring
files in); every file's lstat is the same. Anything else is a walk, then the table.

Racy timestamps, as git handles them: a file changed twice within one timestamp tick keeps its
stat. Each entry remembers a stamp — the file-system time at which its hashing began (the
mtime of a freshly touched stamp file, so the same clock and granularity as the data). An entry
whose mtime or ctime is not older than its stamp may have changed after it was read without the
stat showing it, so it is hashed again next time; by then its stamp is newer and it settles. A
memo is only written when none of its entries is racy.

Both files are marshal dumps behind a header naming the format and the Python that wrote them
and the sha256 of the payload: a damaged, truncated or foreign file is a cold start, never a
wrong answer.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import marshal
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from gitmlm.data import forking
from gitmlm.data import spec as dataspec
from gitmlm.data.hashing import Hashed, StatKey

MAGIC = b"gitmlm-stat-3 py%d.%d marshal%d\n" % (*sys.version_info[:2], marshal.version)
"""The format and the Python that wrote it (marshal's format follows Python's version)."""

Entry = tuple[StatKey, str, int]
"""(stat key, hex digest, stamp ns)."""


class Memo(NamedTuple):
    """A dataset's last verified state."""

    paths: str
    """Its files (repo-relative) joined by NUL, in walk order."""
    keys: bytes
    """Their packed lstat keys (`pack`)."""
    digest: str
    size: int
    kind: str
    base: str
    top: str
    """Repo-relative top of the walk (the folder, the glob's base, or the file)."""
    real: str
    """The real path of the top at the time."""
    plain: bool
    """No symlink met: `quick` may answer."""
    dirs: list[str]
    inos: list[int]
    listings: list[str]


_KEY_FIELDS = ("st_mode", "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")
_KEY = attrgetter(*_KEY_FIELDS)
_SPAN = 1 << 64
_HALF = 1 << 63


def fresh(entry: Entry | None, key: StatKey) -> bool:
    """Whether `entry` vouches for a file that now has `key` (not racy, stat unchanged)."""
    if entry is None or entry[0] != key:
        return False
    return max(key[1], key[2]) < entry[2]


def pack(stats: Sequence[os.stat_result]) -> bytes:
    """The lstat keys (type and mode, size, mtime, ctime, inode) of files as one bytes value,
    built in C (array over map), since `status` does this for every file."""
    try:
        return array.array("q", chain.from_iterable(map(_KEY, stats))).tobytes()
    except OverflowError:  # a 64-bit inode above 2**63: fold every value into signed range
        values = [(v + _HALF) % _SPAN - _HALF for k in map(_KEY, stats) for v in k]
        return array.array("q", values).tobytes()


def _top(fs: dataspec.FileSet) -> str:
    return fs.spec.path if fs.kind in ("file", "dir") else fs.base


def _full(root: str, rel: str) -> str:
    return f"{root}/{rel}" if rel else root


def quick(root: str, spec: dataspec.Spec, memo: Memo | None) -> dataspec.FileSet | None:
    """The file set `memo` vouches for when nothing it saw has changed (see the module's
    docstring), else None: then the caller walks."""
    if memo is None or not memo.plain:
        return None
    try:
        if os.path.realpath(_full(root, memo.top)) != memo.real:
            return None
        dstats = list(map(os.lstat, [_full(root, d) for d in memo.dirs]))
        if [s.st_ino for s in dstats] != memo.inos:
            return None
        if not all(stat.S_ISDIR(s.st_mode) for s in dstats):
            return None
        typed = memo.kind == "glob"
        for d, names in zip(memo.dirs, memo.listings, strict=True):
            full = _full(root, d)
            if typed:
                with os.scandir(full) as it:
                    now = dataspec.listing(it, True)
            else:
                now = "\0".join(os.listdir(full))
            if now != names and sorted(now.split("\0")) != sorted(names.split("\0")):
                return None
        paths = memo.paths.split("\0")
        if not _same_stats(root, paths, memo.keys):
            return None
    except OSError:
        return None
    fs = dataspec.FileSet(spec, memo.kind, memo.base, real=memo.real, from_memo=True)
    fs.paths = paths
    fs.loader = lambda: list(zip(paths, _stats(memo.keys), strict=True))
    return fs


PARALLEL_OVER = 20_000
"""Files above which the lstat pass is split across processes (when `forking` allows)."""


def _same_stats(root: str, paths: list[str], keys: bytes) -> bool:
    """Whether the files' lstat keys are `keys`, lstat-ing in as many processes as allowed."""
    n = forking.workers() if len(paths) > PARALLEL_OVER else 1
    if n == 1:
        return pack(list(map(os.lstat, [f"{root}/{p}" for p in paths]))) == keys
    step = -(-len(paths) // n)
    slices = [(i, min(i + step, len(paths))) for i in range(0, len(paths), step)]
    width = 8 * len(_KEY_FIELDS)

    def check(span: Sequence[tuple[int, int]]) -> bytes:
        ((a, b),) = span
        got = pack(list(map(os.lstat, [f"{root}/{p}" for p in paths[a:b]])))
        return b"1" if got == keys[a * width : b * width] else b"0"

    try:
        return forking.split(check, [[sl] for sl in slices]) == [b"1"] * len(slices)
    except forking.ChildFailed:
        return False  # a file vanished in a child's part, most likely: walk instead


def _stats(keys: bytes) -> list[os.stat_result]:
    """stat results from packed keys (what a memo vouches for), for the rare reader."""
    values = array.array("q")
    values.frombytes(keys)
    out = []
    for i in range(0, len(values), 5):
        mode, size, mtime, ctime, ino = values[i : i + 5]
        out.append(
            os.stat_result(
                (mode, ino % _SPAN, 0, 0, 0, 0, size, 0, mtime // 10**9, ctime // 10**9),
                {"st_mtime_ns": mtime, "st_ctime_ns": ctime},
            )
        )
    return out


def _load(file: Path) -> Any:
    try:
        raw = file.read_bytes()
    except OSError:
        return None
    head = len(MAGIC)
    if raw[:head] != MAGIC or len(raw) < head + 32:
        return None
    payload = raw[head + 32 :]
    if hashlib.sha256(payload).digest() != raw[head : head + 32]:
        return None
    try:
        doc = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def _save(file: Path, value: Any) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    payload = marshal.dumps(value)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".stat-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _memos(raw: Any) -> dict[str, Memo]:
    out = {}
    for key, value in (raw or {}).items():
        if isinstance(key, str) and isinstance(value, tuple) and len(value) == len(Memo._fields):
            out[key] = Memo(*value)
    return out


class StatCache:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.memo_file = file.with_name(file.name + ".memo")
        self._files: dict[str, dict[str, Entry]] | None = None
        """algorithm -> repo-relative path -> entry; loaded on first use."""
        self.memos: dict[str, Memo] = _memos(_load(self.memo_file))
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

    def hit(self, fs: dataspec.FileSet) -> Memo | None:
        """The memo of `fs`'s dataset when it vouches for exactly these files and stats."""
        if fs.from_memo:
            return self.memos[fs.spec.memo_key]
        memo = self.memos.get(fs.spec.memo_key)
        if memo is None or memo.paths != "\0".join(fs.path_list()):
            return None
        return memo if memo.keys == pack([st for _, st in fs.files]) else None

    def remember(self, fs: dataspec.FileSet, digest: str, size: int) -> None:
        """Memo a dataset whose every file is in the table; not when any entry is racy."""
        key = fs.spec.memo_key
        table = self.table(fs.spec.algorithm)
        entries = [table[p] for p, _ in fs.files]
        if any(max(e[0][1], e[0][2]) >= e[2] for e in entries):
            self.forget(key)
            return
        memo = Memo(
            "\0".join(fs.path_list()),
            pack([st for _, st in fs.files]),
            digest,
            size,
            fs.kind,
            fs.base,
            _top(fs),
            fs.real,
            fs.plain and bool(fs.real),
            [d for d, _, _ in fs.dirs],
            [i for _, i, _ in fs.dirs],
            [n for _, _, n in fs.dirs],
        )
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
            _save(self.memo_file, {k: tuple(m) for k, m in self.memos.items()})
            self.memos_dirty = False
