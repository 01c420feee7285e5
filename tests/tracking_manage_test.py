"""Managing runs after the fact: rm/archive/restore/rename/tag/untag/note, from the CLI and the
Python API, and tombstones that sync carries across three clones and a bare remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.core import codec
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.tracking import manage
from gitmlm.tracking import record as tracking
from tests.helpers import git, mlm, seeded_remote, setup_project, sync_all


def _run(path: Path, name: str, acc: float | None = None, **kw: Any) -> str:
    repo = Repo.open(path)
    active = tracking.begin(repo, name, {"n": name}, command=["train"], **kw)
    if acc is not None:
        active.log_metric("acc", acc)
    active.flush()
    return tracking.finish(repo, active.record, "finished", 0).id


def _ids(path: Path, *args: str) -> list[str]:
    return [r["run_id"] for r in json.loads(mlm(path, "runs", "--format", "json", *args).stdout)]


def test_cli_rm_archive_restore_rename_tag_note(repo: Path) -> None:
    a, b, c = _run(repo, "a"), _run(repo, "b"), _run(repo, "c")
    mlm(repo, "runs", "rm", a[:14])
    mlm(repo, "runs", "archive", b)
    assert _ids(repo) == [c]
    assert set(_ids(repo, "--all")) == {b, c}  # archived shows with --all; deleted never
    log = mlm(repo, "log").stdout
    assert a[:12] not in log and b[:12] in log  # log hides the deleted run only
    proc = mlm(repo, "show", a, check=False)
    assert proc.returncode == 1 and "was deleted" in proc.stderr
    mlm(repo, "runs", "restore", a, b)
    assert set(_ids(repo)) == {a, b, c}

    proc = mlm(repo, "runs", "rename", c, "b")
    assert "1 other runs are named 'b'" in proc.stderr  # allowed, and said
    mlm(repo, "runs", "tag", c, "owner=ada", "stage=try")
    mlm(repo, "runs", "untag", c, "stage")
    mlm(repo, "runs", "note", c, "baseline with the old tokenizer")
    (row,) = json.loads(mlm(repo, "runs", "--format", "json", "-w", f"run_id = '{c}'").stdout)
    assert row["name"] == "b" and row["tags.owner"] == "ada" and "tags.stage" not in row
    assert row["note"] == "baseline with the old tokenizer"


def test_python_api_mirrors_the_commands(repo: Path) -> None:
    a, b = _run(repo, "a"), _run(repo, "b")
    assert gitmlm.delete_runs(a) == [a]
    assert gitmlm.archive_runs(b) == [b]
    assert gitmlm.runs().empty
    assert list(gitmlm.runs(archived=True).run_id) == [b]
    gitmlm.restore_runs(a, b)
    gitmlm.rename_run(a, "first")
    gitmlm.tag_run(a, {"k": 1})
    gitmlm.untag_run(a, "k")
    gitmlm.tag_run(a, {"k": "again"})  # tagging after an untag wins over the mark
    gitmlm.note_run(a, "hello")
    run = gitmlm.get_run(a)
    assert (run.name, run.tags, run.extra["note"]) == ("first", {"k": "again"}, "hello")


def test_bad_input_is_one_line_and_writes_nothing(repo: Path) -> None:
    a = _run(repo, "a")
    _run(repo, "b")
    before = git(repo, "rev-parse", "refs/notes/mlm")
    for args, said in [
        (("rm", a, "zzzzzzzzzzzz"), "no run with id"),
        (("rm", "0"), "ambiguous"),
        (("untag", a, "nope"), "has no tag 'nope'"),
        (("restore", a), "neither deleted nor archived"),
        (("rename", a, " "), "cannot be empty"),
        (("tag", a, "novalue"), "not KEY=VALUE"),
    ]:
        proc = mlm(repo, "runs", *args, check=False)
        assert proc.returncode != 0 and said in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) <= 2
    assert git(repo, "rev-parse", "refs/notes/mlm") == before
    mlm(repo, "runs", "rm", a)
    proc = mlm(repo, "runs", "rm", a, check=False)
    assert "was deleted" in proc.stderr


def test_a_running_run_is_refused(repo: Path) -> None:
    r = Repo.open(repo)
    active = tracking.begin(r, "live")
    with pytest.raises(MlmError, match="still running"):
        manage.remove(r, [active.id])
    tracking.finish(r, active.record, "finished", 0)


def test_nested_runs_tree_and_best(repo: Path) -> None:
    setup_project(repo, 'schema = 1\n[metrics]\nacc = "max"\nloss = "min"\n')
    with gitmlm.start_run(name="sweep") as sweep:
        for lr, acc in ((0.1, 0.7), (0.01, 0.9)):
            with gitmlm.start_run(name=f"lr={lr}", parent=sweep) as trial:
                trial.log_metric("acc", acc)
    lone = _run(repo, "lone", 0.8)
    rows = json.loads(mlm(repo, "runs", "--tree", "--format", "json").stdout)
    assert [(r["name"], r["depth"]) for r in rows] == [
        ("lone", 0),
        ("sweep", 0),
        ("lr=0.01", 1),
        ("lr=0.1", 1),
    ]
    assert all(r.get("parent") == sweep.id for r in rows if r["depth"])
    table = mlm(repo, "runs", "--tree").stdout
    assert "\n  lr=0.01" in table.replace("  lr=0.01", "\n  lr=0.01", 1) or "  lr=0.01" in table
    best = json.loads(mlm(repo, "runs", "--best", "acc", "--format", "json").stdout)
    assert [r["metrics.acc"] for r in best] == [0.9, 0.8, 0.7]  # runs without acc left out
    assert list(gitmlm.runs(best="acc")["metrics.acc"]) == [0.9, 0.8, 0.7]
    proc = mlm(repo, "runs", "--best", "accuracy", check=False)
    assert proc.returncode == 1 and "does not say which way is better" in proc.stderr
    assert gitmlm.get_run(lone).parent is None


def test_failed_run_keeps_its_exception(repo: Path) -> None:
    with pytest.raises(ZeroDivisionError), gitmlm.start_run(name="boom") as run:
        1 / 0  # noqa: B018
    error = gitmlm.get_run(run.id).extra["error"]
    assert error["type"] == "ZeroDivisionError" and error["message"] == "division by zero"
    assert "1 / 0" in error["traceback"]


# --- sync: tombstones across three clones and a bare remote ------------------------------------


def _state(path: Path) -> dict[str, tuple[str, bool, bool, dict[str, str]]]:
    listing = tracking.list_runs(Repo.open(path), deleted=True)
    return {r.id: (r.name, r.deleted, r.archived, r.tags) for r in listing.runs}


def test_tombstones_sync_across_three_clones(tmp_path: Path) -> None:
    url = seeded_remote(tmp_path)
    a, b, c = (tmp_path / n for n in "abc")
    for path in (a, b, c):
        git(tmp_path, "clone", "-q", url, str(path))
    r1, r2, r3 = _run(a, "r1"), _run(a, "r2"), _run(a, "r3")
    manage.tag(Repo.open(a), r3, {"stage": "x"})
    sync_all(a, b, c)

    manage.tag(Repo.open(b), r1, {"old": "1"})  # an update older than the delete
    manage.remove(Repo.open(c), [r1])
    manage.tag(Repo.open(b), r1, {"late": "1"})  # later, but b never saw the delete
    manage.archive(Repo.open(a), [r2])
    manage.rename(Repo.open(c), r3, "third")
    manage.untag(Repo.open(a), r3, ["stage"])
    sync_all(b, a, c, b, a)
    states = [_state(p) for p in (a, b, c)]
    assert states[0] == states[1] == states[2]
    s = states[0]
    assert s[r1][1] is True  # deleted: neither the older nor the later tag resurrected it
    assert s[r2][2] is True and s[r3][0] == "third" and "stage" not in s[r3][3]
    for path in (a, b, c):
        assert {r.id for r in tracking.list_runs(Repo.open(path)).runs} == {r2, r3}

    # restore (on a clone that saw the delete) brings it back everywhere; retag beats untag
    manage.restore(Repo.open(b), [r1])
    manage.tag(Repo.open(c), r3, {"stage": "y"})
    sync_all(b, c, a, b)
    states = [_state(p) for p in (a, b, c)]
    assert states[0] == states[1] == states[2]
    assert states[0][r1][1] is False and states[0][r1][3] == {"old": "1", "late": "1"}
    assert states[0][r3][3] == {"stage": "y"}
    # an untag, then a later tag made on a clone that never saw it: the later tag wins
    manage.tag(Repo.open(a), r2, {"k": "1"})
    sync_all(a, c)
    manage.untag(Repo.open(a), r2, ["k"])
    manage.tag(Repo.open(c), r2, {"k": "2"})
    sync_all(a, c, a, b)
    states = [_state(p) for p in (a, b, c)]
    assert states[0] == states[1] == states[2] and states[0][r2][3] == {"k": "2"}
    # the remote holds the same records
    bare = Repo.open(tmp_path / "remote.git")
    remote = {r.id: (r.deleted, r.tags) for r in tracking.list_runs(bare, deleted=True).runs}
    assert remote == {rid: (v[1], v[3]) for rid, v in states[0].items()}


def test_merge_rule_keeps_the_tombstone_field_by_field() -> None:
    from gitmlm.sync import merge

    base = {"status": "finished", "started": "t0", "updated": "2026-01-01T00:00:01Z"}
    deleted = {**base, "deleted": True, "updated": "2026-01-01T00:00:02Z"}
    later = {**base, "tags": {"x": "1"}, "updated": "2026-01-01T00:00:03Z"}
    restored = {**deleted, "deleted": False, "updated": "2026-01-01T00:00:04Z"}
    assert merge.merge_run(deleted, later)["deleted"] is True
    assert merge.merge_run(later, deleted) == merge.merge_run(deleted, later)
    assert merge.merge_run(restored, merge.merge_run(deleted, later))["deleted"] is False
    # an edit stamp beats a newer version that never edited the field, in either order
    renamed = {**base, "name": "new", "edited": {"name": "2026-01-01T00:00:02Z"}}
    rewritten = {**base, "name": "old", "updated": "2026-01-01T00:00:09Z"}
    for x, y in ((renamed, rewritten), (rewritten, renamed)):
        out = merge.merge_run(x, y)
        assert out["name"] == "new" and merge.merge_run(out, x) == out == merge.merge_run(y, out)
    assert (
        codec.run_from_dict(
            "x", {**base, "commit": "c", "tags": {"a": "1"}, "untagged": {"a": True}}
        ).tags
        == {}
    )
