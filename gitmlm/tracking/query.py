"""Select runs: filter with the --where language, order, limit. Shared by the CLI and the API.

Columns are checked against the runs being queried: a name no run has is an error with the
nearest known name, never a silent null. Ordering follows MLflow's: values in the asked
direction, then NaN, then missing values; `''` is a value like any other.
"""

from __future__ import annotations

import difflib
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from gitmlm.core import config, refs, where
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES, flat_row
from gitmlm.errors import MlmError
from gitmlm.tracking import listing as runs

_DEFAULT_ORDER = [("started", True)]


def parse_order(order_by: str | list[str] | None) -> list[tuple[str, bool]]:
    """`metrics.acc desc, name` or `-metrics.acc` (or a list of such) -> [(column, descending)]."""
    if order_by is None:
        return list(_DEFAULT_ORDER)
    items = order_by if isinstance(order_by, list) else [order_by]
    return [key for item in items for key in where.parse_order(item)]


def epoch_ms(stamp: object) -> int | None:
    """MLflow's start_time/end_time: milliseconds since the epoch."""
    if not isinstance(stamp, str) or not stamp:
        return None
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def sort_key(value: Any) -> tuple[int, Any]:
    # Numbers before strings; the rank of NaN (1) and missing (2) is fixed by the caller.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def rank(value: Any) -> int:
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
            groups[rank(row.get(column))].append(row)
        groups[0].sort(key=lambda r: sort_key(r[column]), reverse=desc)
        rows = groups[0] + groups[1] + groups[2]
    return rows


def order_rows(
    rows: list[dict[str, Any]], order_by: str | list[str] | None
) -> list[dict[str, Any]]:
    """Rows sorted by `order_by` as they are (their own column names; MLflow's order)."""
    return _order(rows, parse_order(order_by))


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
    return f"metrics.`{metric}` {'desc' if direction == 'max' else 'asc'}"


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
    return _select(rows, where_text, order_by, limit, require=require, tree=tree)


def known_columns(rows: list[dict[str, Any]]) -> tuple[set[str], tuple[str, ...]]:
    """The columns a query over `rows` may name, and the prefixes open to any name."""
    known = set(ATTRIBUTES).union(where.DERIVED, *rows)
    # With no runs at all there are no data columns to check names against, and no answer to
    # get wrong: any params./metrics./... name is accepted.
    return known, (() if rows else where.DATA_PREFIXES)


def with_times(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of the row with MLflow's derived start_time/end_time (epoch milliseconds)."""
    return {**row, "start_time": epoch_ms(row["started"]), "end_time": epoch_ms(row["ended"])}


def select_rows(
    rows: list[dict[str, Any]],
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    require: str | None = None,
    tree: bool = False,
    known: set[str] | None = None,
) -> list[dict[str, Any]]:
    """`select` over rows already flattened (the ui keeps them between requests); the rows
    given are left as they are. `known` (every column of `rows`, with ATTRIBUTES and
    where.DERIVED) saves working it out again when the same rows are queried often."""
    return _select(rows, where_text, order_by, limit, require=require, tree=tree, known=known)


def _select(
    rows: list[dict[str, Any]],
    where_text: str | None,
    order_by: str | list[str] | None,
    limit: int | None,
    *,
    require: str | None = None,
    tree: bool = False,
    known: set[str] | None = None,
) -> list[dict[str, Any]]:
    # _select works on copies: the rows given stay as they were.
    if require:
        rows = [r for r in rows if rank(r.get(require)) == 0]
        known = None  # fewer rows: fewer columns
    if known is None:
        known, open_prefixes = known_columns(rows)
    else:  # the caller's columns of these very rows
        open_prefixes = () if rows else where.DATA_PREFIXES
    keep = where.compile_where(where_text, known, open_prefixes) if where_text else None
    keys = []
    for column, desc in parse_order(order_by):
        name = where.canonical(column, known)
        where.check_column(name, known, open_prefixes, "--order-by")
        keys.append((name, desc))
    # MLflow's derived times are worked out only when the filter or the order may name them
    # (a textual test: a false alarm only costs the time), on copies that lose them again.
    derived = where.may_name_derived(where_text or "") or any(
        name in where.DERIVED for name, _ in keys
    )
    if derived:
        rows = [with_times(row) for row in rows]
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    rows = _order(rows, keys)
    if tree:
        rows = as_tree(rows)
    if limit is not None:
        rows = rows[:limit]
    if derived:
        for row in rows:
            del row["start_time"], row["end_time"]
        return rows
    return rows if tree else [dict(row) for row in rows]  # as_tree made copies already


_View = tuple[list[dict[str, Any]], set[str]]
_listed: dict[tuple[Path, bool], tuple[str | None, runs.Listing, dict[bool, _View]]] = {}
"""The last listing of each repository in this process, by notes tip, with its rows and their
columns (with archived runs, and without)."""


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
    """Rows of the runs that match. `best` orders by that metric, best first ([metrics] in
    mlm.toml), and drops runs without it; `archived` includes archived runs. A process that
    asks again (a notebook) while the notes have not moved reuses its listing and rows: only
    the filter and the order run again."""
    if best:
        order_by = best_order(repo, best)
    key = (repo.common_dir, placed_only)
    tip = repo.ref(refs.RUNS)
    memo = _listed.get(key)
    if memo is not None and memo[0] == tip:
        listing, views = memo[1], memo[2]
    else:
        listing = runs.list_runs(repo, placed_only=placed_only)
        views = {}
        # A running run may crash (its status is worked out at listing time): not kept.
        if not any(r.status == "running" for r in listing.runs):
            _listed[key] = (tip, listing, views)
    view = views.get(archived)
    if view is None:
        rows = [flat_row(r) for r in listing.runs if archived or not r.archived]
        view = views[archived] = (rows, known_columns(rows)[0])
    rows, known = view
    require = f"metrics.{best}" if best else None
    found = select_rows(rows, where_text, order_by, limit, require=require, tree=tree, known=known)
    return found, listing
