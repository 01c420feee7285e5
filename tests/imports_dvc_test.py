"""DVC users: the real DVC (from the peers' venv) runs experiments; `git mlm import dvc` reads
them from git (refs/exps) and records params, metrics and DVCLive-layout series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gitmlm
from tests.helpers import git, mlm, peer_python

TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
if p["lr"] <= 0:
    raise SystemExit("lr must be positive")
# DVCLive's layout: dvclive/metrics.json and one TSV per metric under dvclive/plots/metrics
os.makedirs("dvclive/plots/metrics/train", exist_ok=True)
loss = [1.0 / (p["lr"] * 10 * (e + 1)) for e in range(p["epochs"])]
with open("dvclive/plots/metrics/train/loss.tsv", "w") as f:
    f.write("step\\tloss\\n" + "".join(f"{i}\\t{v}\\n" for i, v in enumerate(loss)))
metrics = {"train": {"loss": loss[-1]}, "acc": 1 - loss[-1] / 10, "step": p["epochs"] - 1}
json.dump(metrics, open("dvclive/metrics.json", "w"))
"""

DVC_YAML = """\
stages:
  train:
    cmd: {python} train.py
    deps: [train.py]
    params: [lr, epochs, model.depth]
    metrics:
      - dvclive/metrics.json:
          cache: false
    plots:
      - dvclive/plots/metrics:
          cache: false
"""


def test_import_dvc_experiments(repo: Path) -> None:
    dvc = str(peer_python("dvc").parent / "dvc")
    # DVC's queue starts its worker as `dvc` from PATH
    path = f"{Path(dvc).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": path}

    def run(*args: str) -> None:
        proc = subprocess.run([dvc, *args], cwd=repo, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def refused(said: str) -> None:
        proc = mlm(repo, "import", "dvc", check=False)
        assert proc.returncode == 1 and said in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert git(repo, "for-each-ref", "refs/notes") == ""

    refused("is not a DVC repository (no .dvc folder, no refs/exps)")
    run("init", "-q")
    (repo / "params.yaml").write_text("lr: 0.1\nepochs: 3\nmodel:\n  depth: 2\n")
    (repo / "train.py").write_text(TRAIN)
    (repo / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc project")
    refused("no DVC experiments in this repository")
    run("exp", "run", "-q", "-S", "lr=0.2", "-n", "fast")
    run("exp", "run", "-q", "--temp", "-S", "lr=0.1", "-n", "temp")  # in a temporary folder
    run("exp", "run", "-q", "-S", "lr=0.05", "-n", "slow")  # leaves its results in the work tree
    exps = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/")

    out = mlm(repo, "import", "dvc").stdout
    assert "imported 3 runs; 0 were imported before" in out  # the work tree is slow's
    assert "imported 0 runs; 3 were imported before" in mlm(repo, "import", "dvc").stdout
    rows = {r["name"]: r for r in json.loads(mlm(repo, "runs", "--format", "json").stdout)}
    assert set(rows) == {"fast", "slow", "temp"}
    assert gitmlm.get_run(rows["temp"]["run_id"]).params["lr"] == 0.1
    fast = gitmlm.get_run(rows["fast"]["run_id"])
    head = git(repo, "rev-parse", "HEAD").strip()
    assert f"refs/exps/{head[:2]}/{head[2:]}/fast {fast.commit}" in exps  # its own commit
    assert fast.tags == {"dvc.experiment": "fast", "dvc.baseline": head}
    assert fast.params == {"lr": 0.2, "epochs": 3, "model": {"depth": 2}}
    assert fast.metrics["acc"] == 1 - (1 / 6) / 10  # loss at the third epoch: 1/(2*3)
    assert fast.metrics["train.loss"] == 1 / 6
    assert fast.steps["train/loss"]["step"] == [0, 1, 2]
    assert fast.steps["train/loss"]["value"] == [0.5, 0.25, 1 / 6]
    assert "step" not in fast.metrics  # DVCLive's step counter is not a metric
    best = json.loads(mlm(repo, "runs", "-o", "-metrics.acc", "--format", "json").stdout)
    assert [r["name"] for r in best] == ["fast", "temp", "slow"]

    # Queued experiments count once DVC ran them, and only those that succeeded.
    run("exp", "run", "-q", "--queue", "-S", "lr=0.3", "-n", "queued")
    run("exp", "run", "-q", "--queue", "-S", "lr=-1", "-n", "broken")
    assert "imported 0 runs; 3 were imported before" in mlm(repo, "import", "dvc").stdout
    # DVC's queue worker outlives the command for a while: no pipe of ours for it to hold.
    subprocess.run(
        [dvc, "exp", "run", "--run-all", "-q"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=180,
    )
    assert "imported 1 runs; 3 were imported before" in mlm(repo, "import", "dvc").stdout
    names = {r["name"] for r in json.loads(mlm(repo, "runs", "--format", "json").stdout)}
    assert names == {"fast", "slow", "temp", "queued"}

    # Results only the work tree holds (DVC reproduced them, nobody committed): a run on HEAD.
    (repo / "params.yaml").write_text("lr: 0.5\nepochs: 2\nmodel:\n  depth: 2\n")
    run("repro", "-q")
    proc = mlm(repo, "import", "dvc")
    assert "imported 1 runs; 4 were imported before" in proc.stdout
    assert "the work tree's uncommitted results are run 'workspace' on HEAD" in proc.stderr
    ws = gitmlm.get_run(
        next(
            r["run_id"]
            for r in json.loads(mlm(repo, "runs", "--format", "json").stdout)
            if r["name"] == "workspace"
        )
    )
    assert ws.commit == head
    assert ws.params == {"lr": 0.5, "epochs": 2, "model": {"depth": 2}}
    assert ws.steps["train/loss"]["value"] == [0.2, 0.1]
    assert "imported from the DVC workspace" in ws.extra["note"]
    assert ws.extra["imported"]["workspace"] is True
    assert "imported 0 runs; 5 were imported before" in mlm(repo, "import", "dvc").stdout
