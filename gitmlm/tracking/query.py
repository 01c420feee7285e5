"""Select runs: filter with the --where language, order, limit. Shared by the CLI and the API.

Columns are checked against the runs being queried: a name no run has is an error with the
nearest known name, never a silent null. Ordering follows MLflow's: values in the asked
direction, then NaN, then missing values; `''` is a value like any other.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from gitmlm.core import refs, where
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES, flat_row
from gitmlm.tracking import record as runs

_DEFAULT_ORDER = [("started", True)]


def parse_order(order_by: str | list[str] | None) -> list[tuple[str, bool]]:
    """`metrics.acc desc, name` or `-metrics.acc` (or a list of such) -> [(column, descending)]."""
    if order_by is None:
        return list(_DEFAULT_ORDER)
    items = order_by if isinstance(order_by, list) else [order_by]
    return [key for item in items for key in where.parse_order(item)]


def _epoch_ms(stamp: object) -> int | None:
    """MLflow's start_time/end_time: milliseconds since the epoch."""
    if not isinstance(stamp, str) or not stamp:
        return None
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Numbers before strings; the rank of NaN (1) and missing (2) is fixed by the caller.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _rank(value: Any) -> int:
    if value is None:
        return 2
    if isinstance(value, float) and math.isnan(value):
        return 1
    return 0


def _order(rows: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    # Stable sorts from the last key to the first; each key puts NaN after the values, in either
    # direction, and missing after NaN (MLflow's order).
    for column, desc in reversed(keys):
        groups: list[list[dict[str, Any]]] = [[], [], []]
        for row in rows:
            groups[_rank(row.get(column))].append(row)
        groups[0].sort(key=lambda r: _sort_key(r[column]), reverse=desc)
        rows = groups[0] + groups[1] + groups[2]
    return rows


def select(
    listing: runs.Listing,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    return _select([flat_row(r) for r in listing.runs], where_text, order_by, limit)


def select_rows(
    rows: list[dict[str, Any]],
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """`select` over rows already flattened (the ui keeps them between requests); the rows
    given are left as they are."""
    return _select(rows, where_text, order_by, limit)  # _select works on copies


def _select(
    rows: list[dict[str, Any]],
    where_text: str | None,
    order_by: str | list[str] | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    known = set(ATTRIBUTES).union(where.DERIVED, *rows)
    # With no runs at all there are no data columns to check names against, and no answer to
    # get wrong: any params./metrics./... name is accepted.
    open_prefixes = () if rows else where.DATA_PREFIXES
    keep = where.compile_where(where_text, known, open_prefixes) if where_text else None
    keys = []
    for column, desc in parse_order(order_by):
        name = where.canonical(column, known)
        where.check_column(name, known, open_prefixes, "--order-by")
        keys.append((name, desc))
    # The rows carry MLflow's derived times only while they are filtered and ordered (copies:
    # the rows given stay as they were).
    rows = [
        {**row, "start_time": _epoch_ms(row["started"]), "end_time": _epoch_ms(row["ended"])}
        for row in rows
    ]
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    rows = _order(rows, keys)
    if limit is not None:
        rows = rows[:limit]
    for row in rows:
        del row["start_time"], row["end_time"]
    return rows


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
