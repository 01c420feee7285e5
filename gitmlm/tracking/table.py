"""The pandas edge: runs as a DataFrame, like mlflow.search_runs. Never on the hook/log path."""

from __future__ import annotations

import pandas as pd

from gitmlm.core.git import Repo
from gitmlm.tracking import query

_FIRST = ["run_id", "name", "status", "commit", "started", "ended"]


def runs_frame(
    where: str | None = None, order_by: str | list[str] | None = None, path: str | None = None
) -> pd.DataFrame:
    rows, _ = query.select_runs(Repo.open(path), where, order_by)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=_FIRST)
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")
    first = [c for c in _FIRST if c in frame.columns]
    rest = sorted(c for c in frame.columns if c not in first)
    return frame[first + rest]
