"""Select runs: filter with the --where language, order, limit. Shared by the CLI and the API."""

from __future__ import annotations

import math
from typing import Any

from gitmlm.core import where
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
    """`select` over rows already flattened (the ui keeps them between requests)."""
    if where_text:
        keep = where.compile_where(where_text)
        rows = [r for r in rows if keep(r)]
    for column, desc in reversed(parse_order(order_by)):
        present = [r for r in rows if _sort_key(r.get(column))[0] < 2]
        missing = [r for r in rows if _sort_key(r.get(column))[0] == 2]
        present.sort(key=lambda r: _sort_key(r.get(column)), reverse=desc)
        rows = present + missing
    return rows[:limit] if limit is not None else rows


def select_runs(
    repo: Repo,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    placed_only: bool = False,
) -> tuple[list[dict[str, Any]], runs.Listing]:
    listing = runs.list_runs(repo, placed_only=placed_only)
    return select(listing, where_text, order_by, limit), listing
