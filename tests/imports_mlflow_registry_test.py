"""MLflow's registered models and S3 artifacts: the real MLflow (peers' venv) writes a store
with runs on named commits, versions in stages and under aliases, an MLflow 3 logged model, and
an experiment whose artifacts live on moto's S3 server; `git mlm import mlflow` brings them in
as registry tags and object-store bytes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.tracking import logged
from tests.helpers import (
    ROOT,
    S3_ENV,
    git,
    gto_state,
    make_bucket,
    mlm,
    models_json,
    ours,
    peer_env,
    peer_python,
)

SCRIPT = ROOT / "tests" / "mlflow_examples" / "registry.py"
BUCKET = "mlflow-art"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> dict[str, Any]:
    """A project with three commits; one MLflow process wrote the script's runs and models into
    a sqlite database and a file store (its start is slow)."""
    root = tmp_path_factory.mktemp("mlflow-reg")
    env = peer_env(root)
    proj = root / "proj"
    proj.mkdir()
    (proj / ".gitignore").write_text("mlruns/\nstore/\n*.db\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, env=env, check=True)
    commits = []
    for n in range(3):
        (proj / "train.py").write_text(f"# version {n}\n")
        for args in (["add", "-A"], ["commit", "-q", "-m", f"c{n}"]):
            subprocess.run(["git", *args], cwd=proj, env=env, check=True)
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, env=env, capture_output=True)
        commits.append(out.stdout.decode().strip())
    shutil.copy(SCRIPT, proj / "registry.py")  # MLflow takes the commit of the script's repo
    make_bucket(moto_server, BUCKET)
    s3 = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": moto_server}
    sources = {"sqlite": f"sqlite:///{root / 'mlflow.db'}", "files": str(proj / "store")}
    stores = f"sqlite={sources['sqlite']},files=file://{sources['files']}"
    run_env = {**env, **s3, "STORES": stores, "MLFLOW_ALLOW_FILE_STORE": "true"}
    run_env |= {"C1": commits[0], "C2": commits[1], "BUCKET": BUCKET}
    proc = subprocess.run(
        [str(peer_python("mlflow")), "registry.py"],
        cwd=proj,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"proj": proj, "root": root, "commits": commits, "s3": s3, "sources": sources, **ids}


def _env(store: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, **store["s3"]}


def test_import_mlflow_registry_s3_and_refusals(store: dict[str, Any], tmp_path: Path) -> None:
    """One test, so the store (one MLflow start) is made once, on one worker."""
    for kind in ("sqlite", "files"):
        _import_registered_models_and_s3_artifacts(store, tmp_path / kind, kind)
    repo = tmp_path / "plain"
    git(tmp_path, "init", "-q", str(repo))
    git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    _refuses_what_it_cannot_read(store, repo)


def _import_registered_models_and_s3_artifacts(
    store: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    tmp_path.mkdir()
    proj = tmp_path / "proj"
    git(tmp_path, "clone", "-q", str(store["proj"]), str(proj))
    env = _env(store)
    source = store["sources"][kind]
    c1, c2, c3 = store["commits"]

    # A registered model name the registry refuses: one line, nothing written.
    proc = mlm(proj, "import", "mlflow", source, check=False, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "MLflow model 'sk model': model name 'sk model' is not valid" in proc.stderr
    assert "--rename-model 'sk model=NEW'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert git(proj, "for-each-ref", "refs/notes", "refs/tags") == ""

    args = ["import", "mlflow", source, "--rename-model", "sk model=sk-model"]
    proc = mlm(proj, *args, env=env)
    assert "imported 5 runs; 0 were imported before" in proc.stdout
    assert (
        "registered 4 model versions, assigned 4 stages, deregistered 1; "
        "0 were imported before" in proc.stdout
    )
    # version 3 was made on the commit of version 2, which holds a stage: one version per commit
    assert "'churn' version 3: its run's commit" in proc.stderr
    assert "stages challenger, champion are not in mlm.toml" in proc.stderr

    [churn] = [m for m in models_json(proj) if m["model"] == "churn"]
    assert churn["latest"] == "v4.0.0"
    assert churn["stages"] == {
        "dev": None,
        "staging": "v2.0.0",
        "production": "v1.0.0",
        "champion": "v2.0.0",
        "challenger": "v4.0.0",
    }
    assert [m["model"] for m in models_json(proj)] == ["churn", "sk-model"]
    repo = Repo.open(proj)
    rows = {r["name"]: r for r in json.loads(mlm(proj, "runs", "--format", "json").stdout)}
    prod = gitmlm.resolve("churn#production", path=str(proj))
    assert (prod.commit, prod.run, prod.folder) == (c1, rows["r1"]["run_id"], True)
    assert gitmlm.resolve("churn#staging", path=str(proj)).commit == c2
    assert gitmlm.resolve("churn@v4.0.0", path=str(proj)).commit == c3  # MLflow's own commit
    sk = gitmlm.registry(path=str(proj)).set_index("model").loc["sk-model"]
    assert not sk["active"]  # Archived in MLflow: deregistered
    if kind == "sqlite":  # the real GTO reads the imported tags as gitmlm does
        assert gto_state(proj) == [ours(proj)]

    # The version's files: from S3 (version 4) and from a logged model's folder (sk model).
    out = mlm(proj, "model", "get", "churn@v4.0.0", "-o", str(tmp_path / "v4")).stdout
    assert "churn v4.0.0" in out
    assert (tmp_path / "v4" / "model.pkl").read_text() == "weights of r5"
    mlm(proj, "model", "get", "churn#production", "-o", str(tmp_path / "v1"))
    assert (tmp_path / "v1" / "model.pkl").read_text() == "weights of r1"
    # gc keeps a version's files that only the registry names (a logged model's folder)
    mlm(proj, "gc")
    mlm(proj, "model", "get", "sk-model@v1.0.0", "-o", str(tmp_path / "sk"))
    assert (tmp_path / "sk" / "MLmodel").is_file()
    # the run that logged to S3: its artifacts are kept like any
    r5 = gitmlm.get_run(rows["r5"]["run_id"], path=str(proj))
    assert set(r5.artifacts) == {"notes/readme.txt", "model/MLmodel", "model/model.pkl"}
    assert logged.kept_path(repo, r5.id, "notes/readme.txt").read_text() == "on s3"

    before = git(proj, "for-each-ref", "refs/notes", "refs/tags")
    again = mlm(proj, *args, env=env).stdout
    assert "imported 0 runs; 5 were imported before" in again
    assert "registered 0 model versions, assigned 0 stages, deregistered 0; 4 were" in again
    assert git(proj, "for-each-ref", "refs/notes", "refs/tags") == before


def _refuses_what_it_cannot_read(store: dict[str, Any], repo: Path) -> None:
    old = repo.parent / "old.db"
    shutil.copy(store["root"] / "mlflow.db", old)
    with sqlite3.connect(old) as conn:  # a registry from before stages (MLflow 1.x's first)
        conn.execute("ALTER TABLE model_versions DROP COLUMN current_stage")
    proc = mlm(repo, "import", "mlflow", str(old), check=False)
    assert proc.returncode == 1
    assert "is not supported (table model_versions lacks current_stage)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    db = repo.parent / "gs.db"
    shutil.copy(store["root"] / "mlflow.db", db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET artifact_uri = 'gs://bucket/x' WHERE name = 'r2'")
    proc = mlm(repo, "import", "mlflow", str(db), check=False)
    assert proc.returncode == 1
    assert "artifact location gs://bucket/x cannot be read" in proc.stderr
    assert "a local path, file:// or s3://bucket/prefix" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert git(repo, "for-each-ref", "refs/notes", "refs/tags") == ""
    # a model version's files somewhere unreadable: refused before any run or tag is written
    model_gs = repo.parent / "model-gs.db"
    shutil.copy(store["root"] / "mlflow.db", model_gs)
    with sqlite3.connect(model_gs) as conn:
        conn.execute(
            "UPDATE model_versions SET source = 'gs://b/m', storage_location = 'gs://b/m' "
            "WHERE name = 'churn' AND version = 4"  # the one imported: all runs land on HEAD
        )
    args = ["--rename-model", "sk model=sk-model"]
    proc = mlm(repo, "import", "mlflow", str(model_gs), *args, check=False, env=_env(store))
    assert proc.returncode == 1
    assert "MLflow model 'churn' version 4: artifact location gs://b/m cannot be" in proc.stderr
    assert git(repo, "for-each-ref", "refs/notes", "refs/tags") == ""
    # without artifacts (and without models, whose names need renaming) it goes through
    proc = mlm(repo, "import", "mlflow", str(db), "--no-artifacts", "--no-models")
    assert "imported 5 runs" in proc.stdout
