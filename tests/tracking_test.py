from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gitmlm
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.tracking import record as tracking
from tests.helpers import git


def test_start_run_records_params_metrics_tags_and_series(repo: Path) -> None:
    with gitmlm.start_run(
        name="base", params={"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}
    ) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.93, "f1": 0.9})
        run.log_param("epochs", 5)
        run.set_tag("team", "churn")
    r = gitmlm.get_run(run.id)
    assert r.status == "finished"
    assert r.params == {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}, "epochs": 5}
    assert r.metrics == {"loss": 0.2, "acc": 0.93, "f1": 0.9}
    assert r.tags == {"team": "churn"}
    assert r.steps["loss"]["step"] == [0, 1, 2, 3, 4]
    assert r.steps["loss"]["value"][-1] == 0.2
    assert r.commit == git(repo, "rev-parse", "HEAD").strip()
    assert r.branch == "main"
    assert r.env["python"] and r.env["packages"]["gitmlm"] == gitmlm.__version__
    assert r.started <= r.ended  # type: ignore[operator]


def test_note_is_toml_on_the_commit_and_series_apart(repo: Path) -> None:
    with gitmlm.start_run(name="a") as run:
        run.log_metric("loss", 0.5, step=0)
    note = git(repo, "notes", "--ref", refs.RUNS, "show", "HEAD")
    assert note.startswith("schema = 1")
    assert f"[runs.{run.id}]" in note and "0.5" in note
    assert "step" not in note  # the summary never carries the series
    series = git(repo, "notes", "--ref", refs.SERIES, "show", "HEAD")
    assert f"[runs.{run.id}.loss]" in series


def test_many_runs_on_one_commit(repo: Path) -> None:
    ids = []
    for i in range(3):
        with gitmlm.start_run(name=f"r{i}", params={"i": i}) as run:
            run.log_metric("m", i)
        ids.append(run.id)
    df = gitmlm.runs()
    assert sorted(df["run_id"]) == sorted(ids)
    assert list(df.columns[:6]) == ["run_id", "name", "status", "commit", "started", "ended"]
    assert "params.i" in df.columns and "metrics.m" in df.columns
    assert str(df["started"].dtype).startswith("datetime64")


def test_runs_where_and_order_by(repo: Path) -> None:
    for i in range(4):
        with gitmlm.start_run(name=f"r{i}", params={"lr": i / 10}) as run:
            run.log_metric("acc", 0.5 + i / 10)
    df = gitmlm.runs(where="metrics.acc > 0.65 and params.lr < 0.3", order_by="metrics.acc desc")
    assert list(df["name"]) == ["r2"]
    df = gitmlm.runs(order_by="-metrics.acc")
    assert list(df["name"]) == ["r3", "r2", "r1", "r0"]
    with pytest.raises(gitmlm.MlmError, match="at column"):
        gitmlm.runs(where="metrics.acc >")


def test_asking_again_reuses_the_listing_until_the_notes_move(repo: Path) -> None:
    with gitmlm.start_run(name="a", params={"lr": 0.1}) as run:
        run.log_metric("acc", 0.7)
    first = gitmlm.runs(where="metrics.acc > 0.5")
    assert list(first["name"]) == ["a"]
    assert list(gitmlm.runs(where="metrics.acc > 0.8")["name"]) == []  # the same listing
    with gitmlm.start_run(name="b", params={"lr": 0.2}) as run:
        run.log_metric("acc", 0.9)
    assert list(gitmlm.runs(where="metrics.acc > 0.5", order_by="name")["name"]) == ["a", "b"]
    # A running run is listed afresh every time: its process may be gone by the next call.
    active = tracking.begin(Repo.open(repo), "live")
    assert "running" in set(gitmlm.runs()["status"])
    tracking.finish(Repo.open(repo), active.record, "finished", 0)
    assert set(gitmlm.runs()["status"]) == {"finished"}


def test_exception_marks_run_failed_and_propagates(repo: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), gitmlm.start_run(name="bad") as run:
        run.log_metric("x", 1)
        raise RuntimeError("boom")
    r = gitmlm.get_run(run.id)
    assert r.status == "failed" and r.metrics == {"x": 1.0}


def test_nan_and_inf_metrics_stored_faithfully(repo: Path) -> None:
    with gitmlm.start_run() as run:
        run.log_metrics({"nan": float("nan"), "pinf": float("inf"), "ninf": float("-inf")})
    r = gitmlm.get_run(run.id)
    assert math.isnan(r.metrics["nan"])
    assert r.metrics["pinf"] == math.inf and r.metrics["ninf"] == -math.inf


def test_unsupported_param_type_is_a_clear_error(repo: Path) -> None:
    with gitmlm.start_run() as run:
        with pytest.raises(gitmlm.MlmError, match="'model' has a value of type object"):
            run.log_param("model", object())
        with pytest.raises(gitmlm.MlmError, match="must be a number"):
            run.log_metric("acc", "high")


def test_names_with_spaces_dots_and_unicode(repo: Path) -> None:
    with gitmlm.start_run(name="exp ü 1") as run:
        run.log_params({"learning rate": 0.1, "a.b": 1, "größe": "xl"})
        run.log_metric("val acc", 0.5)
        run.log_metric("top.5", 0.9)
    r = gitmlm.get_run(run.id)
    assert r.name == "exp ü 1"
    assert r.params == {"learning rate": 0.1, "a.b": 1, "größe": "xl"}
    df = gitmlm.runs(where="metrics.`val acc` = 0.5 and params.größe = 'xl'")
    assert list(df["run_id"]) == [run.id]


def test_detached_head_is_recorded(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    with gitmlm.start_run() as run:
        pass
    r = gitmlm.get_run(run.id)
    assert r.branch is None and r.extra["detached"] is True


def test_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(gitmlm.MlmError, match="not a git repository"), gitmlm.start_run():
        pass


def test_repository_without_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(gitmlm.MlmError, match="no commits yet"), gitmlm.start_run():
        pass


def test_invalid_note_is_reported_and_skipped(repo: Path) -> None:
    with gitmlm.start_run(name="good"):
        pass
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "notes", "--ref", refs.RUNS, "add", "-m", "this is [not toml", "HEAD")
    listing = tracking.list_runs(Repo.open())
    assert [r.name for r in listing.runs] == ["good"]
    assert listing.errors and "not valid TOML" in listing.errors[0][1]


def test_unknown_and_ambiguous_ids(repo: Path) -> None:
    for _ in range(2):
        with gitmlm.start_run():
            pass
    listing = tracking.list_runs(Repo.open())
    with pytest.raises(gitmlm.MlmError, match="no run with id"):
        tracking.resolve(listing, "zzzzzzzz")
    with pytest.raises(gitmlm.MlmError, match="ambiguous"):
        tracking.resolve(listing, "0")
    with pytest.raises(gitmlm.MlmError, match="no run with id or name"):
        tracking.resolve(listing, "lo!")
    full = listing.runs[0].id
    assert tracking.resolve(listing, full[:20]).id == full


def test_crashed_run_is_listed_and_recovered(repo: Path) -> None:
    script = repo / "crash.py"
    script.write_text(
        "import os, signal, time, gitmlm\n"
        "with gitmlm.start_run(name='doomed') as run:\n"
        "    run.log_metric('loss', 0.7, step=0)\n"
        "    run.log_param('lr', 0.1)\n"
        "    time.sleep(1.5)\n"  # the flusher journals within a second
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(["python", str(script)], cwd=repo)
    assert proc.returncode == -9
    repo_obj = Repo.open()
    [run] = tracking.list_runs(repo_obj).runs
    assert run.status == "crashed" and run.metrics == {}
    git(repo, "fsck", "--no-dangling")  # the repository is intact
    [done] = tracking.recover(repo_obj)
    r = gitmlm.get_run(done.id)
    assert r.status == "crashed" and r.ended
    assert r.metrics == {"loss": 0.7} and r.params == {"lr": 0.1}
    assert r.steps["loss"]["value"] == [0.7]
    assert tracking.recover(repo_obj) == []


def test_put_runs_keeps_other_runs_and_cache_is_by_blob(repo: Path) -> None:
    r = Repo.open()
    head = r.head_commit()
    store.put_runs(
        r, refs.RUNS, head, {"a": {"status": "finished", "started": "x", "commit": head}}, "t"
    )
    store.put_runs(
        r, refs.RUNS, head, {"b": {"status": "finished", "started": "y", "commit": head}}, "t"
    )
    snap = store.snapshot(r, refs.RUNS)
    assert set(store.read_doc(r, snap.entries[head])) == {"a", "b"}
    assert codec.decode_doc(r.blob(snap.entries[head])) == store.read_doc(r, snap.entries[head])


def test_amend_and_rebase_keep_notes_after_init(repo: Path) -> None:
    from tests.helpers import mlm

    mlm(repo, "init")
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "init gitmlm")
    with gitmlm.start_run(name="kept") as run:
        run.log_metric("acc", 1)
    git(repo, "commit", "-q", "--amend", "-m", "amended")
    assert run.id in git(repo, "notes", "--ref", refs.RUNS, "show", "HEAD")
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    (repo / "other.txt").write_text("x")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "side work")
    git(repo, "checkout", "-q", "main")
    git(repo, "rebase", "-q", "side")
    assert run.id in git(repo, "notes", "--ref", refs.RUNS, "show", "HEAD")
    assert [x.id for x in tracking.list_runs(Repo.open()).runs] == [run.id]


SILENT = """
import sys
import gitmlm

with gitmlm.start_run(name="quiet", params={"lr": 0.1}) as run:
    run.log_metric("loss", 0.5, step=1)
    run.log_dataset("train")
open("loaded.txt", "w").write(" ".join(sorted(m for m in sys.modules if m.startswith("gitmlm"))))
"""


def test_start_run_writes_nothing_to_the_scripts_terminal(repo: Path) -> None:
    """On a terminal (a real pty) with a declared dataset to fingerprint, a training script's
    stdout and stderr stay its own: no progress line, no message; the CLI is never loaded."""
    import pty

    (repo / "data").mkdir()
    for i in range(4):
        (repo / "data" / f"part{i}.bin").write_bytes(bytes([i]) * (16 << 20))
    (repo / "mlm.toml").write_text('schema = 1\n[datasets.train]\npath = "data"\n')
    (repo / "train.py").write_text(SILENT)
    main, sub = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, stdin=sub, stdout=sub, stderr=sub, check=False
    )
    os.close(sub)
    said = b""
    try:
        while chunk := os.read(main, 4096):
            said += chunk
    except OSError:  # EIO: the pty's other end is closed and drained
        pass
    os.close(main)
    assert proc.returncode == 0, said
    assert said == b""
    assert "gitmlm.cli" not in (repo / "loaded.txt").read_text()


def test_derived_times_are_there_under_every_name(repo: Path) -> None:
    with gitmlm.start_run(name="t") as run:
        run.log_metric("acc", 0.5)
    for text in ("start_time > 0", "created > 0", "Created > 0", "attributes.end_time > 0"):
        assert list(gitmlm.runs(where=text)["name"]) == ["t"], text
