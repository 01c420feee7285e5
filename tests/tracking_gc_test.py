"""`git mlm gc` of deleted runs: series, profiles, artifacts and checkpoint refs go, the
tombstone stays, shared bytes and shared checkpoints survive, archived runs are untouched, a
run written meanwhile is not lost, and sync across clones never brings any of it back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import gitmlm
from gitmlm.checkpoints import checkpoint
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.models import fetch
from gitmlm.storage import settings
from gitmlm.tracking import logged, manage
from gitmlm.tracking import record as tracking
from tests.helpers import git, mlm, seeded_remote, setup_project, sync_all


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _run(
    path: Path,
    name: str,
    files: tuple[str, ...] = (),
    code: checkpoint.Code | None = None,
    profile: bool = False,
) -> str:
    """A finished run with a step series, the given work-tree files as artifacts, and a text
    kept in memory (its copy under .git/mlm/artifacts/<run-id>/); a data profile if asked."""
    repo = Repo.open(path)
    active = tracking.begin(repo, name, {"n": name}, command=["train"], code=code)
    if profile:
        import pandas as pd

        active.log_dataset("frame", pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    for step in range(3):
        active.log_metric("loss", 1.0 / (step + 1), step=step)
    for f in files:
        active.log_artifact(path / f)
    active.log_text(f"notes of {name}", "notes.txt")
    active.flush()
    return tracking.finish(repo, active.record, "finished", 0).id


def _series(path: Path, ref: str = refs.SERIES) -> set[str]:
    """Run ids with a table in the series (or profile) notes."""
    repo = Repo.open(path)
    snap = store.snapshot(repo, ref)
    return {rid for doc in store.read_all(repo, snap).values() for rid in doc}


def _pins(path: Path) -> dict[str, str]:
    return Repo.open(path).ref_table(refs.CHECKPOINTS, refs.KEEP)


def _record(path: Path, rid: str) -> dict[str, object]:
    (run,) = [r for r in tracking.list_runs(Repo.open(path), deleted=True).runs if r.id == rid]
    return {"deleted": run.deleted, "collected": run.extra.get("collected"), "name": run.name}


def _dirty(path: Path, text: str) -> None:
    """An uncommitted change of code: the next run gets a checkpoint commit and ref."""
    (path / "train.py").write_text(text)


def test_gc_drops_what_only_deleted_runs_hold(repo: Path) -> None:
    setup_project(repo)
    r = Repo.open(repo)
    store_ = settings.cache(r)
    (repo / "models").mkdir()
    blobs = {
        "shared.bin": b"bytes a live run names too",
        "only_x.bin": b"bytes only the deleted run names",
        "only_z.bin": b"bytes of the archived run",
        "data.bin": b"bytes a dataset names too",
        "scanned.bin": b"bytes a scan names too",
        "models/churn.pkl": b"bytes a model version names too",
    }
    for name, data in blobs.items():
        (repo / name).write_bytes(data)
    # a dataset with the bytes of data.bin, a registered model with those of churn.pkl
    (repo / "data").mkdir()
    (repo / "data" / "d.bin").write_bytes(blobs["data.bin"])
    mlm(repo, "data", "add", "train", "data")
    git(repo, "add", "-A", "data", "mlm.lock", "models")
    git(repo, "commit", "-q", "-m", "data and model")

    _dirty(repo, "print('x')\n")
    x = _run(
        repo,
        "x",
        ("shared.bin", "only_x.bin", "data.bin", "scanned.bin", "models/churn.pkl"),
        profile=True,
    )
    _dirty(repo, "print('y')\n")
    y = _run(repo, "y", ("shared.bin",), profile=True)
    _dirty(repo, "print('z')\n")
    z = _run(repo, "z", ("only_z.bin",))
    _dirty(repo, "print('w')\n")
    w = _run(repo, "w")
    w_commit = _pins(repo)[refs.checkpoint(w)]
    # a reproduction of w runs w's checkpointed code: its record sits on w's checkpoint commit
    rep = _run(repo, "rep", code=checkpoint.Code(w_commit, "snapshot", None, {}))
    git(repo, "checkout", "-q", "train.py")
    mlm(repo, "register", "churn")
    # a scan that names scanned.bin (written as `git mlm scan` writes its table)
    head = git(repo, "rev-parse", "HEAD").strip()
    scan = {"updated": codec.now(), "artifact_digest": _digest(blobs["scanned.bin"])}
    store.put_runs(r, refs.SCANS, head, {"run x sha256:0": scan}, "a scan")

    folder = repo.parent / "objects-remote"
    mlm(repo, "storage", "add", "shared", str(folder), "-d")
    fetch.push_all(r)  # every object, x's included, is on the storage remote too
    manage.remove(r, [x, w])
    manage.archive(r, [z])
    x_commit = _pins(repo)[refs.checkpoint(x)]
    before = {n: r.ref(n) for n in (refs.RUNS, refs.SERIES)}
    assert logged.kept_dir(r, x).is_dir()

    # --dry-run lists what would go and changes nothing
    dry = mlm(repo, "gc", "--dry-run").stdout
    assert "would collect 2 deleted run(s): 2 series table(s)" in dry, dry
    assert f"run {x}" in dry and f"run {w}" in dry and f"ref {refs.checkpoint(x)}" in dry
    assert refs.checkpoint(w) not in dry  # shared with the live reproduction
    assert f"object {_digest(blobs['only_x.bin'])}" in dry
    assert {n: r.ref(n) for n in (refs.RUNS, refs.SERIES)} == before
    assert refs.checkpoint(x) in _pins(repo) and logged.kept_dir(r, x).is_dir()
    assert store_.has(_digest(blobs["only_x.bin"]))

    out = mlm(repo, "gc", "--remote", "--yes").stdout
    assert "collected 2 deleted run(s): 2 series table(s), 1 profiles table(s)" in out, out
    assert "1 checkpoint/keep ref(s), 2 kept file(s)" in out
    assert "cache: deleted 3 object(s)" in out  # only_x.bin and the notes.txt of x and w
    assert "git gc --prune=now" in out
    # series: the deleted runs' went, the others' stayed (the archived run's included)
    assert _series(repo) == {y, z, rep} and _series(repo, refs.PROFILES) == {y}
    # checkpoint refs: x's went; w's stays (a live run is recorded on its commit)
    pins_now = _pins(repo)
    assert refs.checkpoint(x) not in pins_now
    assert {refs.checkpoint(w), refs.checkpoint(y), refs.checkpoint(z)} <= set(pins_now)
    # kept copies of in-memory artifacts
    assert not logged.kept_dir(r, x).exists() and not logged.kept_dir(r, w).exists()
    assert logged.kept_dir(r, y).is_dir() and logged.kept_dir(r, z).is_dir()
    # objects: what only x named went at once (no grace hour for a deleted run's bytes);
    # bytes a live run, the archived run, a dataset, a model version or a scan names stay
    assert not store_.has(_digest(blobs["only_x.bin"]))
    assert not store_.has(_digest(b"notes of x"))
    for name in ("shared.bin", "only_z.bin", "data.bin", "scanned.bin", "models/churn.pkl"):
        assert store_.has(_digest(blobs[name])), name
    assert "remote shared: deleted 3 object(s)" in out  # the same three on the storage remote
    there = {p.parent.name + p.name for p in (folder / "sha256").glob("*/*")}
    assert _digest(blobs["only_x.bin"])[7:] not in there
    assert _digest(blobs["shared.bin"])[7:] in there
    # the tombstone stays, marked collected; the archived run is untouched
    assert _record(repo, x) == {"deleted": True, "collected": True, "name": "x"}
    assert _record(repo, z)["collected"] is None
    proc = mlm(repo, "show", x, check=False)
    assert proc.returncode == 1 and "was deleted" in proc.stderr
    assert "z" in mlm(repo, "runs", "--all").stdout

    # git's own objects: `git gc --prune=now` reclaims x's checkpoint commit; the tombstone on
    # it still reads, and nobody warns about an unplaceable run
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert subprocess.run(["git", "cat-file", "-e", x_commit], cwd=repo).returncode != 0
    listed = mlm(repo, "runs")
    assert "this clone does not have" not in listed.stderr
    assert {row["run_id"] for row in json.loads(mlm(repo, "runs", "--format", "json").stdout)} == {
        y,
        rep,
    }

    # again: nothing left to drop; the Python API reports the same way
    assert "runs: no deleted run to collect" in mlm(repo, "gc", "--dry-run").stdout
    again = gitmlm.gc()
    assert again.runs.runs == [] and again.runs.refs == [] and again.cache.deleted == []
    # restore after gc brings the record back, not what gc dropped
    said = mlm(repo, "runs", "restore", x).stderr
    assert "was collected by `git mlm gc`" in said
    assert _record(repo, x) == {"deleted": False, "collected": False, "name": "x"}
    assert x not in _series(repo)


def test_a_run_written_while_gc_runs_is_not_lost(repo: Path, tmp_path: Path) -> None:
    shared = b"the bytes a deleted run and a running run both log"
    (repo / "m.bin").write_bytes(shared)
    x = _run(repo, "x", ("m.bin",))
    r = Repo.open(repo)
    manage.remove(r, [x])
    # a run in flight logs the same bytes: its record names them only when it ends
    live = tracking.begin(r, "live", {}, command=["train"])
    live.log_artifact(repo / "m.bin")
    live.log_metric("loss", 0.5, step=1)
    live.flush()
    gitmlm.gc()
    assert settings.cache(r).has(_digest(shared))  # the journal keeps it live
    tracking.finish(r, live.record, "finished", 0)
    assert gitmlm.get_run(live.id).steps["loss"]["value"] == [0.5]

    # many runs recorded by another process while gc runs again and again: none is lost
    script = tmp_path / "record.py"
    script.write_text(
        "import sys, gitmlm\n"
        "for i in range(int(sys.argv[1])):\n"
        "    with gitmlm.start_run(name=f'c{i}') as run:\n"
        "        run.log_metric('loss', i, step=i)\n"
        "    print(run.id, flush=True)\n"
    )
    for i in range(3):  # something to collect on every round
        manage.remove(r, [_run(repo, f"junk{i}")])
    writer = subprocess.Popen(
        [sys.executable, str(script), "25"], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    rounds = 0
    while writer.poll() is None or rounds < 2:
        gitmlm.gc()
        rounds += 1
        if rounds % 2 == 0:
            manage.remove(r, [_run(repo, f"more{rounds}")])
        time.sleep(0.01)
    out, _ = writer.communicate()
    assert writer.returncode == 0
    written = out.split()
    assert len(written) == 25
    listing = tracking.list_runs(r)
    have = {run.id for run in listing.runs}
    assert set(written) <= have
    series = _series(repo)
    assert set(written) <= series  # every live run's series survived the sweeps
    gone = {run.id for run in tracking.list_runs(r, deleted=True).runs if run.deleted}
    gitmlm.gc()
    assert not (gone & _series(repo))


# --- across clones ------------------------------------------------------------------------------


def test_gc_across_clones_never_resurrects(tmp_path: Path) -> None:
    url = seeded_remote(tmp_path)
    a, b, c = (tmp_path / n for n in "abc")
    for path in (a, b):
        git(tmp_path, "clone", "-q", url, str(path))
    # b records x on a dirty tree (a checkpoint), with an artifact and a kept text
    (b / "x.bin").write_bytes(b"x's bytes")
    _dirty(b, "print('x')\n")
    x = _run(b, "x", ("x.bin",))
    keep_ = _run(b, "keep")
    sync_all(b, a)
    x_pin = refs.checkpoint(x)
    x_commit = _pins(b)[x_pin]
    assert x_pin in _pins(a) and x in _series(a)

    # a deletes x and collects it, then syncs: the remote loses x's checkpoint ref
    manage.remove(Repo.open(a), [x])
    gitmlm.gc(path=str(a))
    assert x not in _series(a) and x_pin not in _pins(a)
    assert "deleted on origin: 1 ref of runs gc collected" in mlm(a, "sync").stdout
    bare = Repo.open(tmp_path / "remote.git")
    assert x_pin not in bare.ref_table(refs.CHECKPOINTS)

    # b, which still has x whole and never saw the delete, tags it (a later edit), records
    # another run (its series ref diverges) and syncs
    manage.tag(Repo.open(b), x, {"late": "1"})
    _run(b, "later")
    sync_all(b)
    rb = Repo.open(b)
    assert _record(b, x) == {"deleted": True, "collected": True, "name": "x"}
    assert x not in _series(b)  # the merge dropped it rather than bringing it back
    assert x_pin in _pins(b)  # b's own copies wait for b's gc ...
    assert x_pin not in bare.ref_table(refs.CHECKPOINTS)  # ... and are not pushed back
    assert refs.keep(x_commit) not in bare.ref_table(refs.KEEP)  # nor re-pinned by a keep ref
    assert settings.cache(rb).has(_digest(b"x's bytes")) and logged.kept_dir(rb, x).is_dir()

    # gc in b drops its copies too
    report = gitmlm.gc(path=str(b))
    assert report.runs.refs == [x_pin] and report.runs.kept_files == 1
    assert x_pin not in _pins(b) and not logged.kept_dir(rb, x).exists()
    assert not settings.cache(rb).has(_digest(b"x's bytes"))

    # every clone, the remote and a fresh clone agree: x is a tombstone, nothing more
    sync_all(a, b, a)
    git(tmp_path, "clone", "-q", url, str(c))
    sync_all(c)
    for path in (a, b, c):
        assert _record(path, x)["deleted"] is True
        assert x not in _series(path) and x_pin not in _pins(path)
        assert refs.keep(x_commit) not in _pins(path)
        assert keep_ in {run.id for run in tracking.list_runs(Repo.open(path)).runs}
        tracking_copies = Repo.open(path).ref_table("refs/mlm-remotes/")
        assert not any(n.endswith(x) for n in tracking_copies)
    assert x_pin not in bare.ref_table(refs.CHECKPOINTS)
    snap = store.snapshot(bare, refs.SERIES)
    assert not any(x in doc for doc in store.read_all(bare, snap).values())


def test_a_pin_is_deleted_only_where_gc_saw_it(repo: Path) -> None:
    """gc deletes a pin ref as a compare-and-swap: one moved meanwhile stays."""
    r = Repo.open(repo)
    first = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    second = git(repo, "rev-parse", "HEAD").strip()
    name = refs.keep(first)
    r.update_ref(name, second, None)  # moved after gc saw it at `first`
    assert r.delete_ref(name, first) is False and r.ref(name) == second
    assert r.delete_ref(name, second) is True and r.ref(name) is None
