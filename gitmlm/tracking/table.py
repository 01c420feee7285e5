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


_VERSION_FIRST = ["model", "version", "stages", "active", "commit", "tag", "registered"]


def registry_frame(path: str | None = None) -> pd.DataFrame:
    """One row per registered model version: stages, commit, tag, run, artifact, metrics.*."""
    from gitmlm.models import ops as lifecycle
    from gitmlm.models import signing

    reg = signing.load(Repo.open(path))[0]
    signing.warn(reg)
    rows = lifecycle.version_rows(reg)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=_VERSION_FIRST)
    frame["registered"] = pd.to_datetime(frame["registered"], unit="s", utc=True)
    first = [c for c in _VERSION_FIRST if c in frame.columns]
    rest = [c for c in frame.columns if c not in first and not c.startswith("metrics.")]
    metrics = sorted(c for c in frame.columns if c.startswith("metrics."))
    return frame[first + rest + metrics]
