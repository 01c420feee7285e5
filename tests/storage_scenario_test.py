"""The acceptance scenario of the object store, end to end through the CLI: train v1, train v2
overwriting the model and the data, then get v1's model and data back bit for bit in a fresh
clone, from an S3 remote (moto's real server on loopback) and a bare git remote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import git, mlm

TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"

[registry]
stages = ["dev", "staging", "production"]
"""

TRAIN = """\
import pathlib, gitmlm
data = pathlib.Path("data/train.csv").read_bytes()
with gitmlm.start_run() as run:
    pathlib.Path("models").mkdir(exist_ok=True)
    pathlib.Path("models/churn.pkl").write_bytes(b"model of " + data)
    pathlib.Path("outputs/plots").mkdir(parents=True, exist_ok=True)
    pathlib.Path("outputs/plots/roc.txt").write_bytes(b"roc of " + data)
    run.log_metric("auc", 0.9)
    run.log_artifact("models/churn.pkl")
    run.log_artifact("outputs")
print(run.id)
"""


def _train(repo: Path, data: bytes) -> str:
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data" / "train.csv").write_bytes(data)
    mlm(repo, "data", "add", "train", "data")
    git(repo, "commit", "-q", "-m", f"data {data[:6]!r}")
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def test_v1_comes_back_bit_for_bit_in_a_fresh_clone_from_s3(
    repo: Path, s3: str, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    (repo / "mlm.toml").write_text(TOML)
    (repo / ".gitignore").write_text("data/\nmodels/\noutputs/\n")
    (repo / "train.py").write_text(TRAIN)
    mlm(repo, "init")
    mlm(repo, "storage", "add", "s3", f"s3://{s3}/store", "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")

    v1_data = b"id,churn\n1,0\n2,1\n" * 50
    run1 = _train(repo, v1_data)
    v1_commit = git(repo, "rev-parse", "HEAD").strip()
    v1_model = (repo / "models" / "churn.pkl").read_bytes()
    mlm(repo, "register", "churn", "--run", run1)
    mlm(repo, "promote", "churn", "production", "v0.0.1")

    # v2 overwrites the data, the model and the plots; only the store still has v1.
    run2 = _train(repo, b"id,churn\n3,1\n" * 70)
    mlm(repo, "register", "churn", "--run", run2)
    assert (repo / "models" / "churn.pkl").read_bytes() != v1_model

    listed = json.loads(mlm(repo, "artifacts", run1, "--format", "json").stdout)
    assert {a["path"] for a in listed} == {"models/churn.pkl", "outputs/"}

    git(repo, "push", "-q", "origin", "main")
    out = mlm(repo, "push", "--data", "origin").stdout
    assert "storage s3: pushed" in out
    again = mlm(repo, "data", "push", "--rev", v1_commit).stdout
    assert "pushed 0 object(s)" in again  # everything was there: one listing, no upload

    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(origin), str(fresh))
    mlm(fresh, "fetch", "origin")
    assert not (fresh / "data").exists()

    mlm(fresh, "data", "checkout", "train", v1_commit)
    assert (fresh / "data" / "train.csv").read_bytes() == v1_data
    mlm(fresh, "data", "checkout", "train")  # the latest version, over v1 (stored: no --force)
    assert (fresh / "data" / "train.csv").read_bytes() != v1_data

    mlm(fresh, "model", "get", "churn#production", "-o", "prod.pkl")
    assert (fresh / "prod.pkl").read_bytes() == v1_model
    mlm(fresh, "artifacts", "get", run1, "-o", "v1")
    assert (fresh / "v1" / "models" / "churn.pkl").read_bytes() == v1_model
    assert (fresh / "v1" / "outputs" / "plots" / "roc.txt").read_bytes() == b"roc of " + v1_data
    verify = mlm(fresh, "data", "verify", "--remote", "--rev", v1_commit, "--format", "json")
    assert json.loads(verify.stdout)[0]["corrupt"] == 0

    # The Python API, in a second fresh clone whose cache is empty: fetched on demand.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    mlm(other, "fetch", "origin")
    code = "import gitmlm; print(gitmlm.artifact_path('churn#production'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=other, capture_output=True, text=True, env=os.environ
    )
    assert proc.returncode == 0, proc.stderr
    got = Path(proc.stdout.strip())
    assert got.read_bytes() == v1_model
    assert got.is_relative_to(other / ".git" / "mlm" / "objects")
