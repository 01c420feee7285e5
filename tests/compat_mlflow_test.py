"""MLflow users: a script written against MLflow's fluent API gives the same answers under
`import gitmlm.mlflow as mlflow`, and `git mlm import mlflow` reads the stores the real MLflow
wrote (sqlite and file store) — MLflow runs in its own venv (the peers), never in-process."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.tracking import logged
from tests.helpers import ROOT, git, mlm, peer_env, peer_python

SCRIPT = ROOT / "tests" / "mlflow_examples" / "quickstart.py"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project whose committed script the real MLflow ran twice: into a sqlite database and
    into a file store (both processes at once: MLflow's start is slow)."""
    root = tmp_path_factory.mktemp("mlflow")
    env = peer_env(root)
    proj = root / "proj"
    proj.mkdir()
    shutil.copy(SCRIPT, proj / "train.py")
    (proj / ".gitignore").write_text("mlruns/\nstore/\n*.db\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "train"]):
        subprocess.run(["git", *args], cwd=proj, env=env, check=True)
    python = str(peer_python("mlflow"))
    procs = {}
    for kind, uri in (
        ("sqlite", f"sqlite:///{root / 'mlflow.db'}"),
        ("files", f"file://{proj / 'store'}"),
    ):
        run_env = {**env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true"}
        procs[kind] = subprocess.Popen(
            [python, "train.py"],
            cwd=proj,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    out: dict[str, Any] = {"proj": proj, "root": root}
    for kind, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        out[kind] = json.loads(stdout.decode().strip().splitlines()[-1])
    out["head"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=proj, env=env, capture_output=True, text=True
    ).stdout.strip()
    return out


def test_mlflow_script_runs_unchanged_on_gitmlm(stores: dict[str, Any], repo: Path) -> None:
    shutil.copy(SCRIPT, repo / "train.py")
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=repo,
        env={**os.environ, "GITMLM_AS_MLFLOW": "1"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ours == stores["sqlite"] == stores["files"]
    # and the runs are ordinary gitmlm runs
    frame = gitmlm.runs(order_by="name")
    assert list(frame.name) == ["broken", "lr-0.01", "lr-0.1", "manual", "sweep"]
    assert frame.set_index("name").loc["broken", "status"] == "failed"


def test_mlflow_facade_refuses_what_it_cannot_do(repo: Path) -> None:
    import gitmlm.mlflow as mlflow

    with pytest.raises(gitmlm.MlmError, match="records runs in the git repository"):
        mlflow.set_tracking_uri("http://127.0.0.1:5000")
    with mlflow.start_run(), pytest.raises(gitmlm.MlmError, match="already active"):
        mlflow.start_run()
    with pytest.raises(gitmlm.MlmError, match="status must be one of"):
        mlflow.end_run("DONE")


def _import(proj: Path, source: str) -> str:
    return mlm(proj, "import", "mlflow", source).stdout


@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_import_mlflow_store(stores: dict[str, Any], tmp_path: Path, kind: str) -> None:
    proj = tmp_path / "proj"
    git(tmp_path, "clone", "-q", str(stores["proj"]), str(proj))
    source = (
        f"sqlite:///{stores['root'] / 'mlflow.db'}"
        if kind == "sqlite"
        else str(stores["proj"] / "store")
    )
    proc = mlm(proj, "import", "mlflow", source)
    assert "imported 5 runs; 0 were imported before" in proc.stdout
    assert "1 runs named no commit" in proc.stderr  # the sweep's made-up commit: on HEAD
    before = git(proj, "rev-parse", "refs/notes/mlm", "refs/notes/mlm-series")
    again = mlm(proj, "import", "mlflow", source).stdout
    assert "imported 0 runs; 5 were imported before" in again
    assert git(proj, "rev-parse", "refs/notes/mlm", "refs/notes/mlm-series") == before

    repo = Repo.open(proj)
    rows = {r["name"]: r for r in json.loads(mlm(proj, "runs", "--format", "json").stdout)}
    assert set(rows) == {"sweep", "lr-0.1", "lr-0.01", "broken", "manual"}
    assert rows["broken"]["status"] == "failed"
    assert rows["lr-0.01"]["commit"] == stores["head"]  # mlflow.source.git.commit
    assert rows["lr-0.01"]["parent"] == rows["sweep"]["run_id"]
    assert rows["lr-0.01"]["params.lr"] == 0.01 and rows["lr-0.01"]["metrics.acc"] == 0.9
    sweep = gitmlm.get_run(rows["sweep"]["run_id"], path=str(proj))
    assert sweep.params == {"alpha": 0.5, "l1_ratio": 0.1, "solver": "None", "layers": 3}
    assert sweep.steps["loss"] == {"step": [0, 1, 2], "value": [1.0, 0.5, 1 / 3]}
    assert sweep.metrics["rmse"] == 0.7 and sweep.tags["team"] == "search"
    assert sweep.tags["mlflow.experimentName"] == "quickstart"
    assert sweep.extra["note"] == "lr sweep"
    assert sweep.extra["imported"]["from"] == "mlflow"
    assert "placed" in sweep.extra["imported"]  # the made-up commit: on HEAD, and it says so
    assert set(sweep.artifacts) == {
        "config.json",
        "notes/summary.txt",
        "plots/curve.png",
        "preds.json",
    }
    kept = logged.kept_path(repo, sweep.id, "config.json").read_bytes()
    assert json.loads(kept) == {"a": 1, "b": [1, 2]}


def test_import_mlflow_bad_sources(stores: dict[str, Any], tmp_path: Path, repo: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    other_db = tmp_path / "other.db"
    sqlite3.connect(other_db).execute("CREATE TABLE t (x)").connection.commit()
    old = tmp_path / "old.db"
    shutil.copy(stores["root"] / "mlflow.db", old)
    with sqlite3.connect(old) as db:
        # as a store of MLflow 0.x looks: metrics without steps, its first alembic revision
        db.execute("ALTER TABLE metrics RENAME COLUMN step TO later")
        db.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
    for source, said in [
        (str(notes), "not an MLflow store"),
        (str(empty), "not an MLflow store"),
        (str(other_db), "not an MLflow tracking store"),
        (str(old), "schema version 451aebb31d03 is not supported (table metrics lacks step)"),
        ("http://127.0.0.1:5000", "only MLflow stores on this disk"),
        (str(tmp_path / "nope"), "no such file or folder"),
    ]:
        proc = mlm(repo, "import", "mlflow", source, check=False)
        assert proc.returncode == 1 and said in proc.stderr, (source, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    assert git(repo, "for-each-ref", "refs/notes") == ""
