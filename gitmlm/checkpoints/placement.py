"""Runs on more than one commit: a checkpoint run re-attached to the commit of its code, runs
of squashed branches shown on the squash commit, and notes of rewritten commits merged.

A run's table is copied (not moved) into the note of each commit it is attached to, and its
`attached` list names them all, so a later write of the run (its end) reaches every copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitmlm.checkpoints import rules as coderules
from gitmlm.checkpoints.checkpoint import CodeKeys
from gitmlm.checkpoints.rules import Rules
from gitmlm.core import codec, digest, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

ATTACHED = "attached"


@dataclass(frozen=True)
class Attached:
    run_id: str
    commit: str
    """The commit the run now also shows on."""
    source: str
    """The commit whose note carried it (its checkpoint, or a squashed commit)."""
    why: str


def _homes(note_commit: str, table: Mapping[str, Any]) -> list[str]:
    out = [note_commit]
    for c in [table.get("commit"), *table.get(ATTACHED, [])]:
        if isinstance(c, str) and c not in out:
            out.append(c)
    return out


def _doc(repo: Repo, snap: store.Snapshot, commit: str) -> store.Doc | None:
    """A note's runs (a copy), {} when there is no note, None when it is unreadable."""
    blob = snap.entries.get(commit)
    if blob is None:
        return {}
    try:
        return {k: dict(v) for k, v in store.read_doc(repo, blob).items()}
    except codec.NoteError:
        return None


def put_run(repo: Repo, commit: str, run_id: str, table: Mapping[str, Any], message: str) -> None:
    """Write a run into the note on `commit` and into every commit it was attached to since."""

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        try:
            mine = store.run_table(repo, snap, commit, run_id) or {}
        except codec.NoteError as exc:
            raise MlmError(
                f"the note on {commit[:12]} in {refs.RUNS} is not valid; fix or remove it with "
                f"`git notes --ref {refs.RUNS} edit {commit[:12]}`"
            ) from exc
        attached = list(mine.get(ATTACHED, []))
        attached += [c for c in table.get(ATTACHED, []) if c not in attached]
        new = dict(table)
        if attached:
            new[ATTACHED] = attached
        updates: dict[str, str | None] = {}
        for c in [commit, *attached]:
            if c != commit and c not in snap.entries:
                continue  # a copy that was removed
            try:
                updates.update(store.stage_runs(repo, snap, c, {run_id: new}))
            except codec.NoteError:
                continue  # an unreadable note elsewhere: leave it alone
        return updates

    store.update(repo, refs.RUNS, change, message)


def touch_running(repo: Repo, commit: str, run_id: str, fields: Mapping[str, Any]) -> None:
    """Set `fields` (a live run's heartbeat) in every copy of a run that is still running.

    Only those fields change, so what others wrote meanwhile (`attached`) is kept, and a run
    that has ended is never made running again.
    """

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        try:
            table = store.run_table(repo, snap, commit, run_id)
        except codec.NoteError:
            return {}
        if table is None or table.get("status") != "running":
            return {}
        updates: dict[str, str | None] = {}
        for c in _homes(commit, table):
            # One run's table, written as stage_runs writes any run: a heartbeat on a commit
            # holding a sweep costs one run, not the whole note.
            try:
                copy = table if c == commit else store.run_table(repo, snap, c, run_id)
                if copy is None or copy.get("status") != "running":
                    continue
                updates.update(store.stage_runs(repo, snap, c, {run_id: {**copy, **fields}}))
            except codec.NoteError:
                continue  # an unreadable note elsewhere: leave it alone
        return updates

    store.update(repo, refs.RUNS, change, f"gitmlm: heartbeat of run {run_id}")


def added_outputs(repo: Repo, commit: str, rules: Rules) -> dict[str, str]:
    """Outputs a commit adds or changes (against its first parent) -> their sha256 digest."""
    if not rules.outputs:
        return {}
    info = repo.commit(commit)
    parent_tree = repo.tree_of(info.parents[0]) if info.parents else None
    paths = (
        repo.changed_paths(parent_tree, info.tree)
        if parent_tree
        else repo.changed_paths(_empty_tree(repo), info.tree)
    )
    out = {}
    for p in paths:
        if rules.outputs.match(p):
            blob = repo.blob_at(commit, p)
            if blob is not None:
                out[p] = digest.of_bytes(repo.blob(blob))
    return out


def _empty_tree(repo: Repo) -> str:
    return repo.run_git("hash-object", "-t", "tree", "-w", "--stdin", input="").strip()


def matching_runs(
    repo: Repo, commit: str, rules: Rules, keys: CodeKeys, snap: store.Snapshot
) -> dict[str, Attached]:
    """Runs to show on `commit`: their code equals its code (restricted to the code rules) and
    no commit carrying them is already in its history — or they made an output it adds."""
    target = keys.of_commit(commit)
    outputs = added_outputs(repo, commit, rules)
    present = _doc(repo, snap, commit) or {}
    found: dict[str, Attached] = {}
    for note_commit in snap.entries:
        if note_commit == commit or not repo.has_object(note_commit):
            continue
        try:
            if keys.of_commit(note_commit) != target:
                continue
        except MlmError:
            continue  # a note on something that is not a commit
        doc = _doc(repo, snap, note_commit) or {}
        for rid, table in doc.items():
            if rid in found or rid in present:
                continue
            homes = [h for h in _homes(note_commit, table) if h != commit]
            made = [
                p
                for p, digest in outputs.items()
                if table.get("artifacts", {}).get(p, {}).get("digest") == digest
            ]
            if made:
                why = "made " + ", ".join(made)
            elif any(repo.has_object(h) and repo.is_ancestor(h, commit) for h in homes):
                continue  # already in this commit's history; do not repeat it on every commit
            elif table.get("checkpoint") == "snapshot" and table.get("commit") == note_commit:
                why = "checkpoint code"
            else:
                why = "same code as " + note_commit[:10]
            found[rid] = Attached(rid, commit, note_commit, why)
    return found


def reattach(repo: Repo, commits: Iterable[str]) -> list[Attached]:
    """Attach to each commit the runs whose code it holds; one notes commit for all."""
    snap = store.snapshot(repo, refs.RUNS)
    if not snap.entries:
        return []
    rules = coderules.load(repo.workdir)
    keys = CodeKeys(repo, rules)
    todo: list[Attached] = []
    for commit in commits:
        todo.extend(matching_runs(repo, commit, rules, keys, snap).values())
    keys.save()
    if not todo:
        return []

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        docs: dict[str, store.Doc] = {}
        changed: dict[str, store.Doc] = {}

        def doc_of(c: str) -> store.Doc | None:
            if c not in docs:
                doc = _doc(repo, snap, c)
                if doc is None:
                    return None
                docs[c] = doc
            return docs[c]

        for a in todo:
            source = doc_of(a.source)
            table = source.get(a.run_id) if source else None
            if table is None:
                continue  # removed meanwhile
            attached = list(table.get(ATTACHED, []))
            if a.commit not in attached:
                attached.append(a.commit)
            new = {**table, ATTACHED: attached}
            for c in _homes(a.source, new):
                if c != a.commit and c not in snap.entries:
                    continue
                doc = doc_of(c)
                if doc is None:
                    continue
                doc[a.run_id] = new
                changed.setdefault(c, {})[a.run_id] = new
        updates: dict[str, str | None] = {}
        for c, runs in changed.items():
            updates.update(store.stage_runs(repo, snap, c, runs))
        return updates

    store.update(repo, refs.RUNS, change, f"gitmlm: attach {len(todo)} run(s) to their commits")
    return todo


def merge_rewritten(repo: Repo, pairs: Iterable[tuple[str, str]]) -> int:
    """After amend/rebase: the note of each new commit holds the union (by run id) of its old
    commits' runs. `git notes` would concatenate two TOML documents (squash, fixup), which is
    not TOML; runs attached to an old commit are re-pointed at the new one."""
    groups: dict[str, list[str]] = {}
    for old, new in pairs:
        groups.setdefault(new, []).append(old)
    carried: dict[str, int] = {}
    for ref in (refs.RUNS, refs.SERIES, refs.PROFILES, refs.OBSERVATIONS):

        def change(snap: store.Snapshot, ref: str = ref) -> dict[str, str | None]:
            carried[ref] = 0
            updates: dict[str, str | None] = {}
            for new, olds in groups.items():
                merged: store.Doc = {}
                for source in [*olds, new]:
                    for rid, table in (_doc(repo, snap, source) or {}).items():
                        old = merged.get(rid)
                        if old is None or str(table.get("updated", "")) >= str(
                            old.get("updated", "")
                        ):
                            merged[rid] = table
                if not merged:
                    continue
                for table in merged.values():
                    if ATTACHED in table:
                        table[ATTACHED] = list(
                            dict.fromkeys(new if c in olds else c for c in table[ATTACHED])
                        )
                staged = store.stage_doc(repo, new, merged)
                if staged[new] != snap.entries.get(new):
                    updates.update(staged)
                    carried[ref] += len(merged)
            return updates

        store.update(repo, ref, change, "gitmlm: merge notes of rewritten commits")
    return carried.get(refs.RUNS, 0)
