"""`git mlm log`: the commit log with each commit's runs beneath it. Never imports pandas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gitmlm.core import notes as store
from gitmlm.core import refs
from gitmlm.core.git import CommitInfo, Repo
from gitmlm.tracking import liveness


@dataclass(frozen=True)
class Brief:
    id: str
    name: str
    status: str
    metrics: dict[str, float]


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
        entry = Entry(commit, _briefs(found.get(commit.oid, [])))
        for cp in bases.get(commit.oid, []):
            rows = [row for row in found.get(cp, []) if row[0] not in committed]
            entry.snapshots.extend(_briefs(rows))
        yield entry


def _briefs(rows: list[store.Brief]) -> list[Brief]:
    out = []
    for rid, name, status, host, pid, metrics in rows:
        out.append(Brief(rid, name, liveness.status(status, host, pid), metrics))
    return out
