"""Select runs: filter with the --where language, order, limit. Shared by the CLI and the API."""

from __future__ import annotations

import difflib
import math
from typing import Any

from gitmlm.core import config, where
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


def order_rows(
    rows: list[dict[str, Any]], order_by: str | list[str] | None
) -> list[dict[str, Any]]:
    """Rows sorted by `order_by` (stable; missing values last in either direction)."""
    for column, desc in reversed(parse_order(order_by)):
        present = [r for r in rows if _sort_key(r.get(column))[0] < 2]
        missing = [r for r in rows if _sort_key(r.get(column))[0] == 2]
        present.sort(key=lambda r: _sort_key(r.get(column)), reverse=desc)
        rows = present + missing
    return rows


def best_order(repo: Repo, metric: str) -> str:
    """`metrics.M desc` or `asc`, as mlm.toml [metrics] declares M; undeclared is an error."""
    cfg = config.load(repo.workdir)
    direction = config.metric_direction(cfg, metric)
    if direction is None:
        declared = sorted(cfg.get("metrics", {}))
        close = difflib.get_close_matches(metric, declared, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise MlmError(
            f"--best {metric}: mlm.toml [metrics] does not say which way is better{hint}; "
            f'declare it, e.g. [metrics] {metric} = "max"'
        )
    return f"metrics.{metric} {'desc' if direction == 'max' else 'asc'}"


def as_tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in tree order: each run followed by its children (same relative order), with a
    `depth`. A run whose parent is not among the rows is a root."""
    by_id = {r["run_id"]: r for r in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for r in rows:
        parent = str(r.get("parent", ""))
        if parent in by_id and parent != r["run_id"]:
            children.setdefault(parent, []).append(r)
        else:
            roots.append(r)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(row: dict[str, Any], depth: int) -> None:
        if row["run_id"] in seen:  # a hand-made cycle: show each run once
            return
        seen.add(row["run_id"])
        out.append({**row, "depth": depth})
        for child in children.get(row["run_id"], []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return out


def select(
    listing: runs.Listing,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    archived: bool = False,
    require: str | None = None,
    tree: bool = False,
) -> list[dict[str, Any]]:
    """Rows of the listing's runs: archived ones only if asked; `require` keeps rows that have
    that column; `tree` puts children under their parents (then `limit` counts rows)."""
    rows = [flat_row(r) for r in listing.runs if archived or not r.archived]
    if require:
        rows = [r for r in rows if _sort_key(r.get(require))[0] < 2]
    if where_text:
        keep = where.compile_where(where_text)
        rows = [r for r in rows if keep(r)]
    rows = order_rows(rows, order_by)
    if tree:
        rows = as_tree(rows)
    return rows[:limit] if limit is not None else rows


def select_runs(
    repo: Repo,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    placed_only: bool = False,
    archived: bool = False,
    best: str | None = None,
    tree: bool = False,
) -> tuple[list[dict[str, Any]], runs.Listing]:
    """`best` orders by that metric, best first ([metrics] in mlm.toml), and drops runs
    without it; `archived` includes archived runs."""
    if best:
        order_by = best_order(repo, best)
    listing = runs.list_runs(repo, placed_only=placed_only)
    rows = select(
        listing,
        where_text,
        order_by,
        limit,
        archived=archived,
        require=f"metrics.{best}" if best else None,
        tree=tree,
    )
    return rows, listing
