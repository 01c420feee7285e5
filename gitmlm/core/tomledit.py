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


_PATH_KEY = re.compile(r"""^\s*(?:path|"path"|'path')\s*=""")


def _section(lines: list[str], name: str) -> tuple[int, int] | None:
    """(header line, end line) of [datasets.NAME], end exclusive (names hold no dots)."""
    return _table_span(lines, f"datasets.{name}")


def _parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
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
    except (tomllib.TOMLDecodeError, RecursionError):
        return None


# --- any table, by its dotted name (storage remotes use these) ----------------------------------


def _table_header(dotted: str) -> re.Pattern[str]:
    parts = [
        rf"""(?:{re.escape(p)}|"{re.escape(p)}"|'{re.escape(p)}')""" for p in dotted.split(".")
    ]
    return re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(parts) + r"\s*\]\s*(?:\#.*)?$")


def _table_span(lines: list[str], dotted: str) -> tuple[int, int] | None:
    header = _table_header(dotted)
    for i, line in enumerate(lines):
        if header.match(line):
            end = i + 1
            while end < len(lines) and not _HEADER.match(lines[end]):
                end += 1
            return i, end
    return None


def _dig(doc: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = doc
    for part in dotted.split("."):
        node = node.setdefault(part, {})
    return node


def _pruned(doc: Any) -> Any:
    # An empty table and none at all mean the same.
    if not isinstance(doc, dict):
        return doc
    out = {k: _pruned(v) for k, v in doc.items()}
    return {k: v for k, v in out.items() if v != {}}


def _checked(new: str, want: dict[str, Any], by_hand: str) -> str:
    got = _parse_or_none(new)
    if got is None or _pruned(got) != _pruned(want):
        raise MlmError(f"could not edit mlm.toml for you; {by_hand}")
    return new


def set_keys(text: str, dotted: str, values: dict[str, Any]) -> str:
    """mlm.toml with keys of table [DOTTED] set (the table is added at the end when missing)."""
    import copy

    before = _parse(text)
    want = copy.deepcopy(before)
    _dig(want, dotted).update(values)
    lines = text.splitlines(keepends=True)
    span = _table_span(lines, dotted)
    if span is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = f"{text}{sep}\n[{dotted}]\n{tomli_w.dumps(values)}"
    else:
        start, end = span
        for k, v in values.items():
            line = tomli_w.dumps({k: v})
            pattern = re.compile(rf"""^\s*(?:{re.escape(k)}|"{re.escape(k)}")\s*=""")
            for i in range(start + 1, end):
                if pattern.match(lines[i]):
                    lines[i] = line
                    break
            else:
                lines.insert(start + 1, line)
                end += 1
        new = "".join(lines)
    body = tomli_w.dumps(values)
    return _checked(new, want, f"set this in it by hand:\n[{dotted}]\n{body}")


def remove_table(text: str, dotted: str) -> str:
    """mlm.toml without table [DOTTED] (a no-op when it is not there)."""
    import copy

    before = _parse(text)
    want = copy.deepcopy(before)
    *parents, leaf = dotted.split(".")
    node = want
    for part in parents:
        node = node.get(part, {})
    node.pop(leaf, None)
    lines = text.splitlines(keepends=True)
    span = _table_span(lines, dotted)
    if span is not None:
        start, end = span
        while end > start + 1 and lines[end - 1].lstrip().startswith("#"):
            end -= 1
        del lines[start:end]
    return _checked("".join(lines), want, f"remove [{dotted}] by hand")
