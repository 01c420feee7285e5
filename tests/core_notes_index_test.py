"""Index notes (schema 2): a commit with many runs keeps one blob per run in a store tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.sync import sync
from gitmlm.tracking import record as tracking
from tests.helpers import git


def _run(i: int, commit: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    rid = f"01m{i:023d}"
    table = {
        "name": f"r{i}",
        "status": "finished",
        "started": "2026-01-01T00:00:00Z",
        "updated": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "commit": commit,
        "metrics": {"acc": i / 100},
        **extra,
    }
    return rid, table


def _put(r: Repo, commit: str, runs: dict[str, dict[str, Any]], ref: str = refs.RUNS) -> None:
    store.put_runs(r, ref, commit, runs, "test")


def _doc(r: Repo, commit: str, ref: str = refs.RUNS) -> store.Doc:
    snap = store.snapshot(r, ref)
    return store.read_doc(r, snap.entries[commit])


def test_an_old_big_note_migrates_on_its_first_write_and_stays_readable(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    old = dict(_run(i, head) for i in range(store.INLINE_MAX + 6))
    # A note written by an older gitmlm: one schema-1 document with every run.
    blob = r.write_blob(codec.encode_doc(old))
    r.update_ref(refs.RUNS, r.write_notes(refs.RUNS, None, {head: blob}, "old"), None)
    assert len(tracking.list_runs(r).runs) == len(old)  # the old format reads as before
    rid, table = _run(500, head)
    _put(r, head, {rid: table})
    shown = git(repo, "log", "-1", "--notes=mlm")
    assert f"{len(old) + 1} runs on this commit" in shown and f"[latest.{rid}]" in shown
    assert 'name = "r500"' in shown  # plain git log still shows the newest runs
    assert _doc(r, head) == {**old, rid: table}
    tree = git(repo, "ls-tree", "-r", "--name-only", refs.RUNS).split()
    assert f"{store.STORE}/{head}/{rid[-2:]}/{rid}" in tree
    # Replacing a run changes its blob only; the count stays.
    _put(r, head, {rid: {**table, "status": "failed"}})
    assert _doc(r, head)[rid]["status"] == "failed"
    assert f"{len(old) + 1} runs on this commit" in git(repo, "log", "-1", "--notes=mlm")
    # An index built in one go equals the one grown run by run: merges converge.
    snap = store.snapshot(r, refs.RUNS)
    again = store.stage_doc(r, head, _doc(r, head))
    assert again[head] == snap.entries[head]
    git(repo, "fsck", "--no-dangling")


def test_small_notes_stay_schema_1_and_are_spliced(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    runs = dict(_run(i, head) for i in range(5))
    for rid, table in runs.items():
        _put(r, head, {rid: table})
    snap = store.snapshot(r, refs.RUNS)
    assert r.blob(snap.entries[head]) == codec.encode_doc(runs)  # byte for byte


def test_git_notes_and_amend_keep_the_store(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    runs = dict(_run(i, head) for i in range(store.INLINE_MAX + 1))
    _put(r, head, runs)
    git(repo, "config", "notes.rewriteRef", "refs/notes/mlm*")
    git(repo, "commit", "-q", "--amend", "--allow-empty", "-m", "amended")
    new = r.head_commit()
    git(repo, "commit", "-q", "--allow-empty", "-m", "more")
    git(repo, "notes", "--ref", refs.RUNS, "add", "-m", "schema = 1\n", "HEAD")  # git keeps it
    assert _doc(r, new) == runs  # the copied index reads its store
    rid, table = _run(900, new)
    _put(r, new, {rid: table})
    assert _doc(r, new) == {**runs, rid: table}
    assert _doc(r, head) == runs
    git(repo, "fsck", "--no-dangling")


def test_sync_merges_index_notes_run_by_run(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    base = dict(_run(i, head) for i in range(store.INLINE_MAX + 2))
    _put(r, head, base)
    start = r.ref(refs.RUNS)
    ours = dict(_run(i, head) for i in range(100, 103))
    _put(r, head, ours)
    # The other side: from the same start, changes one common run and adds its own.
    theirs_ref = "refs/notes/theirs"
    r.update_ref(theirs_ref, start or "", None)
    changed_rid, changed = _run(3, head, tags={"late": "yes"})
    theirs = dict(_run(i, head) for i in range(200, 202))
    _put(r, head, {**theirs, changed_rid: changed}, theirs_ref)
    change = sync.merge_notes_ref(r, refs.RUNS, r.ref(theirs_ref) or "", "them")
    assert change is not None and change.action == "merged"
    merged = _doc(r, head)
    assert merged == {**base, **ours, **theirs, changed_rid: changed}
    # Merging the other way round builds the very same index (the rule is symmetric).
    other = "refs/notes/other"
    r.update_ref(other, r.ref(theirs_ref) or "", None)
    mine_tip = r.ref(refs.RUNS) or ""
    sync.merge_notes_ref(r, other, r.commit(mine_tip).parents[0], "us")
    assert store.snapshot(r, other).entries[head] == store.snapshot(r, refs.RUNS).entries[head]
    git(repo, "fsck", "--no-dangling")


def test_a_heartbeat_on_a_big_commit_rewrites_one_run_and_keeps_the_index(repo: Path) -> None:
    from gitmlm.checkpoints import placement

    r = Repo.open(repo)
    head = r.head_commit()
    runs = dict(_run(i, head) for i in range(store.INLINE_MAX + 2))
    live, table = _run(900, head, status="running")
    _put(r, head, {**runs, live: table})
    placement.touch_running(r, head, live, {"updated": "2026-02-02T00:00:00Z"})
    snap = store.snapshot(r, refs.RUNS)
    assert store.is_index(r.blob(snap.entries[head]))
    doc = _doc(r, head)
    assert doc[live]["updated"] == "2026-02-02T00:00:00Z" and len(doc) == len(runs) + 1
    finished = next(iter(runs))  # a run that has ended is never made running again
    placement.touch_running(r, head, finished, {"status": "running"})
    assert _doc(r, head)[finished]["status"] == "finished"
