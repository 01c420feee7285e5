"""Select runs: filter with the --where language, order, limit. Shared by the CLI and the API."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gitmlm.core import refs, where
from gitmlm.core.git import Repo
from gitmlm.core.records import flat_row
from gitmlm.errors import MlmError
from gitmlm.tracking import record as runs


def parse_order(order_by: str | list[str] | None) -> list[tuple[str, bool]]:
    """`metrics.acc desc, name` or `-metrics.acc` -> [(column, descending)]."""
    if order_by is None:
        return [("started", True)]
    items = order_by if isinstance(order_by, list) else order_by.split(",")
    keys: list[tuple[str, bool]] = []
    for item in items:
        words = item.strip().split()
        if not words:
            continue
        column, desc = words[0], False
        if column.startswith("-"):
            column, desc = column[1:], True
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            desc = words[1].lower() == "desc"
        elif len(words) > 1:
            raise MlmError(f"bad --order-by {item.strip()!r}: use COLUMN [asc|desc] or -COLUMN")
        keys.append((column, desc))
    return keys


def _sort_key(value: Any) -> tuple[int, Any]:
    # Missing and NaN values sort last in either direction; numbers before strings.
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return (2, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def select(
    listing: runs.Listing,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    return select_rows([flat_row(r) for r in listing.runs], where_text, order_by, limit)


def select_rows(
    rows: list[dict[str, Any]],
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    if where_text:
        keep = where.compile_where(where_text)
        rows = [r for r in rows if keep(r)]
    for column, desc in reversed(parse_order(order_by)):
        present = [r for r in rows if _sort_key(r.get(column))[0] < 2]
        missing = [r for r in rows if _sort_key(r.get(column))[0] == 2]
        present.sort(key=lambda r: _sort_key(r.get(column)), reverse=desc)
        rows = present + missing
    return rows[:limit] if limit is not None else rows


_listed: dict[tuple[Path, bool], tuple[str | None, runs.Listing, list[dict[str, Any]]]] = {}
"""The last listing of each repository in this process, with its rows, by notes tip."""


def select_runs(
    repo: Repo,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    placed_only: bool = False,
) -> tuple[list[dict[str, Any]], runs.Listing]:
    """Rows of the runs that match. A process that asks again (a notebook) while the notes
    have not moved reuses its listing and rows: only the filter and the order run again."""
    key = (repo.common_dir, placed_only)
    tip = repo.ref(refs.RUNS)
    memo = _listed.get(key)
    if memo is not None and memo[0] == tip:
        listing, rows = memo[1], memo[2]
    else:
        listing = runs.list_runs(repo, placed_only=placed_only)
        rows = [flat_row(r) for r in listing.runs]
        # A running run may crash (its status is worked out at listing time): not kept.
        if not any(r.status == "running" for r in listing.runs):
            _listed[key] = (tip, listing, rows)
    return select_rows(rows, where_text, order_by, limit), listing
