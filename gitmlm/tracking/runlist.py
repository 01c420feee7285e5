"""What `git mlm runs` lists: the rows to print and what is said beside them (unreadable notes,
runs this clone cannot place, the known columns, the shortest unique id prefixes).

Two producers give the same answer. `by_table` reads the column table `gitmlm.runs()` reads
(tracking.runtable, saved per notes tip) and filters and orders it column-wise
(tracking.wherecols), making a row dict only for each row printed; `by_rows` is the row path
(query.select_runs over listing.list_runs), which makes a Run and a row of every run; the CLI
takes it only if the notes moved under `by_table` (or a test asks for it). In a clone missing
commits that carry notes (a shallow clone), `by_table` reads the notes on the commits it has
again (few, there) to leave out, and count, the runs none of them carries, as list_runs does.
tracking_runs_cli_table_test compares the two through the CLI.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmlm.core import codec, fmt, ids, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES, flat_row
from gitmlm.tracking import query, runscan, runtable

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Listed:
    rows: list[dict[str, Any]]
    """The rows to print, as query.select_runs gives them (copies the caller may change)."""
    errors: list[tuple[str, str]]
    """(commit, problem) as listing.Listing.errors says them, in its order."""
    unplaced: int
    """Runs none of whose commits this clone has (left out)."""
    any_runs: bool
    """Some run is listed (archived ones count)."""
    known: Callable[[], list[str]]
    """Every column of the listed runs (archived ones too): ATTRIBUTES, then the rest in
    fmt.columns_of's order."""
    short: Callable[[Iterable[str]], dict[str, str]]
    """Of the given ids, each one listed (by_rows: every listed id) -> its shortest unique prefix
    among every listed run."""


def known_of(keys: Iterable[str]) -> list[str]:
    """ATTRIBUTES, then these row keys in fmt.columns_of's order."""
    return list(dict.fromkeys([*ATTRIBUTES, *fmt.columns_of([dict.fromkeys(keys)], [])]))


def by_rows(
    repo: Repo,
    where_text: str | None,
    order_by: str | None,
    limit: int | None,
    *,
    archived: bool,
    best: str | None,
    tree: bool,
) -> Listed:
    """The row path: every run of the notes as a Run and a row."""
    rows, listing = query.select_runs(
        repo,
        where_text,
        order_by,
        limit,
        placed_only=True,
        archived=archived,
        best=best,
        tree=tree,
    )

    def known() -> list[str]:
        keys: set[str] = set()
        for run in listing.runs:
            keys.update(flat_row(run))
        return known_of(keys)

    def short(wanted: Iterable[str]) -> dict[str, str]:
        return ids.shortest_unique([r.id for r in listing.runs])

    return Listed(rows, listing.errors, listing.unplaced, bool(listing.runs), known, short)


def by_table(
    repo: Repo,
    where_text: str | None,
    order_by: str | None,
    limit: int | None,
    *,
    archived: bool,
    best: str | None,
    tree: bool = False,
) -> Listed | None:
    """The column table's answer, or None when the notes moved between the table's build and
    a look at them (then by_rows answers)."""
    with runtable.started(repo) as building:
        # The notes the table is (or will be) built from (a Table kept in this process: of the
        # tip when start() looked; if the notes moved since, the row path reads them anew).
        if isinstance(building, runtable.Table) and repo.ref(refs.RUNS) != building.tip:
            return None
        # numpy loads while the workers of a cold build parse notes.
        from gitmlm.tracking import wherecols

        if best:
            order_by = query.best_order(repo, best)
        table = runtable.finish(repo, building)
    placed = placement(repo, table)
    require = f"metrics.{best}" if best else None
    found = wherecols.select(
        table, where_text, order_by, archived=archived, require=require, among=placed
    )
    depths = None
    if tree:
        found, depths = _tree(table, found)
    if limit is not None:
        found = found[:limit]
    rows = _rows(table, found)
    if depths is not None:
        for row, depth in zip(rows, depths, strict=False):
            row["depth"] = depth

    listed = table.ids
    if placed is not None:
        listed = [rid for rid, here in zip(table.ids, placed.tolist(), strict=True) if here]

    def known() -> list[str]:
        def some(name: str) -> bool:
            present = table.columns[name].present
            return bool((present if placed is None else present[placed]).any())

        return known_of(filter(some, table.names))

    return Listed(
        rows,
        table.skipped,
        len(table.ids) - len(listed),
        bool(listed),
        known,
        lambda wanted: _short(listed, wanted),
    )


def unplaced_said(count: int) -> str:
    """What `git mlm runs` and `gitmlm.runs()` say of the runs `placement` leaves out."""
    return (
        f"{count} runs are on commits this clone does not have (a shallow clone?); "
        "`git fetch --unshallow` and `git mlm fetch` bring them"
    )


def placement(repo: Repo, table: runtable.Table) -> np.ndarray | None:
    """Which of the table's runs list_runs places (placed_only): those some note on a commit
    here carries readably; the rest are on commits this clone lacks (a shallow clone). None
    when the clone has every commit the notes are on (an odb look-up each: 2 ms for 10,000).
    Else the notes on the commits here are read again, few in a shallow clone."""
    import numpy as np

    snap = table.snap
    missing = repo.missing_objects(snap.entries)
    if not missing:
        return None
    here: set[str] = set()
    for commit, blob in snap.entries.items():
        if commit in missing:
            continue
        try:
            doc = store.cached_doc(repo, blob) or store.parse_note(repo, blob)
        except codec.NoteError:
            continue
        for rid, run in doc.items():
            if rid not in here and _readable(rid, run):
                here.add(rid)
    return np.fromiter((rid in here for rid in table.ids), bool, len(table.ids))


def _readable(rid: str, run: dict[str, Any]) -> bool:
    if runscan.fast_row(rid, run) is not None:
        return True
    try:
        codec.run_from_dict(rid, run)
    except codec.NoteError:
        return False
    return True


def _tree(table: runtable.Table, found: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`found` in query.as_tree's order, with each row's depth: the tree is worked out on rows
    of the id and parent alone, which say where they came from."""
    import numpy as np

    rids = table.columns["run_id"].values[found].tolist()
    col = table.column("parent")
    parents = col.values[found].tolist()
    present = col.present[found].tolist()
    light = [
        {"run_id": rid, "parent": parent, "at": at} if there else {"run_id": rid, "at": at}
        for at, (rid, parent, there) in enumerate(zip(rids, parents, present, strict=True))
    ]
    ordered = query.as_tree(light)
    picked = np.asarray([row["at"] for row in ordered], dtype=np.intp)
    return found[picked], [row["depth"] for row in ordered]


def _rows(table: runtable.Table, found: np.ndarray) -> list[dict[str, Any]]:
    """The rows at `found`, each with the keys its run's flat_row has (in another order, which
    nothing printed depends on: the columns are chosen and ordered by name)."""
    rows: list[dict[str, Any]] = [{} for _ in range(len(found))]
    for name in table.names:
        col = table.columns[name]
        present = col.present[found]
        if not present.any():
            continue
        for row, value, there in zip(
            rows, col.values[found].tolist(), present.tolist(), strict=True
        ):
            if there:
                row[name] = value
    return rows


def _short(listed: list[str], wanted: Iterable[str]) -> dict[str, str]:
    """ids.shortest_unique over `listed` (newest id first, as the table keeps them), for the
    wanted ids only: an id's prefix depends on its two neighbours in sorted order alone."""
    ordered = listed[::-1]
    out: dict[str, str] = {}
    for rid in wanted:
        at = bisect.bisect_left(ordered, rid)
        if at < len(ordered) and ordered[at] == rid:
            out[rid] = ids.shortest_unique(ordered[max(at - 1, 0) : at + 2])[rid]
    return out
