"""Reading runs: every run in the notes, resolving one by id or name, its step series.

Kept apart from recording (tracking.record) so that the checkpoint hook and the registry read
runs without loading the data-hashing and checkpoint-writing modules."""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

from gitmlm.core import codec, ids, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import liveness

HEARTBEAT = "heartbeat_every"
"""The record's key for how often its owner beats (seconds)."""


@dataclass
class Listing:
    runs: list[Run]
    commits: dict[str, list[str]] = field(default_factory=dict)
    """Run id -> every commit whose note carries it (a run re-attached after a commit has two)."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(commit, problem) for notes that could not be read; the rest still list."""
    unplaced: int = 0
    """Runs none of whose commits is here (a shallow clone): they cannot be placed."""
    deleted: list[str] = field(default_factory=list)
    """Ids of deleted runs left out of `runs` (so resolving one can say it was deleted)."""


def effective_status(run: Run) -> str:
    """A run still `running` whose heartbeat stopped, or whose process here is gone, crashed."""
    every = run.extra.get(HEARTBEAT)
    return liveness.status(
        run.status,
        run.host,
        run.pid,
        run.updated,
        run.extra.get("pid_ns"),
        float(every) if isinstance(every, (int, float)) else None,
    )


def list_runs(
    repo: Repo,
    commits: list[str] | None = None,
    *,
    placed_only: bool = False,
    deleted: bool = False,
) -> Listing:
    """Every run in the notes; `placed_only` leaves out runs that cannot be placed (below).

    Deleted runs (tombstones, `git mlm runs rm`) are left out unless `deleted`.
    """
    snap = store.snapshot(repo, refs.RUNS)
    docs = store.read_all(repo, snap, commits)
    best: dict[str, Run] = {}
    where: dict[str, list[str]] = {}
    errors = snap.errors
    for commit, doc in docs.items():
        for rid, table in doc.items():
            try:
                run = codec.run_from_dict(rid, table)
            except codec.NoteError as exc:
                errors.append((commit, str(exc)))
                continue
            where.setdefault(rid, []).append(commit)
            old = best.get(rid)
            if old is None or (run.updated or "") > (old.updated or ""):
                best[rid] = run
    # A note on a commit this clone lacks still reads (its blob came with the notes), but the
    # run cannot be placed in history or checked out (a shallow clone): counted, and left out
    # of listings that ask for placed runs only.
    # A deleted run is not counted: once gc dropped its checkpoint ref, `git gc --prune` may
    # take its commit, and only its tombstone is left to read.
    missing = {c for c in docs if not repo.has_object(c)}
    unplaced = (
        [r for r, cs in where.items() if all(c in missing for c in cs) and not best[r].deleted]
        if missing
        else []
    )
    if placed_only:
        for rid in unplaced:
            del best[rid], where[rid]
    gone = [] if deleted else [rid for rid, run in best.items() if run.deleted]
    for rid in gone:
        del best[rid]
    for run in best.values():
        run.status = effective_status(run)
    ordered = sorted(best.values(), key=lambda r: r.id, reverse=True)
    return Listing(ordered, where, errors, len(unplaced), gone)


def fetch_hint(repo: Repo, any_runs: bool) -> str | None:
    """Why runs may be missing here though a remote has them, or None; `any_runs`: a listing
    found some.

    After `git clone` no notes ref exists (git fetches none by default); after a plain
    `git fetch` with gitmlm's refspecs the remote's notes sit unmerged under refs/notes/remotes/.
    """
    remotes = repo.remotes()
    if not remotes:
        return None
    local = repo.ref(refs.RUNS)
    if local is None and not any_runs:
        return (
            "no runs are recorded in this clone; a remote may have some: "
            "`git mlm fetch` brings them"
        )
    for remote in remotes:
        theirs = repo.ref(refs.remote_notes_prefix(remote) + refs.RUNS.rsplit("/", 1)[1])
        if theirs and theirs != local and (local is None or not repo.is_ancestor(theirs, local)):
            return f"{remote} has runs not merged here; `git mlm fetch {remote}` merges them"
    return None


def resolve(listing: Listing, prefix: str) -> Run:
    """A run by id, unambiguous id prefix (like an abbreviated git hash) or unique name."""
    key = prefix.strip()
    by_id = (
        [r for r in listing.runs if r.id.startswith(key.lower())]
        if ids.is_run_id_prefix(key.lower())
        else []
    )
    by_name = [r for r in listing.runs if r.name == key and r not in by_id]
    found = by_id + by_name
    if len(found) == 1:
        return found[0]
    gone = [rid for rid in listing.deleted if rid.startswith(key.lower())]
    if not found and gone and ids.is_run_id_prefix(key.lower()):
        raise MlmError(f"run {prefix!r} was deleted; `git mlm runs restore {prefix}` undoes it")
    if not found:
        close = difflib.get_close_matches(key, sorted({r.name for r in listing.runs}), 3)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise MlmError(f"no run with id or name {prefix!r}{hint}; `git mlm runs` lists them")
    shown = ", ".join(f"{r.id[: ids.SHORT]} ({r.name})" for r in found[:8])
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    raise MlmError(
        f"{prefix!r} is ambiguous: it names {len(found)} runs: {shown}{more}; give a longer id"
    )


def get_run(repo: Repo, run_id: str, problems: list[str] | None = None) -> Run:
    """One run, with its per-step metric series loaded.

    A series note that cannot be read is a problem appended to `problems`, or a warning when
    no list is given: the run is still returned, but never silently without its series.
    """
    listing = list_runs(repo)
    run = resolve(listing, run_id)
    run.steps = load_steps(repo, listing, run, problems)
    return run


def load_steps(
    repo: Repo, listing: Listing, run: Run, problems: list[str] | None = None
) -> dict[str, dict[str, list[float]]]:
    """A run's per-step series ({metric: {"step": [...], "value": [...]}}), from the series
    notes of whichever commit carries them; reads no other run's series. Problems as for
    get_run."""
    snap = store.snapshot(repo, refs.SERIES)
    steps: dict[str, dict[str, list[float]]] = {}
    for commit in listing.commits.get(run.id, [run.commit]):
        docs = store.read_all(repo, snap, [commit])
        table = docs.get(commit, {}).get(run.id)
        if table:
            try:
                steps = {
                    k: {"step": list(v["step"]), "value": list(v["value"])}
                    for k, v in table.items()
                }
            except (KeyError, TypeError) as exc:
                snap.errors.append((commit, f"run {run.id} has a bad series table ({exc})"))
                continue
            break
    if run.series and not steps:
        found = [f"{c[:12]}: {why}" for c, why in snap.errors] or ["no series note was found"]
        message = (
            f"the step series of run {run.id[: ids.SHORT]} ({', '.join(run.series)}) cannot be "
            f"read from {refs.SERIES}: {'; '.join(found)}"
        )
        if problems is None:
            warnings.warn(message, stacklevel=3)
        else:
            problems.append(message)
    return steps
