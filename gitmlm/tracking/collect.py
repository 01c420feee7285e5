"""`git mlm gc` for runs: what deleted runs alone held goes; their tombstones stay.

For every deleted run (`git mlm runs rm`; archived runs are not touched) gc

1. marks the record `collected = true` (a stamped field, as `deleted` is), so every clone
   learns through sync that the run's data was dropped, and sync's merge drops the run's
   series and profile tables rather than bringing them back (gitmlm/sync/sync.py);
2. removes the run's tables from the series and profiles notes (a note left empty goes);
3. deletes the checkpoint and keep refs that pin only collected runs (checkpoints/pins.py): a
   commit a live run is recorded on stays pinned;
4. removes the copies of its in-memory artifacts under `.git/mlm/artifacts/<run-id>/`;
5. reports the objects it named, which the object sweep drops at once unless something live
   names them too (models/gc.py).

The record itself stays: it is the tombstone that keeps sync from resurrecting the run.

Concurrency: every notes change is a compare-and-swap that re-reads and redoes on a race
(core/notes.py `update`), and the decisions of steps 2-4 are made and applied while holding
the runs ref's lock, re-reading the records there, so a run restored or recorded meanwhile on
this machine is seen. A pin ref is deleted only if it still points where it did.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gitmlm.checkpoints import pins
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import artifacts, logged, manage, profiles, record


@dataclass
class Collected:
    runs: list[str] = field(default_factory=list)
    """Ids of the deleted runs collected now: marked, or something of theirs dropped here."""
    tables: dict[str, int] = field(default_factory=dict)
    """Notes ref -> run tables dropped from it (series, profiles)."""
    table_bytes: int = 0
    """Size of the note blobs that held those tables (git reclaims it on `git gc --prune`)."""
    refs: list[str] = field(default_factory=list)
    """Pin refs deleted."""
    kept_files: int = 0
    kept_bytes: int = 0
    objects: set[str] = field(default_factory=set)
    """Objects the collected runs name (a live run, model version or dataset may name them too)."""


def _mark(repo: Repo, run_ids: list[str]) -> None:
    def change(_run: Run) -> manage.Edit:
        def fn(table: dict[str, Any]) -> list[tuple[str, str | None]]:
            table[pins.COLLECTED] = True
            return [(pins.COLLECTED, None)]

        return fn

    manage.edit(repo, run_ids, change, "collect deleted runs", deleted=True)


def _drop_tables(
    repo: Repo,
    ref: str,
    where: dict[str, set[str]],
    dry_run: bool,
    out: Collected,
    touched: set[str],
) -> None:
    """Remove the runs' tables from the notes of `ref` (commit -> run ids to drop there)."""
    counted: dict[str, tuple[set[str], int]] = {}  # commit -> (runs, note bytes), last attempt

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        updates: dict[str, str | None] = {}
        counted.clear()
        for commit, ids in sorted(where.items()):
            blob = snap.entries.get(commit)
            if blob is None:
                continue
            try:
                doc = store.read_doc(repo, blob)
            except codec.NoteError as exc:
                raise MlmError(
                    f"the note on {commit[:12]} in {ref} is not valid ({exc}); nothing of it "
                    f"was collected; fix it with `git notes --ref {ref} edit {commit[:12]}`"
                ) from exc
            hit = ids & doc.keys()
            if not hit:
                continue
            counted[commit] = (hit, len(repo.blob(blob)))
            if not dry_run:
                updates.update(store.drop_runs(repo, snap, commit, hit))
        return updates

    if dry_run:
        change(store.snapshot(repo, ref))
    else:
        store.update(repo, ref, change, "gitmlm: gc of deleted runs")
    out.tables[ref] = sum(len(hit) for hit, _ in counted.values())
    out.table_bytes += sum(size for _, size in counted.values())
    for hit, _ in counted.values():
        touched.update(hit)


def _kept(
    repo: Repo, run_ids: Iterable[str], dry_run: bool, out: Collected, touched: set[str]
) -> None:
    for rid in run_ids:
        folder = logged.kept_dir(repo, rid)
        if not folder.is_dir():
            continue
        touched.add(rid)
        for root, _dirs, files in os.walk(folder):
            for name in files:
                out.kept_files += 1
                out.kept_bytes += os.lstat(os.path.join(root, name)).st_size
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)


def collect(repo: Repo, *, dry_run: bool = False) -> Collected:
    """Drop what deleted runs alone hold (the module's docstring); `dry_run` changes nothing."""
    listing = record.list_runs(repo, deleted=True)
    deleted = [r for r in listing.runs if r.deleted and r.status != "running"]
    out = Collected()
    todo = [r.id for r in deleted if r.extra.get(pins.COLLECTED) is not True]
    if todo and not dry_run:
        _mark(repo, todo)
    with repo.lock(refs.RUNS):
        # Decided again under the lock: a run restored here meanwhile is no longer collected.
        listing = record.list_runs(repo, deleted=True)
        assume = set(todo) if dry_run else set()
        gone = [
            r
            for r in listing.runs
            if r.deleted
            and r.status != "running"
            and (r.extra.get(pins.COLLECTED) or r.id in assume)
        ]
        touched = set(todo)
        where: dict[str, set[str]] = {}
        for run in gone:
            for commit in profiles.homes(run, listing.commits.get(run.id, [])):
                where.setdefault(commit, set()).add(run.id)
        for ref in pins.RUN_KEYED:
            _drop_tables(repo, ref, where, dry_run, out, touched)
        # Only a commit a collected run is on can be dead: no other note is read.
        table = {n: c for n, c in repo.ref_table(*pins.PINS).items() if c in where}
        for name in sorted(pins.dead_pins(repo, table, assume=assume)):
            if dry_run or repo.delete_ref(name, table[name]):
                out.refs.append(name)
                if name.startswith(refs.CHECKPOINTS):
                    touched.add(name[len(refs.CHECKPOINTS) :])
        _kept(repo, [r.id for r in gone], dry_run, out, touched)
        out.runs = sorted(touched)
        out.objects = artifacts.named_by(repo, gone)
    return out
