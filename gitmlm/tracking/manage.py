"""Managing recorded runs after the fact: delete, archive, restore, rename, tag, untag, note.

Every change is a field of the run's record with a fresh `updated`, never a removal, so sync's
run-by-run merge (docs/sync.md) decides between clones: the newer version wins and keys only
the older one has are kept. Hence

- `deleted = true` (a tombstone) beats every older version, and a later edit made on a clone
  that never saw the deletion does not resurrect the run (the merge keeps `deleted`); only
  `restore`, which writes `deleted = false`, does;
- `archived = true` hides a run from listings the same way;
- `untag` writes `untagged.KEY = true` rather than dropping the tag, and tagging again writes
  `untagged.KEY = false`.

All runs named in one call are resolved first and changed in one notes commit: a bad name
changes nothing. A run still running is refused: its owner rewrites the record when it ends.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gitmlm.checkpoints import pins
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import record as tracking

Edit = Callable[[dict[str, Any]], list[tuple[str, str | None]]]
"""Changes a run's table; returns the fields it set: (field, None) or (table, key)."""
EDITED = "edited"
"""Per-field edit times; sync's merge (gitmlm/sync/merge.py) takes each field from the side
that edited it last, so two clones editing different fields of one run both keep theirs."""


def _resolve(repo: Repo, run_ids: Sequence[str], *, deleted: bool) -> tuple[list[Run], Any]:
    if not run_ids:
        raise MlmError("name at least one run (an id or an unambiguous id prefix)")
    listing = tracking.list_runs(repo, deleted=deleted)
    by_id = {r.id: r for r in listing.runs}  # a whole id needs no scan (gc names thousands)
    chosen: list[Run] = []
    seen: set[str] = set()
    for rid in run_ids:
        run = by_id.get(rid) or tracking.resolve(listing, rid)
        if run.status == "running":
            raise MlmError(
                f"run {run.id[:12]} is still running; change it after it ends "
                "(a crashed run: `git mlm runs --recover` first)"
            )
        if run.id not in seen:
            seen.add(run.id)
            chosen.append(run)
    return chosen, listing


def edit(
    repo: Repo,
    run_ids: Sequence[str],
    change: Callable[[Run], Edit],
    what: str,
    *,
    deleted: bool = False,
) -> list[Run]:
    """Apply `change(run)` to the stored table of each run, on every commit that carries it.

    `change` is called for every run before anything is written, so it can refuse (raise).
    """
    runs, listing = _resolve(repo, run_ids, deleted=deleted)
    edits = {run.id: change(run) for run in runs}
    stamp = codec.now()

    def apply(snap: store.Snapshot) -> dict[str, str | None]:
        docs: dict[str, store.Doc] = {}
        for rid, fn in edits.items():
            for commit in listing.commits.get(rid, []):
                blob = snap.entries.get(commit)
                if blob is None:
                    continue
                doc = docs.get(commit)
                if doc is None:
                    doc = docs[commit] = {k: dict(v) for k, v in store.read_doc(repo, blob).items()}
                table = doc.get(rid)
                if table is None:
                    continue
                stamps = table.get(EDITED)
                stamps = dict(stamps) if isinstance(stamps, dict) else {}
                for name, key in fn(table):
                    if key is None:
                        stamps[name] = stamp
                    else:
                        inner = stamps.get(name)
                        stamps[name] = {**(inner if isinstance(inner, dict) else {}), key: stamp}
                table[EDITED] = stamps
                table["updated"] = stamp
        return {c: repo.write_blob(codec.encode_doc(doc)) for c, doc in docs.items()}

    names = ", ".join(r.id for r in runs)
    store.update(repo, refs.RUNS, apply, f"gitmlm: {what} {names}")
    return runs


def _setter(**fields: Any) -> Edit:
    def fn(table: dict[str, Any]) -> list[tuple[str, str | None]]:
        table.update(fields)
        return [(name, None) for name in fields]

    return fn


def remove(repo: Repo, run_ids: Sequence[str]) -> list[Run]:
    """Delete runs: a tombstone (`deleted = true`) that sync carries to every clone."""
    return edit(repo, run_ids, lambda _run: _setter(deleted=True), "delete runs")


def archive(repo: Repo, run_ids: Sequence[str]) -> list[Run]:
    """Hide runs from listings (`git mlm runs --all` still shows them)."""
    return edit(repo, run_ids, lambda _run: _setter(archived=True), "archive runs")


def restore(repo: Repo, run_ids: Sequence[str]) -> list[Run]:
    """Undo `remove` and `archive`."""

    def change(run: Run) -> Edit:
        if not run.deleted and not run.archived:
            raise MlmError(f"run {run.id[:12]} is neither deleted nor archived")
        if run.extra.get(pins.COLLECTED) is True:
            # What gc dropped is gone: the record alone comes back, no longer marked, so a
            # later delete is collected again.
            return _setter(deleted=False, archived=False, **{pins.COLLECTED: False})
        return _setter(deleted=False, archived=False)

    return edit(repo, run_ids, change, "restore runs", deleted=True)


def rename(repo: Repo, run_id: str, name: str) -> tuple[Run, list[Run]]:
    """Give a run a new name; returns it and the other runs that already carry that name.

    Names are labels, as in MLflow (a sweep's trials may share one); ids identify runs. So a
    name in use is allowed, and the caller says so.
    """
    name = name.strip()
    if not name:
        raise MlmError("a run name cannot be empty")
    (run,) = edit(repo, [run_id], lambda _run: _setter(name=name), "rename run")
    same = [r for r in tracking.list_runs(repo).runs if r.name == name and r.id != run.id]
    return run, same


def tag(repo: Repo, run_id: str, tags: Mapping[str, Any]) -> Run:
    if not tags:
        raise MlmError("give at least one tag as KEY=VALUE")
    checked = {k: str(codec.check_value("tag", k, v)) for k, v in tags.items()}

    def change(_run: Run) -> Edit:
        def fn(table: dict[str, Any]) -> list[tuple[str, str | None]]:
            table["tags"] = {**table.get("tags", {}), **checked}
            # An explicit, stamped `false`, whether or not this clone saw an untag: a tag set
            # later than an untag made elsewhere wins over that untag when they merge.
            table["untagged"] = {**table.get("untagged", {}), **dict.fromkeys(checked, False)}
            return [(t, k) for k in checked for t in ("tags", "untagged")]

        return fn

    (run,) = edit(repo, [run_id], change, "tag run")
    return run


def untag(repo: Repo, run_id: str, keys: Sequence[str]) -> Run:
    if not keys:
        raise MlmError("name at least one tag to remove")

    def change(run: Run) -> Edit:
        for key in keys:
            if key not in run.tags:
                close = difflib.get_close_matches(key, list(run.tags), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                have = ", ".join(sorted(run.tags)) or "none"
                raise MlmError(f"run {run.id[:12]} has no tag {key!r} (tags: {have}){hint}")

        def fn(table: dict[str, Any]) -> list[tuple[str, str | None]]:
            marks = table["untagged"] = dict(table.get("untagged", {}))
            tags = table["tags"] = dict(table.get("tags", {}))
            for key in keys:
                marks[key] = True
                tags.pop(key, None)
            return [(t, k) for k in keys for t in ("tags", "untagged")]

        return fn

    (run,) = edit(repo, [run_id], change, "untag run")
    return run


def note(repo: Repo, run_id: str, text: str) -> Run:
    """Set the run's free-text note (MLflow's description); an empty text clears it."""
    (run,) = edit(repo, [run_id], lambda _run: _setter(note=text), "note on run")
    return run
