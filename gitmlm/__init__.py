"""gitmlm: ML model management that lives inside your git repository.

Importing this package stays light (no pandas): the DataFrame helpers import it when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gitmlm._version import __version__
from gitmlm.core.records import Run
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.models.gc import Report as GcReport
    from gitmlm.models.ops import Resolved
    from gitmlm.tracking.record import ActiveRun, start_run

__all__ = [
    "ActiveRun",
    "MlmError",
    "Resolved",
    "Run",
    "__version__",
    "archive_runs",
    "artifact_path",
    "delete_runs",
    "gc",
    "get_run",
    "note_run",
    "registry",
    "rename_run",
    "resolve",
    "restore_runs",
    "runs",
    "start_run",
    "tag_run",
    "untag_run",
]


def runs(
    where: str | None = None,
    order_by: str | list[str] | None = None,
    *,
    archived: bool = False,
    best: str | None = None,
    path: str | None = None,
) -> pd.DataFrame:
    """Every run as a DataFrame row: run_id, name, status, commit, started, ended, parent,
    params.*, metrics.*, tags.*, datasets.* — like mlflow.search_runs.

    `archived=True` includes archived runs; `best="auc"` orders best first by the direction
    mlm.toml [metrics] declares and leaves out runs without that metric."""
    from gitmlm.tracking import table

    return table.runs_frame(where=where, order_by=order_by, path=path, archived=archived, best=best)


# --- managing runs after the fact (docs/tracking.md "Managing runs") ---------------------------


def delete_runs(*run_ids: str, path: str | None = None) -> list[str]:
    """Delete runs: a tombstone that sync carries to every clone; `restore_runs` undoes it."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    return [r.id for r in manage.remove(Repo.open(path), run_ids)]


def archive_runs(*run_ids: str, path: str | None = None) -> list[str]:
    """Hide runs from listings (`runs(archived=True)` includes them)."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    return [r.id for r in manage.archive(Repo.open(path), run_ids)]


def restore_runs(*run_ids: str, path: str | None = None) -> list[str]:
    """Bring deleted or archived runs back."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    return [r.id for r in manage.restore(Repo.open(path), run_ids)]


def rename_run(run_id: str, name: str, *, path: str | None = None) -> None:
    """Rename a run (names are labels: a name in use is allowed)."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    manage.rename(Repo.open(path), run_id, name)


def tag_run(run_id: str, tags: dict[str, object], *, path: str | None = None) -> None:
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    manage.tag(Repo.open(path), run_id, tags)


def untag_run(run_id: str, *keys: str, path: str | None = None) -> None:
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    manage.untag(Repo.open(path), run_id, keys)


def note_run(run_id: str, text: str, *, path: str | None = None) -> None:
    """Set a run's free-text note; "" clears it."""
    from gitmlm.core.git import Repo
    from gitmlm.tracking import manage

    manage.note(Repo.open(path), run_id, text)


def gc(
    *, dry_run: bool = False, remote: str | bool | None = None, path: str | None = None
) -> GcReport:
    """What `git mlm gc` does: drop deleted runs' series, profiles, checkpoint refs and kept
    files (their tombstones stay), then cached objects nothing names; `remote=True` (the
    default storage remote) or a remote's name sweeps that remote too. `dry_run` changes
    nothing. Returns the report (`.runs`, `.cache`, `.remote`)."""
    from gitmlm.core.git import Repo
    from gitmlm.models import gc as collector

    name = remote if isinstance(remote, str) else None
    return collector.gc(
        Repo.open(path), dry_run=dry_run, remote=name, on_remote=remote not in (None, False)
    )


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


def artifact_path(spec: str, *, path: str | None = None, remote: str | None = None) -> Path:
    """A verified local path to the artifact of model version `spec` ("churn#production",
    "churn@v1.2.0", "churn"), fetched on demand from git, Git LFS or the storage remote.
    The file is the cache's read-only copy: load it, do not edit it."""
    from gitmlm.core.git import Repo
    from gitmlm.models import fetch

    return fetch.artifact(Repo.open(path), spec, remote=remote).path
