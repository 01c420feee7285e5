"""Which pin refs still pin a record: a commit whose runs `git mlm gc` collected pins nothing.

A pin is `refs/mlm/checkpoints/<run-id>` or `refs/mlm/keep/<commit>` (docs/sync.md "keep
refs"). `git mlm gc` marks each deleted run `collected = true` in its record (a field like
`deleted`, which sync merges by its `edited` stamp) and then drops what the run alone held. A
pinned commit is **dead** when its runs note holds runs and every one of them is deleted and
collected, and no notes ref other than the run-keyed ones (series, profiles: gc drops those
tables with the runs) annotates it. Deadness reads only the records, which sync makes the same
on every clone, so gc, fetch, push and the keep rule all agree on it: fetch does not bring a
dead pin back, push neither sends one nor keeps one the remote still has, and no keep ref is
made for a dead commit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from gitmlm.core import notes as store
from gitmlm.core import refs
from gitmlm.core.git import Repo

COLLECTED = "collected"
"""The record field gc sets on the deleted runs whose data it dropped."""
RUN_KEYED = (refs.SERIES, refs.PROFILES)
"""Notes refs holding one table per run, on the run's commit: collected with the run."""
PINS = (refs.CHECKPOINTS, refs.KEEP)


def is_collected(table: Mapping[str, Any]) -> bool:
    return table.get("deleted") is True and table.get(COLLECTED) is True


def collected_on(repo: Repo, commits: Iterable[str]) -> dict[str, set[str]]:
    """Commit -> ids of the collected runs its runs note holds (commits with none left out)."""
    snap = store.snapshot(repo, refs.RUNS)
    docs = store.read_all(repo, snap, [c for c in commits if c in snap.entries])
    out: dict[str, set[str]] = {}
    for commit, doc in docs.items():
        gone = {rid for rid, table in doc.items() if is_collected(table)}
        if gone:
            out[commit] = gone
    return out


def dead(
    repo: Repo,
    commits: Iterable[str],
    table: Mapping[str, str] | None = None,
    assume: Collection[str] = (),
) -> set[str]:
    """Of `commits`, those that pin no record any more (the module's docstring).

    A commit without a runs note is never dead: what pins it is not ours to judge (a shallow
    clone, a note written by another tool). `table` is a ref snapshot holding our notes refs;
    deleted runs in `assume` count as collected (what a dry run of gc would collect).
    """
    wanted = set(commits)
    if not wanted:
        return set()
    snap = store.snapshot(repo, refs.RUNS)
    docs = store.read_all(repo, snap, [c for c in wanted if c in snap.entries])
    out = {
        c
        for c, doc in docs.items()
        if doc
        and all(
            is_collected(t) or (rid in assume and t.get("deleted") is True)
            for rid, t in doc.items()
        )
    }
    if not out:
        return out
    table = table if table is not None else repo.ref_table(refs.NOTES_GLOB)
    for name, target in table.items():
        if refs.is_notes_ref(name) and name != refs.RUNS and name not in RUN_KEYED:
            out -= set(repo.notes(target))
    return out


def is_pin(name: str) -> bool:
    return name.startswith(PINS)


def dead_pins(
    repo: Repo,
    pins: Mapping[str, str],
    table: Mapping[str, str] | None = None,
    assume: Collection[str] = (),
) -> set[str]:
    """The names of `pins` (pin ref -> commit; other refs are ignored) that pin a dead commit."""
    chosen = {n: c for n, c in pins.items() if is_pin(n)}
    gone = dead(repo, set(chosen.values()), table, assume)
    return {n for n, c in chosen.items() if c in gone}
