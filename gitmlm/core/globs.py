"""Path globs as mlm.toml writes them, with .gitignore's rules of thumb.

`*` and `?` stay within one path segment, `**` spans segments, a pattern without a slash
matches a name at any depth (`*.pkl`), one with a slash is anchored at the repository root
(`models/*.pkl`), and a pattern that names a directory covers everything below it (`data`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SPECIAL = re.compile(r"[*?\[]")


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _normalise(pattern: str) -> str:
    p = pattern.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.strip("/")


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    anchored: bool
    literal: tuple[str, ...]
    """The leading segments without wildcards: only directories along them can hold a match."""


def _compile(pattern: str) -> _Pattern | None:
    p = _normalise(pattern)
    if not p:
        return None
    anchored = "/" in p
    body = _translate(p)
    prefix = "" if anchored else "(?:.*/)?"
    regex = re.compile(f"{prefix}{body}(?:/.*)?", re.DOTALL)
    literal: list[str] = []
    for segment in p.split("/"):
        if _SPECIAL.search(segment):
            break
        literal.append(segment)
    return _Pattern(regex, anchored, tuple(literal))


class Globs:
    """A set of patterns: does a path match, and could anything below a directory match."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p for p in patterns if _normalise(p))
        self._compiled = [c for c in map(_compile, self.patterns) if c is not None]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def match(self, path: str) -> bool:
        """True when `path` (repository-relative, `/`-separated) or a folder above it matches."""
        return any(c.regex.fullmatch(path) for c in self._compiled)

    def touches(self, folder: str) -> bool:
        """Conservatively: could a path inside `folder` match? (False only when it cannot.)"""
        parts = folder.split("/")
        for c in self._compiled:
            if not c.anchored:
                return True
            lit = c.literal
            common = min(len(lit), len(parts))
            if lit[:common] == tuple(parts[:common]):
                return True
        return False
