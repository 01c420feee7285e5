"""The stat cache: which digest a file had when it had a given (size, mtime, ctime, inode), so
an unchanged file is never read again. One cache per work tree under .git/mlm/cache/stat/.

Two files. The table (`<worktree>`) maps each file to its stat key, digest and stamp; it is
loaded only when something changed. The memos (`<worktree>.memo`) hold, per dataset, what its
last verified enumeration saw — its files, grouped by folder, and their packed lstat (type,
size, mtime, ctime, inode), and the lstat of each folder the walk listed, taken before it was
listed — with the digest. An unchanged dataset is answered without a walk: lstat its folders,
then its files relative to their open folder (the kernel resolves one name, not the whole
path; `lstats`: statx on Linux, no Python object per file), and compare bytes values; no
folder is listed.

When a memo may answer without a walk (`quick`): the walk met no symlink; the dataset's top
has the same real path; every folder listed has the same lstat (type, size, mtime, ctime,
inode) and its mtime and ctime are older than the stamp taken before the walk; every file's
lstat is the same. A name added to, removed from or renamed within a folder moves the folder's
mtime and ctime (POSIX), and a change after the folder's stat was taken gives a time not older
than the stamp, so it cannot hide behind an unchanged stat; a change of a file's content does
not move its folder, which is why every file is still lstat-ed. Anything else is a walk, then
the table.

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

import contextlib
import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gitmlm.data import forking, lstats
from gitmlm.data import spec as dataspec
from gitmlm.data.hashing import Hashed, StatKey

MAGIC = b"gitmlm-stat-4 py%d.%d marshal%d\n" % (*sys.version_info[:2], marshal.version)
"""The format and the Python that wrote it (marshal's format follows Python's version)."""

Entry = tuple[StatKey, str, int]
"""(stat key, hex digest, stamp ns)."""


class Memo(NamedTuple):
    """A dataset's last verified state."""

    folders: list[str]
    """The folders holding its files (repo-relative, "" for the root), one per run of files
    sharing a folder in walk order."""
    names: list[str]
    """Per entry of `folders`: its files' names joined by NUL, in walk order."""
    keys: bytes
    """The files' lstat keys (`lstats.pack`), in walk order."""
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
    """The folders the walk listed."""
    dir_keys: bytes
    """Their lstat keys (`lstats.pack`), each taken before the folder was listed."""
    stamp: int
    """The file-system time before the walk (0: not known, so `quick` never answers)."""

    def paths(self) -> list[str]:
        """The files, repo-relative, in walk order."""
        out: list[str] = []
        for folder, names in zip(self.folders, self.names, strict=True):
            if folder:
                prefix = folder + "/"
                out += [prefix + n for n in names.split("\0")]
            else:
                out += names.split("\0")
        return out


def _groups(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """`paths` as runs sharing a folder: (folders, names joined by NUL)."""
    folders: list[str] = []
    names: list[list[str]] = []
    for p in paths:
        folder, _, name = p.rpartition("/")
        if not folders or folders[-1] != folder:
            folders.append(folder)
            names.append([])
        names[-1].append(name)
    return folders, ["\0".join(n) for n in names]


def fresh(entry: Entry | None, key: StatKey) -> bool:
    """Whether `entry` vouches for a file that now has `key` (not racy, stat unchanged)."""
    if entry is None or entry[0] != key:
        return False
    return max(key[1], key[2]) < entry[2]


def _dir_proof(fs: dataspec.FileSet) -> tuple[list[str], bytes]:
    return [d for d, _ in fs.dirs], lstats.pack([st for _, st in fs.dirs])


def _top(fs: dataspec.FileSet) -> str:
    return fs.spec.path if fs.kind in ("file", "dir") else fs.base


def _full(root: str, rel: str) -> str:
    return f"{root}/{rel}" if rel else root


def quick(root: str, spec: dataspec.Spec, memo: Memo | None) -> dataspec.FileSet | None:
    """The file set `memo` vouches for when nothing it saw has changed (see the module's
    docstring), else None: then the caller walks."""
    if memo is None or not memo.plain or not _settled(memo.dir_keys, memo.stamp):
        return None
    try:
        if os.path.realpath(_full(root, memo.top)) != memo.real:
            return None
        if lstats.pack(list(map(os.lstat, [_full(root, d) for d in memo.dirs]))) != memo.dir_keys:
            return None
        if not _same_stats(root, memo):
            return None
    except OSError:
        return None
    fs = dataspec.FileSet(spec, memo.kind, memo.base, real=memo.real, from_memo=True)
    fs.lister = memo.paths
    fs.loader = lambda: list(zip(fs.path_list(), lstats.unpack(memo.keys), strict=True))
    return fs


def _settled(dir_keys: bytes, stamp: int) -> bool:
    """Whether every folder's mtime and ctime are older than `stamp` (else a change within the
    same tick could have kept its stat)."""
    return all(max(st.st_mtime_ns, st.st_ctime_ns) < stamp for st in lstats.unpack(dir_keys))


PARALLEL_OVER = 5_000
"""Files above which the lstat pass is split across processes (when `forking` allows): a fork
costs about as much as lstat-ing a thousand files."""
_OPEN_DIR = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
"""A folder opened only to lstat names in it (O_PATH: no read permission needed)."""


def _check(root: str, memo: Memo, counts: list[int], first: int, last: int) -> bool:
    """Whether files [first, last) of the memo (in walk order) are unchanged; `counts`: files
    per entry of `memo.folders`."""
    start = 0
    for folder, names, count in zip(memo.folders, memo.names, counts, strict=True):
        end = start + count
        a, b = max(first, start), min(last, end)
        if a < b:
            listed = os.fsencode(names).split(b"\0")[a - start : b - start]
            fd = os.open(_full(root, folder), _OPEN_DIR)
            try:
                got = lstats.lstat_in(fd, listed)
            finally:
                os.close(fd)
            if got is None or got != lstats.part(memo.keys, a, b):
                return False
        start = end
    return True


def _same_stats(root: str, memo: Memo) -> bool:
    """Whether the files' lstat keys are the memo's, lstat-ing in as many processes as allowed
    (each takes an equal run of files in walk order)."""
    counts = [names.count("\0") + 1 for names in memo.names]
    total = sum(counts)
    if total * lstats.WIDTH != len(memo.keys):
        return False
    fd = os.open(_full(root, memo.folders[0]), _OPEN_DIR)
    try:
        lstats.choose(fd, total)  # before any fork: helpers inherit the choice
    finally:
        os.close(fd)
    n = forking.workers() if total > PARALLEL_OVER else 1
    if n == 1:
        return _check(root, memo, counts, 0, total)
    step = -(-total // n)
    parts = [(i, min(i + step, total)) for i in range(0, total, step)]

    def check(span: Sequence[tuple[int, int]]) -> bytes:
        ((first, last),) = span
        return b"1" if _check(root, memo, counts, first, last) else b"0"

    try:
        return forking.split(check, [[p] for p in parts]) == [b"1"] * len(parts)
    except forking.ChildFailed:
        return False  # a file vanished in a child's part, most likely: walk instead


def _load(file: Path) -> Any:
    try:
        raw = file.read_bytes()
    except OSError:
        return None
    head = len(MAGIC)
    if raw[:head] != MAGIC or len(raw) < head + 32:
        return None
    payload = memoryview(raw)[head + 32 :]  # not a copy: the memo of 100,000 files is 6 MB
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
        """The memo of `fs`'s dataset when it vouches for exactly these files and stats. A walk
        that saw them gives the memo its folders' stats and stamp, so that the next pass can
        answer without a walk (a folder touched without a change of its files settles)."""
        if fs.from_memo:
            return self.memos[fs.spec.memo_key]
        memo = self.memos.get(fs.spec.memo_key)
        if memo is None or (memo.folders, memo.names) != _groups(fs.path_list()):
            return None
        if memo.keys != lstats.pack([st for _, st in fs.files]):
            return None
        dirs, dir_keys = _dir_proof(fs)
        if (dirs, dir_keys) != (memo.dirs, memo.dir_keys) or not _settled(dir_keys, memo.stamp):
            memo = memo._replace(dirs=dirs, dir_keys=dir_keys, stamp=fs.stamp)
            self.memos[fs.spec.memo_key] = memo
            self.memos_dirty = True
        return memo

    def remember(self, fs: dataspec.FileSet, digest: str, size: int) -> None:
        """Memo a dataset whose every file is in the table; not when any entry is racy."""
        key = fs.spec.memo_key
        table = self.table(fs.spec.algorithm)
        entries = [table[p] for p, _ in fs.files]
        if any(max(e[0][1], e[0][2]) >= e[2] for e in entries):
            self.forget(key)
            return
        folders, names = _groups(fs.path_list())
        dirs, dir_keys = _dir_proof(fs)
        memo = Memo(
            folders,
            names,
            lstats.pack([st for _, st in fs.files]),
            digest,
            size,
            fs.kind,
            fs.base,
            _top(fs),
            fs.real,
            fs.plain and bool(fs.real),
            dirs,
            dir_keys,
            fs.stamp,
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
