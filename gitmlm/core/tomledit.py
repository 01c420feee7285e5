"""Editing one [datasets.NAME] table of mlm.toml as text, keeping the user's comments and layout.

Every edit is checked by parsing the result: if it does not mean exactly the intended change
(a declaration written in a form this editor does not handle, say), nothing is written and the
user is told what to add by hand.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w

from gitmlm.errors import MlmError

_HEADER = re.compile(r"^\s*\[")


def _header(name: str) -> re.Pattern[str]:
    quoted = re.escape(name)
    return re.compile(
        rf"""^\s*\[\s*datasets\s*\.\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*\]\s*(?:\#.*)?$"""
    )


_PATH_KEY = re.compile(r"""^\s*(?:path|"path"|'path')\s*=""")


def _section(lines: list[str], name: str) -> tuple[int, int] | None:
    """(header line, end line) of [datasets.NAME], end exclusive."""
    header = _header(name)
    for i, line in enumerate(lines):
        if header.match(line):
            end = i + 1
            while end < len(lines) and not _HEADER.match(lines[end]):
                end += 1
            return i, end
    return None


def _parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MlmError(f"mlm.toml: invalid TOML ({exc}); fix the file and try again") from exc


def set_path(text: str, name: str, path: str) -> str:
    """mlm.toml with [datasets.NAME] path set to `path` (the table is added when missing)."""
    before = _parse(text)
    line = tomli_w.dumps({"path": path})
    lines = text.splitlines(keepends=True)
    found = _section(lines, name)
    if found is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = f"{text}{sep}\n[datasets.{name}]\n{line}"
    else:
        start, end = found
        for i in range(start + 1, end):
            if _PATH_KEY.match(lines[i]):
                lines[i] = line
                break
        else:
            lines.insert(start + 1, line)
        new = "".join(lines)
    want = _with(before, name, path)
    if _parse_or_none(new) != want:
        raise MlmError(
            f"could not edit mlm.toml for you; add this to it by hand:\n"
            f'[datasets.{name}]\npath = "{path}"'
        )
    return new


def remove(text: str, name: str) -> str:
    """mlm.toml without [datasets.NAME]."""
    before = _parse(text)
    lines = text.splitlines(keepends=True)
    found = _section(lines, name)
    if found is not None:
        start, end = found
        # Comment lines just above the next header belong to that next table.
        while end > start + 1 and lines[end - 1].lstrip().startswith("#"):
            end -= 1
        if end == len(lines):  # the last table: the blank line that set it apart goes too
            while start > 0 and not lines[start - 1].strip():
                start -= 1
        del lines[start:end]
    new = "".join(lines)
    want = dict(before)
    want["datasets"] = {k: v for k, v in before.get("datasets", {}).items() if k != name}
    if _norm(_parse_or_none(new)) != _norm(want):
        raise MlmError(f"could not edit mlm.toml for you; remove [datasets.{name}] by hand")
    return new


def _norm(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    # An empty [datasets] and none at all mean the same.
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if not (k == "datasets" and not v)}


def _with(doc: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    out = dict(doc)
    datasets = {
        k: dict(v) if isinstance(v, dict) else v for k, v in out.get("datasets", {}).items()
    }
    entry = datasets.get(name)
    datasets[name] = {**entry, "path": path} if isinstance(entry, dict) else {"path": path}
    out["datasets"] = datasets
    return out


def _parse_or_none(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
