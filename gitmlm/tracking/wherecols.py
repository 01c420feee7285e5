"""The `--where` language and the run order, evaluated column-wise over a runtable.Table.

Every answer is the row-wise one (core.where's predicates, query's order) by construction: a
leaf applies core.where.value_test to each value of its column, and the order sorts by
query's keys. Only a column whose every present value is a float takes numpy's comparisons and
sorts, which answer the same on floats (tracking_wherecols_test checks both ways agree).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from gitmlm.core import where
from gitmlm.core.records import ATTRIBUTES
from gitmlm.tracking import query
from gitmlm.tracking.runtable import Column, Table

Columns = Callable[[str], Column]

_IS_NOT: Any = np.frompyfunc(operator.is_not, 2, 1)
_EXACT = 2**53
"""Integers a float64 holds exactly: a literal beyond this compares on the Python path."""


def mask(expr: where.Expr, columns: Columns, rows: np.ndarray) -> np.ndarray:
    """Which of `rows` (indices into the table) `expr` keeps, as booleans."""
    if isinstance(expr, where.Not):
        return ~mask(expr.operand, columns, rows)
    if isinstance(expr, where.And):
        out = mask(expr.operands[0], columns, rows)
        for e in expr.operands[1:]:
            out &= mask(e, columns, rows)
        return out
    if isinstance(expr, where.Or):
        out = mask(expr.operands[0], columns, rows)
        for e in expr.operands[1:]:
            out |= mask(e, columns, rows)
        return out
    col = columns(expr.column)
    if isinstance(expr, where.Compare) and _number(expr.value):
        floats = col.floats()
        if floats is not None:
            with np.errstate(invalid="ignore"):
                found = where.COMPARE[expr.op](floats[rows], float(expr.value))
            result: np.ndarray = found & col.present[rows]
            return result
    if isinstance(expr, where.IsNull):
        # None is what a missing column reads as (a present data value is never None).
        values = col.values[rows]
        isnull = np.fromiter((v is None for v in values), bool, len(values))
        return ~isnull if expr.negated else isnull
    test = where.value_test(expr)
    values = col.values[rows]
    return np.fromiter(map(test, values), bool, len(values))


def _number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return True
    return isinstance(value, int) and -_EXACT <= value <= _EXACT


def order(rows: np.ndarray, keys: list[tuple[str, bool]], columns: Columns) -> np.ndarray:
    """`rows` in query's order: stable sorts from the last key to the first; in each, the
    values in the asked direction (numbers before strings), then NaN, then missing."""
    for name, desc in reversed(keys):
        col = columns(name)
        floats = col.floats()
        if floats is not None:
            got = floats[rows]
            missing = ~col.present[rows]
            nan = np.isnan(got) & ~missing
            rank = np.where(missing, 2, np.where(nan, 1, 0))
            # Stable on (rank, value): negating keeps ties in place for a descending sort.
            first = np.argsort(-got if desc else got, kind="stable")
            rows = rows[first]
            rank = rank[first]
            rows = rows[np.argsort(rank, kind="stable")]
            continue
        values = col.values[rows]
        if col.strings():  # no NaN: the strings, then the missing, with no Python test per row
            texts = values.tolist()
            some = _IS_NOT(values, None).astype(bool)
            given = sorted(np.flatnonzero(some).tolist(), key=texts.__getitem__, reverse=desc)
            rows = rows[np.concatenate([np.asarray(given, np.intp), np.flatnonzero(~some)])]
            continue
        groups: list[list[int]] = [[], [], []]
        for i, value in enumerate(values):
            groups[query.rank(value)].append(i)
        sortable = [values[i] for i in groups[0]]
        if all(type(v) is str for v in sortable):  # strings sort as their sort_key does
            groups[0].sort(key=values.__getitem__, reverse=desc)
        else:
            keys_of = [query.sort_key(v) for v in values]
            groups[0].sort(key=keys_of.__getitem__, reverse=desc)
        rows = rows[np.asarray(groups[0] + groups[1] + groups[2], dtype=np.intp)]
    return rows


def select(
    table: Table,
    where_text: str | None = None,
    order_by: str | list[str] | None = None,
    *,
    archived: bool = False,
    require: str | None = None,
    among: np.ndarray | None = None,
) -> np.ndarray:
    """query's selection over a runtable.Table, column-wise: the indices of the rows that
    match, in order. Same checks, same answers (tracking_runtable_test compares the two).
    `among` (booleans, one per row) keeps the query to those rows, as if no other existed."""
    rows = np.arange(len(table.ids)) if archived else np.flatnonzero(~table.archived)
    if among is not None:
        rows = rows[among[rows]]
    if require:
        values = table.column(require).values[rows]
        rows = rows[np.fromiter((query.rank(v) == 0 for v in values), bool, len(values))]
    known = set(ATTRIBUTES).union(
        where.DERIVED, (n for n in table.names if table.column(n).present[rows].any())
    )
    open_prefixes = () if len(rows) else where.DATA_PREFIXES
    keys = []
    expr = where.bind(where.parse(where_text), known, open_prefixes) if where_text else None
    for column, desc in query.parse_order(order_by):
        name = where.canonical(column, known)
        where.check_column(name, known, open_prefixes, "--order-by")
        keys.append((name, desc))
    if expr is not None:
        rows = rows[mask(expr, table.column, rows)]
    ordered: np.ndarray = order(rows, keys, table.column)
    return ordered
