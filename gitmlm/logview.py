"""`git mlm log`: the commit log with each commit's runs beneath it. Never imports pandas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gitmlm import codec, refs, store
from gitmlm import tracking as runs
from gitmlm.git import CommitInfo, Repo
from gitmlm.records import Run


@dataclass
class Entry:
    commit: CommitInfo
    runs: list[Run] = field(default_factory=list)
    snapshots: list[Run] = field(default_factory=list)
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
    bases = checkpoint_bases(repo) if snap.entries else {}
    for commit in repo.walk(revisions, limit):
        entry = Entry(commit)
        if commit.oid in snap.entries:
            entry.runs = _runs_on(repo, snap, commit.oid)
        for cp in bases.get(commit.oid, []):
            entry.snapshots.extend(r for r in _runs_on(repo, snap, cp) if r.commit == cp)
        yield entry


def _runs_on(repo: Repo, snap: store.Snapshot, commit: str) -> list[Run]:
    doc = store.read_all(repo, snap, [commit]).get(commit, {})
    out = []
    for rid, table in sorted(doc.items()):
        try:
            run = codec.run_from_dict(rid, table)
        except codec.NoteError:
            continue
        run.status = runs.effective_status(run)
        out.append(run)
    return out
