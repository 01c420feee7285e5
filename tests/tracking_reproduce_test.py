"""`git mlm reproduce` and `git mlm checkout`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import reproduce
from tests.helpers import commit_all, git, mlm, runs

TRAIN = """\
import os, random
import gitmlm

with gitmlm.start_run() as run:
    lr = run.params["lr"]
    random.seed(run.params.get("seed", 0))
    acc = 1 - lr / 10 + random.random() / 1000
    if os.environ.get("NOISE"):
        acc += random.SystemRandom().random()
    os.makedirs("models", exist_ok=True)
    with open("models/model.pkl", "w") as fh:
        fh.write(f"weights {acc}\\n")
    run.log_metrics({"acc": acc, "loss": lr * 2})
"""


@pytest.fixture
def trained(repo: Path) -> str:
    """A run of a deterministic script on uncommitted code; returns its id."""
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\noutputs = ["models/*.pkl"]\n')
    (repo / ".gitignore").write_text("models/\n")
    commit_all(repo, "config")
    (repo / "train.py").write_text(TRAIN)  # not committed: the run's code is a checkpoint
    mlm(repo, "run", "-p", "lr=0.5", "-p", "seed=7", "--", "python", "train.py")
    [r] = runs(repo)
    assert r["checkpoint"] == "snapshot"
    return str(r["run_id"])


def test_reproduce_gives_the_same_metrics_without_touching_the_tree(
    repo: Path, trained: str
) -> None:
    (repo / "train.py").write_text("raise SystemExit('the current code is not what ran')\n")
    status = git(repo, "status", "--porcelain")
    proc = mlm(repo, "reproduce", trained[:10])
    assert "within tolerance" in proc.stderr
    assert "acc" in proc.stdout and "yes" in proc.stdout
    assert "artifact models/model.pkl: same" in proc.stdout
    assert git(repo, "status", "--porcelain") == status
    assert (repo / "train.py").read_text().startswith("raise SystemExit")
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    new = [r for r in runs(repo) if r["run_id"] != trained]
    assert len(new) == 1
    show = mlm(repo, "show", new[0]["run_id"]).stdout
    assert f'reproduces = "{trained}"' in show
    assert "lr = 0.5" in show
    assert new[0]["commit"] == runs(repo)[-1]["commit"]  # same code, same note


def test_reproduce_fails_outside_tolerance(repo: Path, trained: str) -> None:
    # The same command, made noisy through the environment: the metrics move.
    import os

    proc = mlm(repo, "reproduce", trained, check=False, env={**os.environ, "NOISE": "1"})
    assert proc.returncode == 1
    assert "NO" in proc.stdout
    assert "NOT reproduced" in proc.stderr


def test_reproduce_without_the_checkpoint_names_sync(repo: Path, trained: str) -> None:
    git(repo, "update-ref", "-d", f"refs/mlm/checkpoints/{trained}")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    proc = mlm(repo, "reproduce", trained, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("git mlm: the code of run")
    assert "git mlm sync" in proc.stderr and "git fetch" in proc.stderr
    proc = mlm(repo, "checkout", trained, "out", check=False)
    assert proc.returncode == 1 and "git mlm sync" in proc.stderr
    assert not (repo / "out").exists()


def test_checkout_writes_the_code_of_a_run(repo: Path, trained: str, tmp_path: Path) -> None:
    dest = tmp_path / "code"
    out = mlm(repo, "checkout", trained, str(dest)).stdout
    assert "checkpoint of uncommitted code" in out
    assert (dest / "train.py").read_text() == TRAIN
    assert (dest / "mlm.toml").exists()
    proc = mlm(repo, "checkout", trained, str(dest), check=False)
    assert proc.returncode == 1 and "not an empty folder" in proc.stderr


def test_dataset_check_names_the_dataset(repo: Path) -> None:
    run = Run(
        id="01abcdefabcdefabcdefabcdef",
        name="r",
        status="finished",
        started="2026-01-01T00:00:00Z",
        commit="0" * 40,
        datasets={"train": {"digest": "sha256:" + "0" * 64, "path": "data/train"}},
    )
    with pytest.raises(MlmError, match=r"dataset .train. .*data/train.* not available"):
        reproduce.check_datasets(run, {})


def test_compare_tolerance() -> None:
    def run(**metrics: float) -> Run:
        return Run(id="x", name="x", status="finished", started="", commit="", metrics=metrics)

    diffs = reproduce.compare(run(a=1.0, b=2.0, c=0.0), run(a=1.0 + 1e-9, b=2.1, d=1.0), 1e-6, 0)
    assert [(d.name, d.ok) for d in diffs] == [
        ("a", True),
        ("b", False),
        ("c", False),
        ("d", False),
    ]


def test_reproduce_refuses_when_a_declared_dataset_changed(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,2\n")
    (repo / ".gitignore").write_text("data/\n")
    commit_all(repo, "ignore data")
    mlm(repo, "data", "add", "train", "data")
    git(repo, "commit", "-q", "-m", "train on data v1")
    (repo / "train.py").write_text("import gitmlm\nwith gitmlm.start_run() as run:\n    pass\n")
    commit_all(repo, "script")
    mlm(repo, "run", "--", "python", "train.py")
    [r] = runs(repo)
    assert str(r["datasets.train"]).startswith("sha256:")
    mlm(repo, "reproduce", str(r["run_id"]))  # the same data: it runs, on the linked data
    again = [x for x in runs(repo) if x["run_id"] != r["run_id"]]
    assert again[0]["datasets.train"] == r["datasets.train"]
    (repo / "data" / "train.csv").write_text("x,y\n1,3\n")
    proc = mlm(repo, "reproduce", str(r["run_id"]), check=False)
    assert proc.returncode == 1
    assert "dataset 'train' differs from the version run" in proc.stderr
    assert len(runs(repo)) == 2  # nothing more was run or recorded
