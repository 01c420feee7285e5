"""What a run keeps besides numbers: folders, text, dicts, figures, tables, the output and the
exception of `git mlm run`."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.tracking import logged
from tests.helpers import mlm


def _kept(repo: Path, run_id: str, name: str) -> bytes:
    return logged.kept_path(Repo.open(repo), run_id, name).read_bytes()


def test_log_folder_text_dict_figure_table(repo: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (repo / "outputs" / "sub").mkdir(parents=True)
    (repo / "outputs" / "a.txt").write_text("a")
    (repo / "outputs" / "sub" / "b.txt").write_text("b")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with gitmlm.start_run() as run:
        run.log_artifact("outputs/")
        run.log_text("hello", "notes/summary.txt")
        run.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        run.log_dict({"lr": 0.1}, "config.yaml")
        run.log_figure(fig, "plots/curve.png")
        run.log_table(pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "preds.json")
        run.log_table({"x": [1, 2]}, "preds.csv")
    got = gitmlm.get_run(run.id).artifacts
    assert set(got) == {
        "outputs",
        "notes/summary.txt",
        "config.json",
        "config.yaml",
        "plots/curve.png",
        "preds.json",
        "preds.csv",
    }
    assert got["outputs"]["kind"] == "dir" and got["outputs"]["files"] == 2
    assert _kept(repo, run.id, "notes/summary.txt") == b"hello"
    assert json.loads(_kept(repo, run.id, "config.json")) == {"lr": 0.1, "layers": [1, 2]}
    assert _kept(repo, run.id, "config.yaml") == b"lr: 0.1\n"
    assert _kept(repo, run.id, "plots/curve.png").startswith(b"\x89PNG")
    split = json.loads(_kept(repo, run.id, "preds.json"))
    assert split["columns"] == ["x", "y"] and split["data"] == [[1, "a"], [2, "b"]]
    assert _kept(repo, run.id, "preds.csv") == b"x\n1\n2\n"
    for name in ("config.json", "plots/curve.png"):
        data = _kept(repo, run.id, name)
        assert got[name] == {
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "kept": True,
        }
    plt.close(fig)
    # Bytes made in memory are in the object store like any artifact: they come back through
    # `git mlm artifacts get` even once the run's named copy is gone.
    logged.kept_path(Repo.open(repo), run.id, "config.json").unlink()
    mlm(repo, "artifacts", "get", run.id, "config.json", "-o", str(repo / "back.json"))
    assert json.loads((repo / "back.json").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    mlm(repo, "artifacts", "get", run.id, "outputs", "-o", str(repo / "back"))
    assert (repo / "back" / "sub" / "b.txt").read_text() == "b"


def test_log_file_keeps_a_file_or_folder_from_outside_the_work_tree(
    repo: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    (saved / "weights").mkdir(parents=True)
    (saved / "config.json").write_text("{}")
    (saved / "weights" / "w.bin").write_bytes(b"\0" * 4096)
    with gitmlm.start_run() as run:
        run.log_file(saved, "model")
        run.log_file(saved / "config.json", "model.json")
        with pytest.raises(MlmError, match="not a file or a folder"):
            run.log_file(tmp_path / "nothing", "x")
    got = gitmlm.get_run(run.id).artifacts
    assert got["model"]["kind"] == "dir" and got["model"]["files"] == 2
    assert got["model"]["size"] == 4098 and got["model"]["kept"] is True
    assert _kept(repo, run.id, "model/weights/w.bin") == b"\0" * 4096
    assert got["model.json"]["size"] == 2 and "x" not in got
    mlm(repo, "artifacts", "get", run.id, "model", "-o", str(repo / "back"))
    assert (repo / "back" / "config.json").read_text() == "{}"


def test_bad_artifacts_are_one_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logged, "TABLE_CAP", 1000)
    with gitmlm.start_run() as run:
        with pytest.raises(MlmError, match="expected a matplotlib Figure, got dict"):
            run.log_figure({"not": "a figure"}, "x.png")
        with pytest.raises(MlmError, match="over the 0 MB cap"):
            run.log_table(pd.DataFrame({"x": range(1000)}), "big.json")
        with pytest.raises(MlmError, match="must be a relative path"):
            run.log_text("x", "../escape.txt")
        with pytest.raises(MlmError, match="does not exist"):
            run.log_artifact("nothing/")
    assert gitmlm.get_run(run.id).artifacts == {}


def test_git_mlm_run_keeps_output_and_the_exception(repo: Path) -> None:
    (repo / "train.py").write_text(
        "import sys, gitmlm\n"
        "print('epoch 1 loss 0.5')\n"
        "print('warning: slow', file=sys.stderr)\n"
        "with gitmlm.start_run() as run:\n"
        "    run.log_metric('loss', 0.5)\n"
        "    raise ValueError('bad batch 7')\n"
    )
    proc = mlm(repo, "run", "--", sys.executable, "train.py", check=False)
    assert proc.returncode == 1
    assert "epoch 1 loss 0.5" in proc.stdout  # the user still sees it
    assert "warning: slow" in proc.stderr and "ValueError: bad batch 7" in proc.stderr
    (row,) = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    run = gitmlm.get_run(row["run_id"])
    assert run.status == "failed" and run.metrics == {"loss": 0.5}
    assert run.extra["error"]["type"] == "ValueError"
    assert run.extra["error"]["message"] == "bad batch 7"
    assert "raise ValueError" in run.extra["error"]["traceback"]
    assert _kept(repo, run.id, "stdout.log") == b"epoch 1 loss 0.5\n"
    assert b"ValueError: bad batch 7" in _kept(repo, run.id, "stderr.log")
    assert set(run.artifacts) == {"stdout.log", "stderr.log"}


def test_output_is_capped_to_its_end(repo: Path) -> None:
    (repo / "noisy.py").write_text(
        "import sys\nfor i in range(30000):\n    sys.stdout.write(f'{i:09d}' * 10 + '\\n')\n"
    )
    proc = mlm(repo, "run", "--", sys.executable, "noisy.py")
    assert proc.stdout.count("\n") == 30000
    (row,) = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    kept = _kept(repo, row["run_id"], "stdout.log")
    head, _, rest = kept.partition(b"\n")
    assert head.startswith(b"[gitmlm: the first ") and len(rest) == logged.OUTPUT_CAP
    assert rest.endswith(b"000029999" * 10 + b"\n")
    proc = mlm(repo, "run", "--no-capture", "--", sys.executable, "-c", "print('x')")
    runs = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    assert "stdout.log" not in gitmlm.get_run(runs[0]["run_id"]).artifacts
