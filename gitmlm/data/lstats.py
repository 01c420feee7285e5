"""Files' lstat as one bytes value, which the stat cache's memos compare: the hot loop of an
unchanged `data status` (one lstat per file, 100,000 files) and nothing else.

The keys of n files are seven columns: inode, size, mtime seconds, mtime nanoseconds, ctime
seconds, ctime nanoseconds (8 bytes each) and the mode (2 bytes) — the layout of Linux's
`struct statx`, so that on Linux a folder's files are lstat-ed by `statx(2)` called through
ctypes into one buffer and their columns are cut out of it by strided memoryviews, with no
Python object per file beyond the call's arguments (about a third less CPU than `os.lstat`,
which builds a stat result of 19 fields with float times). Elsewhere, or when `statx` is not
there (an old C library, a sandbox refusing it), `os.lstat` gives the same bytes.
"""

from __future__ import annotations

import array
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

WIDTH = 6 * 8 + 2
"""Bytes per file."""
_NS = 10**9
_SPAN = 1 << 64
_HALF = 1 << 63
_INT_FIELDS = attrgetter("st_ino", "st_size")
_TIMES = attrgetter("st_mtime_ns", "st_ctime_ns")

# struct statx (linux/stat.h, the same on every architecture): 256 bytes; in 8-byte words,
# stx_ino is word 4, stx_size 5, stx_ctime 12-13 and stx_mtime 14-15 (seconds, then
# nanoseconds with 4 reserved bytes the kernel zeroes); stx_mode is 2-byte word 14.
_STATX_SIZE = 256
_STATX_WORDS = (4, 5, 14, 15, 12, 13)
_STATX_MODE = 14
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_BASIC_STATS = 0x7FF


def pack(stats: Sequence[os.stat_result]) -> bytes:
    """The keys of `stats` (see the module's docstring)."""
    n = len(stats)
    ints = array.array("q", _fold(chain.from_iterable(map(_INT_FIELDS, stats))))
    times = array.array(
        "q", chain.from_iterable(map(divmod, chain.from_iterable(map(_TIMES, stats)), repeat(_NS)))
    )
    cols = [ints[0::2], ints[1::2], times[0::4], times[1::4], times[2::4], times[3::4]]
    modes = array.array("H", [st.st_mode & 0xFFFF for st in stats])
    out = b"".join(c.tobytes() for c in cols) + modes.tobytes()
    assert len(out) == WIDTH * n
    return out


def _fold(values: Any) -> list[int]:
    """Values in the signed 64-bit range (a 64-bit inode above 2**63 wraps, as C would)."""
    return [(v + _HALF) % _SPAN - _HALF if v >= _HALF else v for v in values]


def part(keys: bytes, first: int, last: int) -> bytes:
    """The keys of files [first, last) of `keys`, as `pack` would give them."""
    n = len(keys) // WIDTH
    cols = [keys[8 * (c * n + first) : 8 * (c * n + last)] for c in range(6)]
    return b"".join(cols) + keys[48 * n + 2 * first : 48 * n + 2 * last]


def unpack(keys: bytes) -> list[os.stat_result]:
    """stat results from keys (what a memo vouches for), for the rare reader."""
    n = len(keys) // WIDTH
    values = array.array("q")
    values.frombytes(keys[: 48 * n])
    modes = array.array("H")
    modes.frombytes(keys[48 * n :])
    out = []
    for i in range(n):
        ino, size, msec, mns, csec, cns = values[i::n]
        out.append(
            os.stat_result(
                (modes[i], ino % _SPAN, 0, 0, 0, 0, size, 0, msec, csec),
                {"st_mtime_ns": msec * _NS + mns, "st_ctime_ns": csec * _NS + cns},
            )
        )
    return out


Lstat = Callable[[int, list[bytes]], bytes | None]
"""(open folder, names in it) -> their keys, or None when one of them could not be lstat-ed."""


def _by_os(fd: int, names: list[bytes]) -> bytes | None:
    try:
        return pack(list(map(partial(os.lstat, dir_fd=fd), names)))
    except OSError:
        return None


def _statx() -> Lstat | None:
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None).statx
    except (OSError, AttributeError):  # no statx in this C library
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    call.restype = ctypes.c_int
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    size = 1
    flags, mask = _AT_SYMLINK_NOFOLLOW, _STATX_BASIC_STATS

    def lstat(fd: int, names: list[bytes]) -> bytes | None:
        nonlocal buf, size
        n = len(names)
        if n > size:
            size = max(n, 2 * size)
            buf = ctypes.create_string_buffer(_STATX_SIZE * size)
        at = ctypes.addressof(buf)
        done = list(map(call, repeat(fd, n), names, repeat(flags, n), repeat(mask, n),
                        range(at, at + _STATX_SIZE * n, _STATX_SIZE)))  # fmt: skip
        if any(done):
            return None
        raw = memoryview(buf).cast("B")[: _STATX_SIZE * n]
        words = raw.cast("q")
        cols = [words[w :: _STATX_SIZE // 8].tobytes() for w in _STATX_WORDS]
        return b"".join(cols) + raw.cast("H")[_STATX_MODE :: _STATX_SIZE // 2].tobytes()

    return lstat


STATX_OVER = 2_000
"""Files from which statx is worth loading ctypes for (about a millisecond)."""
_chosen: Lstat = _by_os
_tried = False


def choose(fd: int, files: int) -> None:
    """Switch to statx, once per process, for a pass over `files` files (when they are enough)
    if it and os.lstat agree on the folder open as `fd`. Called before forking, so helpers
    inherit the choice."""
    global _chosen, _tried
    if files < STATX_OVER or _tried:
        return
    _tried = True
    fast = _statx()
    here = [b"."]
    if fast is not None and fast(fd, here) == _by_os(fd, here):
        _chosen = fast


def lstat_in(fd: int, names: list[bytes]) -> bytes | None:
    """The keys of `names` in the folder open as `fd`, or None when one could not be lstat-ed."""
    return _chosen(fd, names)
