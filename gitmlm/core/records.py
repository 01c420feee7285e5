"""Records as plain data, no I/O: runs, and the commits they sit on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class CommitInfo(NamedTuple):
    """A commit as git reports it; made by core.git (pygit2) and by the fast log path (git log),
    which must not load pygit2. A named tuple: `git mlm log` makes a thousand at once."""

    oid: str
    parents: tuple[str, ...]
    author: str
    email: str
    time: int
    offset: int
    message: str
    tree: str


STATUSES = ("running", "finished", "failed", "crashed")
ATTRIBUTES = (
    "run_id",
    "name",
    "status",
    "commit",
    "branch",
    "started",
    "ended",
    "user",
    "host",
    "checkpoint",
    "exit_code",
)


@dataclass
class Run:
    id: str
    name: str
    status: str
    started: str
    commit: str
    ended: str | None = None
    updated: str | None = None
    user: str = ""
    host: str = ""
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    branch: str | None = None
    checkpoint: str = "clean"
    base: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept so an older gitmlm never drops a newer one's data."""
    steps: dict[str, dict[str, list[float]]] = field(default_factory=dict, compare=False)
    """Per-step series ({metric: {"step": [...], "value": [...]}}), loaded only by get_run."""

    @property
    def deleted(self) -> bool:
        """Removed by `git mlm runs rm`: a tombstone that sync carries, hidden everywhere."""
        return self.extra.get("deleted") is True

    @property
    def archived(self) -> bool:
        """Hidden from listings unless asked for (`--all`)."""
        return self.extra.get("archived") is True

    @property
    def parent(self) -> str | None:
        """The run this one is nested in (a sweep's trial under the sweep)."""
        value = self.extra.get("parent")
        return value if isinstance(value, str) else None

    @property
    def duration(self) -> float | None:
        from datetime import datetime

        if not self.ended:
            return None
        start = datetime.fromisoformat(self.started)
        end = datetime.fromisoformat(self.ended)
        return (end - start).total_seconds()


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested tables become dotted keys: {"opt": {"lr": 1}} -> {"params.opt.lr": 1}."""
    if isinstance(value, dict):
        for key, sub in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def flat_row(run: Run) -> dict[str, Any]:
    """One run as a flat row: the shape `--where`, tables and DataFrames all use."""
    row: dict[str, Any] = {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "commit": run.commit,
        "branch": run.branch,
        "started": run.started,
        "ended": run.ended,
        "user": run.user,
        "host": run.host,
        "checkpoint": run.checkpoint,
        "exit_code": run.exit_code,
    }
    if run.parent:
        row["parent"] = run.parent
    if isinstance(run.extra.get("note"), str):
        row["note"] = run.extra["note"]
    flatten("params", run.params, row)
    for name, value in run.metrics.items():
        row[f"metrics.{name}"] = value
    for name, tag in run.tags.items():
        row[f"tags.{name}"] = tag
    for name, info in run.datasets.items():
        row[f"datasets.{name}"] = info.get("digest", "")
    return row
