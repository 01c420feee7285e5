"""The local object store: bytes addressed by the digest records already carry.

Layout under the cache root (default `.git/mlm/objects`, or git config `mlm.cache` for a folder
shared by many clones):

    sha256/ab/cdef…     one file per object, read-only, named by its digest
    packs/<id>.pack     small objects `data add` stored, many per file, with their index
    packs/<id>.idx      (gitmlm/storage/packs.py); every read of a packed object checks it
    tmp/                objects being written; renamed into place only once their digest is
                        checked, so a name under sha256/ always holds the bytes it names

Readers ask the Store (`has`, `read`, `size`, `place`, `path`), which looks for a loose file
first, then in the packs: stores written before packs existed read as they always did.

A folder (a logged `outputs/`) is one more object: its listing, "<hex>  <path>\\n" per file
sorted by path (the format of `sha256sum`), whose own sha256 is the folder's digest, the same
rule as a dataset's digest (gitmlm/data/manifest.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import uuid
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gitmlm.errors import MlmError
from gitmlm.storage import packs as packing

ALGORITHMS = ("sha256", "sha512", "blake2b", "sha3_256")
CHUNK = 1 << 20
TRIES = 3
_DIGEST = re.compile(r"(sha256|sha512|blake2b|sha3_256):([0-9a-f]{32,128})")


_HEX_LENGTH = {a: hashlib.new(a).digest_size * 2 for a in ALGORITHMS}


def parse(digest: str) -> tuple[str, str]:
    """ "sha256:<hex>" -> ("sha256", "<hex>"), or one clear error."""
    m = _DIGEST.fullmatch(digest.strip())
    if not m or len(m.group(2)) != _HEX_LENGTH[m.group(1)]:
        raise MlmError(f"{digest!r} is not a digest like sha256:<64 hex digits>")
    return m.group(1), m.group(2)


def key(digest: str) -> str:
    """The object's path relative to a store or remote root: `sha256/ab/cdef…`."""
    algorithm, hex_ = parse(digest)
    return f"{algorithm}/{hex_[:2]}/{hex_[2:]}"


def digest_of_key(rel: str) -> str | None:
    """The inverse of `key` for a listing entry; None for anything that is not an object."""
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] not in ALGORITHMS or len(parts[1]) != 2:
        return None
    text = f"{parts[0]}:{parts[1]}{parts[2]}"
    try:
        parse(text)
    except MlmError:
        return None
    return text


def listing(files: Mapping[str, str]) -> bytes:
    """A folder's listing object from path -> "sha256:<hex>"; its sha256 is the folder digest."""
    lines = (f"{files[p].partition(':')[2]}  {p}\n" for p in sorted(files, key=_sort_key))
    return "".join(lines).encode("utf-8", "surrogateescape")


def parse_listing(data: bytes) -> dict[str, str]:
    out = {}
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        hex_, sep, path = line.partition("  ")
        if not sep or not path:
            raise MlmError("a folder listing object is malformed; run `git mlm data verify`")
        out[path] = f"sha256:{hex_}"
    return out


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Stored:
    digest: str
    size: int


class Store:
    """One cache folder. Writers never lock: an object is written under a unique temporary
    name and renamed into place (or appended to a pack of this process's own), so two writers
    of the same object both succeed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.packs = packing.of(str(root))
        self._prefixes: dict[str, set[str]] = {}
        """Per algorithm, the loose `ab/` folders there were when `put_hashed` first looked:
        an object whose folder is not there is not loose (a stat saved per object)."""

    def loose(self, digest: str) -> Path:
        """Where the object's own file is (or would be)."""
        return self.root / key(digest)

    def path(self, digest: str) -> Path:
        """A read-only file holding the object, for callers that need a path (a model to load,
        a file to send). A packed object is first copied out of its pack, checked, into its
        loose place; loops over many objects use `read` or `place`, which do not copy."""
        loose = self.loose(digest)
        if not os.path.isfile(loose):
            data = self.packs.read(digest)
            if data is not None:
                self._write_loose(data, digest)
        return loose

    def has(self, digest: str) -> bool:
        if self.packs.pending(digest) or self.packs.find(digest, refresh=False) is not None:
            return True
        return os.path.isfile(self.fast_path(digest)) or self.packs.find(digest) is not None

    def size(self, digest: str) -> int:
        """The object's size in bytes; FileNotFoundError when the cache lacks it."""
        try:
            return os.stat(self.fast_path(digest)).st_size
        except FileNotFoundError:
            if self.packs.pending(digest):
                self.packs.flush()
            entry = self.packs.find(digest)
            if entry is None:
                raise
            return entry.length

    def read(self, digest: str) -> bytes:
        """The object's bytes (a packed one checked against its digest); FileNotFoundError
        when the cache lacks it."""
        try:
            with open(self.fast_path(digest), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            data = self.packs.read(digest)
            if data is None:
                raise
            return data

    def open(self, digest: str) -> BinaryIO:
        """The object's bytes as a file to read (a packed one checked first, in memory: packed
        objects are small); FileNotFoundError when the cache lacks it."""
        try:
            return open(self.fast_path(digest), "rb")
        except FileNotFoundError:
            data = self.packs.read(digest)
            if data is None:
                raise
            return io.BytesIO(data)

    def check(self, digest: str) -> str:
        """Re-hash a stored object: "ok", "bad" (its bytes do not match) or "missing". A
        packed object is checked in its pack, a loose one in its file, and both when both."""
        algorithm, hex_ = parse(digest)
        found = "missing"
        loose = self.loose(digest)
        if loose.is_file():
            if hash_path(loose, algorithm) != hex_:
                return "bad"
            found = "ok"
        if self.packs.find(digest) is not None:
            try:
                self.packs.read(digest)
            except MlmError:
                return "bad"
            found = "ok"
        return found

    def damaged_packed(self, digests: Iterable[str]) -> list[str]:
        """Those of `digests` held only in a pack whose bytes there do not match: checked
        before a checkout writes its first file, so a damaged pack stops it with nothing
        written (packed objects are small: reading them twice costs little)."""
        bad = []
        for digest in digests:
            if self.packs.find(digest, refresh=False) is None:
                continue
            if os.path.isfile(self.fast_path(digest)):
                continue
            try:
                self.packs.read(digest)
            except MlmError:
                bad.append(digest)
        return bad

    def place(self, digest: str, dst: Path | str, links: tuple[str, ...] = ()) -> str:
        """Put the object at `dst` (module `place`): a loose object by the first way of `links`
        that works; a packed one is written out of its pack (a copy: a pack cannot be linked)."""
        loose = self.fast_path(digest)
        if os.path.isfile(loose):
            return place(loose, dst, links or DEFAULT_LINKS)
        data = self.packs.read(digest)
        if data is None:
            return place(loose, dst, links or DEFAULT_LINKS)  # raises its clear error
        write_file(data, os.fspath(dst))
        return "copy"

    def fast_path(self, digest: str) -> str:
        """The loose file's path as text, for loops over 100,000 objects (pathlib costs more
        than the stat). Only the common shape skips the regex; anything else still goes
        through `key`."""
        algorithm, _, hex_ = digest.partition(":")
        if _HEX_LENGTH.get(algorithm) != len(hex_) or not _HEX.issuperset(hex_):
            return str(self.loose(digest))
        return f"{self.root}/{algorithm}/{hex_[:2]}/{hex_[2:]}"

    def tmp(self) -> Path:
        folder = self.root / "tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlmError(f"cannot create the object cache {self.root}: {exc.strerror}") from exc
        return folder / f"{uuid.uuid4().hex}.part"

    def loose_digests(self) -> set[str]:
        """Every object that has its own file (one walk)."""
        out = set()
        for algorithm in ALGORITHMS:
            top = self.root / algorithm
            if not top.is_dir():
                continue
            for sub in os.scandir(top):
                if sub.is_dir():
                    for entry in os.scandir(sub.path):
                        out.add(f"{algorithm}:{sub.name}{entry.name}")
        return out

    def digests(self) -> set[str]:
        """Every object in the cache, loose or packed."""
        self.flush()
        return self.loose_digests() | self.packs.digests()

    def delete(self, digests: Set[str]) -> None:
        """Remove objects from the cache, loose and packed (gc; a pack holding any of them is
        rewritten without them)."""
        for digest in digests:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.loose(digest))
        try:
            self.packs.remove(digests)
        except OSError as exc:
            raise _os_error(exc, f"cannot rewrite a pack in {self.root}") from exc

    # --- writing ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Make every object this process packed visible to others (see packs.py): callers
        that `put_hashed` call this once done, before they report the objects stored."""
        try:
            self.packs.flush()
        except OSError as exc:
            raise _os_error(exc, f"cannot store objects in {self.root}") from exc

    def adopt(self, tmp: Path, expected: str) -> None:
        """Move a finished temporary file into place if its content is `expected`; otherwise
        delete it and raise. Downloads end here, so nothing unchecked becomes visible."""
        algorithm, hex_ = parse(expected)
        try:
            got = hash_path(tmp, algorithm)
            if got != hex_:
                raise MlmError(
                    f"object {expected[:19]}… arrived with different content ({algorithm}:"
                    f"{got[:12]}…); it was not used"
                )
            self._place(tmp, expected)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _place(self, tmp: Path, digest: str) -> None:
        target = self.loose(digest)
        os.chmod(tmp, 0o444)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def _write_loose(self, data: bytes, digest: str) -> None:
        tmp = self.tmp()
        try:
            tmp.write_bytes(data)
            self._place(tmp, digest)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise _os_error(exc, f"cannot store an object in {self.root}") from exc

    def add_bytes(self, data: bytes, algorithm: str = "sha256") -> str:
        digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if not self.has(digest):
            self._write_loose(data, digest)
        return digest

    def put_checked(self, data: bytes, digest: str) -> bool:
        """Store downloaded bytes under `digest` if they match it (False, storing nothing, if
        they do not): a small object into this process's pack (complete it with `flush`), a
        larger one as its own file."""
        algorithm, hex_ = parse(digest)
        if hashlib.new(algorithm, data).hexdigest() != hex_:
            return False
        self.put_hashed(data, algorithm, hex_)
        return True

    def put_hashed(self, data: bytes, algorithm: str, hex_: str) -> None:
        """Store `data` under the digest its caller computed over exactly these bytes (hashing
        a small file reads it whole: `data.hashing` stores from that read). No second hash and
        no file per object: a small one is appended to this process's pack, which the caller
        completes with `flush` (`data add` does this for 100,000 files)."""
        digest = f"{algorithm}:{hex_}"
        packs = self.packs
        if packs.pending(digest) or packs.find(digest, refresh=False) is not None:
            return
        prefixes = self._prefixes.get(algorithm)
        if prefixes is None:
            try:
                prefixes = set(os.listdir(f"{self.root}/{algorithm}"))
            except (FileNotFoundError, NotADirectoryError):
                prefixes = set()
            self._prefixes[algorithm] = prefixes
        target = f"{self.root}/{algorithm}/{hex_[:2]}/{hex_[2:]}"
        if hex_[:2] in prefixes and os.path.exists(target):
            return
        if len(data) < packing.PACK_BELOW:
            try:
                packs.add(digest, data)
            except OSError as exc:
                raise _os_error(exc, f"cannot store an object in {self.root}") from exc
            return
        global _tmp_count
        _tmp_count += 1
        tmp = f"{self.root}/tmp/{os.getpid()}-{_tmp_count}.part"
        for _ in range(2):
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                try:
                    packing.write_all(fd, data)
                finally:
                    os.close(fd)
                try:
                    os.replace(tmp, target)
                except FileNotFoundError:  # the first object under this prefix
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(tmp, target)
                return
            except FileNotFoundError:  # no tmp/ folder yet
                self.tmp()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise _os_error(exc, f"cannot store an object in {self.root}") from exc
        raise MlmError(f"cannot create the object cache {self.root}")

    def add_file(self, src: Path, expected: str | None = None, algorithm: str = "sha256") -> Stored:
        """Copy a file in (reflink when the filesystem can), hashing what was copied; the copy is
        refused if the file changed while being read or does not match `expected`. With
        `expected` (a recorded dataset file), a small file is packed: `flush` completes it."""
        if expected is not None:
            algorithm = parse(expected)[0]
            if self.has(expected):
                return Stored(expected, self.size(expected))
            small = _read_small(src)
            if small is not None:
                # A small recorded file goes into this process's pack (complete it with
                # `flush`), checked against the digest it was recorded with.
                if not packing.matches(expected, small):
                    raise MlmError(
                        f"{src} no longer holds {expected[:19]}… (it was changed after it was "
                        "recorded); record it again"
                    )
                try:
                    self.packs.add(expected, small)
                except OSError as exc:
                    raise _os_error(exc, f"cannot store {src}") from exc
                return Stored(expected, len(small))
        for _ in range(TRIES):
            tmp = self.tmp()
            try:
                before = os.stat(src)
                if not stat.S_ISREG(before.st_mode):
                    raise MlmError(f"{src} is not a regular file")
                _clone_or_copy(src, tmp)
                hex_ = hash_path(tmp, algorithm)
                after = os.stat(src)
            except FileNotFoundError as exc:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise MlmError(f"{src} disappeared while being stored") from exc
            except OSError as exc:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise _os_error(exc, f"cannot store {src}") from exc
            if _same(before, after):
                digest = f"{algorithm}:{hex_}"
                if expected is not None and digest != expected:
                    tmp.unlink()
                    raise MlmError(
                        f"{src} no longer holds {expected[:19]}… (it was changed after it was "
                        "recorded); record it again"
                    )
                if self.has(digest):
                    tmp.unlink()
                else:
                    self._place(tmp, digest)
                return Stored(digest, after.st_size)
            tmp.unlink()
        raise MlmError(f"{src} kept changing while it was being stored; stop what writes it")

    def add_folder(self, folder: Path) -> tuple[str, dict[str, Stored]]:
        """Store every file below `folder` and its listing; (folder digest, path -> Stored)."""
        files: dict[str, Stored] = {}
        for path in sorted(_walk(folder)):
            rel = path.relative_to(folder).as_posix()
            files[rel] = self.add_file(path)
        if not files:
            raise MlmError(f"{folder} holds no files")
        digest = self.add_bytes(listing({p: s.digest for p, s in files.items()}))
        return digest, files

    def folder_files(self, digest: str) -> dict[str, str]:
        """The files of a stored folder: path -> digest."""
        return parse_listing(self.read(digest))


_HEX = frozenset("0123456789abcdef")
_tmp_count = 0
"""Numbers `put_hashed`'s temporary names, unique with the process id (a fork's count is its
own: its pid differs)."""


def _read_small(src: Path) -> bytes | None:
    """A regular file's bytes if it is small enough to pack, else None (also when it is not a
    regular file or cannot be read: the general path then says why)."""
    try:
        with open(src, "rb", buffering=0) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size >= packing.PACK_BELOW:
                return None
            return fh.read(packing.PACK_BELOW)
    except OSError:
        return None


def _walk(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            yield Path(dirpath) / name


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino) == (b.st_size, b.st_mtime_ns, b.st_ino)


def hash_path(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _os_error(exc: OSError, what: str) -> MlmError:
    if exc.errno == errno.ENOSPC:
        return MlmError(f"{what}: the disk is full; free some space and run the command again")
    return MlmError(f"{what}: {exc.strerror or exc}")


# --- placing objects into a work tree -----------------------------------------------------------

FICLONE = 0x40049409
"""Linux's ioctl that makes `dst` share `src`'s blocks (btrfs, xfs): a copy that costs nothing."""
LINKS = ("reflink", "hardlink", "copy")
DEFAULT_LINKS = ("reflink", "copy")
"""Hard links are opt-in: a program that writes into a linked file in place (root ignores the
read-only bit) would change the cached object too."""


_NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS)
_reflink_works = True
"""Cleared at the first refusal: a filesystem that cannot clone one file cannot clone the next,
and asking again per file costs a failed ioctl each."""


def _reflink(src: Path | str, dst: Path) -> None:
    global _reflink_works
    import fcntl

    if not _reflink_works:
        raise OSError(errno.EOPNOTSUPP, "reflink unsupported here")
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        except OSError as exc:
            if exc.errno in _NO_REFLINK:
                _reflink_works = False
            raise


def _clone_or_copy(src: Path | str, dst: Path) -> None:
    try:
        _reflink(src, dst)
    except OSError:
        _copy(src, dst)


def _copy(src: Path | str, dst: Path) -> None:
    import shutil

    shutil.copyfile(src, dst)


def place(obj: Path | str, dst: Path | str, links: tuple[str, ...] = DEFAULT_LINKS) -> str:
    """Put a cached object at `dst` by the first way in `links` this filesystem allows; returns
    the way used. Atomic: a reader sees the old file or the whole new one (a hard link appears
    whole; a clone or copy is made under a temporary name beside `dst`, then renamed). Text
    paths, because checkouts call this 100,000 times."""
    dst = os.fspath(dst)
    last: OSError | None = None
    for how in links:
        if how == "hardlink":
            try:
                os.link(obj, dst)
                return how
            except FileExistsError:
                pass  # replace it below, through a temporary name
            except OSError as exc:  # EXDEV (another filesystem), EPERM, ...: try the next way
                last = exc
                continue
        head, tail = os.path.split(dst)
        tmp = Path(f"{head}/.{tail}.{uuid.uuid4().hex[:8]}.mlm-tmp")
        try:
            if how == "reflink":
                _reflink(obj, tmp)
            elif how == "hardlink":
                os.link(obj, tmp)
            else:
                _copy(obj, tmp)
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, dst)
            return how
        except OSError as exc:
            last = exc
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if exc.errno == errno.ENOSPC:
                break
    assert last is not None
    raise _os_error(last, f"cannot write {dst}")


def write_file(data: bytes, dst: str) -> None:
    """Write `data` as a new file at `dst` atomically (a temporary name beside it, then a
    rename), as `place` copies: a packed object checked out."""
    head, tail = os.path.split(dst)
    tmp = f"{head}/.{tail}.{uuid.uuid4().hex[:8]}.mlm-tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            packing.write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _os_error(exc, f"cannot write {dst}") from exc


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


def check_links(text: str) -> tuple[str, ...]:
    ways = tuple(w.strip() for w in text.split(",") if w.strip())
    bad = [w for w in ways if w not in LINKS]
    if bad or not ways:
        raise MlmError(f"link {text!r}: use a comma-separated order of {', '.join(LINKS)}")
    return ways
