"""gitmlm: ML model management that lives inside your git repository.

Importing this package stays light (no pandas): the DataFrame helpers import it when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmlm._version import __version__
from gitmlm.core.records import Run
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.models.ops import Resolved
    from gitmlm.tracking.record import ActiveRun, start_run

__all__ = [
    "ActiveRun",
    "MlmError",
    "Resolved",
    "Run",
    "__version__",
    "get_run",
    "registry",
    "resolve",
    "runs",
    "start_run",
]


def runs(
    where: str | None = None, order_by: str | list[str] | None = None, *, path: str | None = None
) -> pd.DataFrame:
    """Every run as a DataFrame row: run_id, name, status, commit, started, ended, params.*,
    metrics.*, tags.*, datasets.* — like mlflow.search_runs."""
    from gitmlm.tracking import table

    return table.runs_frame(where=where, order_by=order_by, path=path)


def get_run(run_id: str, *, path: str | None = None) -> Run:
    """One run by id or unambiguous prefix, with its per-step series in `.steps`."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import record as _runs

    return _runs.get_run(Repo.open(path), run_id)


def __getattr__(name: str) -> object:
    # The tracking API loads on first use, so `git mlm log` and the hooks, which import
    # submodules of this package, do not pay for it at start.
    if name in ("start_run", "ActiveRun"):
        from gitmlm.tracking import record as tracking

        return getattr(tracking, name)
    if name == "Resolved":
        from gitmlm.models import ops

        return ops.Resolved
    raise AttributeError(f"module 'gitmlm' has no attribute {name!r}")


def registry(*, path: str | None = None) -> pd.DataFrame:
    """Every registered model version as a DataFrame row: model, version, stages, active,
    commit, tag, registered, registered_by, run_id, path, digest, metrics.*."""
    from gitmlm.models import frame

    return frame.registry_frame(path)


def resolve(spec: str, *, path: str | None = None) -> Resolved:
    """`"churn#production"`, `"churn@v1.2.0"` or `"churn"` (latest) -> version, commit,
    artifact path and digest, run, tag."""
    from gitmlm.core.git import Repo
    from gitmlm.models import ops as lifecycle

    return lifecycle.resolved(Repo.open(path), spec)
