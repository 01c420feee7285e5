"""Run ids: time-sortable and unique across machines, abbreviable like git hashes."""

from __future__ import annotations

import os
import time

# Crockford base32, lower case: sortable as plain strings, no I/L/O/U to misread.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
SHORT = 12
"""Displayed length: 10 characters of millisecond time and 2 of randomness."""


def new_run_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds since the epoch, then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_run_id_prefix(text: str) -> bool:
    return 0 < len(text) <= 26 and all(c in _ALPHABET for c in text.lower())


def shortest_unique(ids: list[str], minimum: int = SHORT) -> dict[str, str]:
    """The shortest prefix of each id (at least `minimum` long) that no other id shares."""
    ordered = sorted(set(ids))
    out: dict[str, str] = {}
    for i, rid in enumerate(ordered):
        need = minimum
        for other in (ordered[i - 1] if i else "", ordered[i + 1] if i + 1 < len(ordered) else ""):
            common = 0
            while common < min(len(rid), len(other)) and rid[common] == other[common]:
                common += 1
            need = max(need, common + 1)
        out[rid] = rid[: min(need, len(rid))]
    return out
