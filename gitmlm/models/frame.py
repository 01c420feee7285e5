"""The pandas edge of the registry: versions as a DataFrame. Never on the `models`/hook path."""

from __future__ import annotations

import pandas as pd

from gitmlm.core.git import Repo
from gitmlm.models import ops as lifecycle
from gitmlm.models import signing

_VERSION_FIRST = ["model", "version", "stages", "active", "commit", "tag", "registered"]


def registry_frame(path: str | None = None) -> pd.DataFrame:
    """One row per registered model version: stages, commit, tag, run, artifact, metrics.*."""
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
