"""`git mlm log`: the commit log with each commit's runs beneath it. Never imports pandas.

This is the full path (pygit2); it leaves the cache the fast path (fastlog.py) reads.
"""

from __future__ import annotations

from typing import Any

from gitmlm.core import briefcache, codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.tracking.logtext import Brief, Entry, assemble, note_lines, wanted

__all__ = ["Brief", "Entry", "checkpoint_bases", "entries"]


def checkpoint_bases(repo: Repo, targets: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Base commit -> checkpoint commits made on it, from the checkpoint refs alone."""
    out: dict[str, list[str]] = {}
    for target in (targets if targets is not None else repo.refs(refs.CHECKPOINTS)).values():
        parents = repo.commit(target).parents
        if parents:
            out.setdefault(parents[0], []).append(target)
    return out


def _save_lines(
    repo: Repo, noted: dict[str, str], found: dict[str, list[briefcache.Brief]]
) -> None:
    """Keep the log lines of the notes shown (by blob) for the fast path, which then reads one
    string per commit; rewritten only when a note shown lacks them, keeping live notes only."""
    lines = briefcache.load_lines(repo.mlm_dir)
    added = False
    for commit, rows in found.items():
        blob = noted.get(commit)
        if blob is None or blob in lines:
            continue
        made = note_lines(rows)
        if made is not None:
            lines[blob] = made
            added = True
    if added:
        live = set(noted.values())
        briefcache.save_lines(repo.mlm_dir, {b: t for b, t in lines.items() if b in live})


def entries(
    repo: Repo,
    revisions: list[str],
    limit: int | None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[Entry]:
    """The log's entries; `skipped` gets (commit, problem) of each note in view that cannot be
    read, whose runs are not shown (the fast path never answers for such a view: no lines)."""
    snap = store.snapshot(repo, refs.RUNS)
    commits = list(repo.walk(revisions, limit))
    checkpoints = repo.refs(refs.CHECKPOINTS) if snap.entries else {}
    bases = checkpoint_bases(repo, checkpoints) if snap.entries else {}
    found = store.briefs(repo, snap, wanted(commits, snap.entries, bases))
    view = briefcache.load_view(repo.mlm_dir)
    if view.get("tip") != snap.tip or view.get("checkpoints") != checkpoints:
        briefcache.save_view(repo.mlm_dir, snap.tip, snap.entries, checkpoints, bases)
    _save_lines(repo, snap.entries, found)

    def table_of(commit: str, rid: str) -> dict[str, Any]:
        blob = snap.entries.get(commit)
        if blob is None:
            return {}
        try:
            return dict(store.run_table(repo, snap, commit, rid) or {})
        except codec.NoteError:
            return {}

    done = assemble(commits, bases, found, table_of)
    assert done is not None  # every table can be read here
    if skipped is not None:
        skipped.extend(snap.errors)
    return done
