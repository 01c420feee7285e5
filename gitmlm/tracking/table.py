"""The pandas edge: runs as a DataFrame, like mlflow.search_runs. Never on the hook/log path."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from gitmlm.core.git import Repo
from gitmlm.tracking import runtable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_FIRST = ["run_id", "name", "status", "commit", "started", "ended"]


def runs_frame(
    where: str | None = None,
    order_by: str | list[str] | None = None,
    path: str | None = None,
    *,
    archived: bool = False,
    best: str | None = None,
) -> pd.DataFrame:
    repo = Repo.open(path)
    with runtable.started(repo) as building:
        # numpy, pandas and the query modules load while the workers of a cold build parse.
        import numpy as np
        import pandas as pd

        from gitmlm.tracking import query, runlist, wherecols

        if best:
            order_by = query.best_order(repo, best)
        table = runtable.finish(repo, building)
    for commit, problem in table.skipped:  # as `git mlm runs` says on stderr
        warnings.warn(f"gitmlm.runs: skipped the note on {commit[:12]}: {problem}", stacklevel=3)
    # As `git mlm runs`: runs on commits this clone lacks are left out, and said.
    placed = runlist.placement(repo, table)
    if placed is not None and not placed.all():
        unplaced = len(placed) - int(placed.sum())
        warnings.warn(f"gitmlm.runs: {runlist.unplaced_said(unplaced)}", stacklevel=3)
    require = f"metrics.{best}" if best else None
    rows = wherecols.select(
        table, where, order_by, archived=archived, require=require, among=placed
    )
    if not len(rows):
        return pd.DataFrame(columns=_FIRST)
    names, columns = [], []
    for name in table.names:
        col = table.column(name)
        present = col.present[rows]
        if not present.any():
            continue  # a column none of these rows has is not in the frame
        values = col.values[rows]
        if not present.all():
            values[~present] = np.nan  # what from_records gives a row without the column
        if col.kind == "f":  # floats and NaN: what from_records infers, known already
            values = values.astype(float)
        names.append(name)
        columns.append(values)
    frame = _from_columns(names, columns)
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")
    first = [c for c in _FIRST if c in frame.columns]
    rest = sorted(c for c in frame.columns if c not in first)
    return frame[first + rest]


def _from_columns(names: list[str], columns: list[np.ndarray]) -> pd.DataFrame:
    """`DataFrame.from_records` of the rows these object columns hold, without making the rows:
    each object column gets the dtype from_records would infer for it (`infer_objects`, the
    same soft conversion; tracking_runtable_test compares the frames)."""
    import pandas as pd

    data = {
        name: pd.Series(col, dtype=col.dtype, copy=False)  # object, or float64 known already
        for name, col in zip(names, columns, strict=True)
    }
    return pd.DataFrame(data, copy=False).infer_objects()
