"""`git mlm log`: the commit log with each commit's runs beneath it. Never imports pandas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import CommitInfo, Repo
from gitmlm.tracking import liveness


@dataclass(frozen=True)
class Brief:
    id: str
    name: str
    status: str
    metrics: dict[str, float]
    committed: str | None = None
    """For a snapshot run: the commit its code was committed as (it shows there too)."""


@dataclass
class Entry:
    commit: CommitInfo
    runs: list[Brief] = field(default_factory=list)
    snapshots: list[Brief] = field(default_factory=list)
    """Runs made on a dirty tree based on this commit (their code is a checkpoint)."""


def checkpoint_bases(repo: Repo) -> dict[str, list[str]]:
    """Base commit -> checkpoint commits made on it, from the checkpoint refs alone."""
    out: dict[str, list[str]] = {}
    for target in repo.refs(refs.CHECKPOINTS).values():
        parents = repo.commit(target).parents
        if parents:
            out.setdefault(parents[0], []).append(target)
    return out


def entries(repo: Repo, revisions: list[str], limit: int | None) -> Iterator[Entry]:
    snap = store.snapshot(repo, refs.RUNS)
    commits = list(repo.walk(revisions, limit))
    bases = checkpoint_bases(repo) if snap.entries else {}
    wanted = [c.oid for c in commits if c.oid in snap.entries]
    wanted += [cp for c in commits for cp in bases.get(c.oid, [])]
    found = store.briefs(repo, snap, wanted)
    # A snapshot run whose code was committed (checkpoints/placement.py) shows on that commit;
    # when the commit is in view, do not show it again on its base as uncommitted.
    committed = {row[0] for c in commits for row in found.get(c.oid, [])}
    for commit in commits:
        entry = Entry(commit, _briefs(found.get(commit.oid, []), repo, snap, commit.oid))
        for cp in bases.get(commit.oid, []):
            rows = [row for row in found.get(cp, []) if row[0] not in committed]
            entry.snapshots.extend(_briefs(rows, repo, snap, cp, snapshot=True))
        yield entry


def _briefs(
    rows: list[store.Brief],
    repo: Repo | None = None,
    snap: store.Snapshot | None = None,
    commit: str = "",
    *,
    snapshot: bool = False,
) -> list[Brief]:
    out = []
    for rid, name, status, host, pid, metrics in rows:
        table: dict[str, Any] = {}
        if repo is not None and snap is not None and (status == "running" or snapshot):
            # Rare rows (live runs, checkpoint runs) need fields the brief lacks: the heartbeat,
            # and whether the code was committed since (a commit maybe outside this log's range).
            table = _table(repo, snap, commit, rid)
        attached = [c for c in table.get("attached", []) if isinstance(c, str)]
        every = table.get("heartbeat_every")
        shown = liveness.status(
            status,
            host,
            pid,
            table.get("updated"),
            table.get("pid_ns"),
            float(every) if isinstance(every, (int, float)) else None,
        )
        out.append(Brief(rid, name, shown, metrics, attached[0] if attached else None))
    return out


def _table(repo: Repo, snap: store.Snapshot, commit: str, rid: str) -> dict[str, Any]:
    blob = snap.entries.get(commit)
    if blob is None:
        return {}
    try:
        return dict(store.read_doc(repo, blob).get(rid, {}))
    except codec.NoteError:
        return {}
