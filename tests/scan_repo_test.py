"""`git mlm scan` in a real repository: models loaded from the registry (skops, pickle, ONNX),
results kept as notes and carried by sync, read by `model show`, the promotion gate and the
pull-request report; bad input is one line and writes no note."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

import gitmlm
from gitmlm.cli import main
from gitmlm.core import refs
from tests.helpers import churn_frame, churn_model, git, mlm

Out = tuple[int, str, str]

TOML = """\
schema = 1

[models.churn]
path = "models/churn.skops"

[datasets.holdout]
path = "data/holdout.csv"

[scan]
trust = ["sklearn.tree._tree.Tree"]   # gradient boosting's trees: skops asks before loading them

[registry]
stages = ["staging", "production"]

[registry.gates.production]
scan = { data = "data/holdout.csv", target = "churn", max_major = 0 }
"""


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """`git mlm ARGS` in this process (scikit-learn is imported once); `mlm()` runs it through
    git as a user would, for the exit codes."""

    def run(*args: str) -> Out:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def as_json(out: Out) -> Any:
    assert out[0] == 0, out[2]
    return json.loads(out[1])


def scan_notes(repo: Path) -> str:
    return git(repo, "notes", "--ref", refs.SCANS, "list", check=False)


def train_and_register(repo: Path, model: Any, train: Any, path: str = "models/churn.skops") -> str:
    """A tracked run that logs its training data and the model file, a commit, a version."""
    from skops import io as sio

    (repo / "models").mkdir(exist_ok=True)
    (repo / "data").mkdir(exist_ok=True)
    train.to_csv(repo / "data" / "train.csv", index=False)
    with gitmlm.start_run() as run:
        run.log_dataset("data/train.csv")
        target = repo / path
        if path.endswith(".skops"):
            sio.dump(model, target)
        else:
            import joblib

            joblib.dump(model, target)
        run.log_artifact(target)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    return run.id


@pytest.fixture
def project(repo: Path) -> dict[str, Any]:
    (repo / "mlm.toml").write_text(TOML)
    train, holdout = churn_frame(1500, 1), churn_frame(1000, 101)
    (repo / "data").mkdir()
    holdout.to_csv(repo / "data" / "holdout.csv", index=False)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    run_id = train_and_register(repo, churn_model(train), train)
    assert main(["register", "churn"]) == 0
    return {"train": train, "holdout": holdout, "run": run_id}


def noisy(holdout: Any) -> Any:
    bad = holdout.copy()
    rng = np.random.default_rng(5)
    flip = (bad.region == "north") & (rng.random(len(bad)) < 0.5)
    bad.loc[flip, "churn"] = 1 - bad.loc[flip, "churn"]
    return bad


def test_scan_a_registered_skops_model_records_a_note_and_history(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    out = mlm(repo, "scan", "churn@v0.0.1", "data/holdout.csv", "--target", "churn")
    assert "scanned churn@v0.0.1 (skops)" in out.stdout
    assert "recorded the scan" in out.stderr
    commit = git(repo, "rev-list", "-n1", "churn@v0.0.1").strip()
    assert commit in scan_notes(repo)
    doc = as_json(cli("scan", "history", "churn", "--format", "json"))
    assert len(doc) == 1
    assert doc[0]["version"] == "v0.0.1" and doc[0]["answers"] == "skops"
    assert doc[0]["data_digest"].startswith("sha256:")
    assert doc[0]["run"] == project["run"]
    assert doc[0]["artifact_source"] == "work tree"
    # the run's recorded training data was found, its digest checked, and used
    assert "training data: data/train.csv (data/train.csv)" in doc[0]["notes"]
    # a rescan of the same version on the same data replaces the table, not adds one; DATA
    # may be a declared dataset (the run recorded it too: it is not taken for training data)
    again = as_json(cli("scan", "churn", "holdout", "--target", "churn", "--format", "json"))
    assert again["data_digest"] == doc[0]["data_digest"]
    assert not [f for f in again["findings"] if f["detector"] == "contamination"]
    assert any(n.startswith("training data not used: holdout") for n in again["notes"])
    assert len(as_json(cli("scan", "history", "churn", "--format", "json"))) == 1
    code, _, err = cli("scan", "history", "chrun")
    assert code == 1 and "did you mean churn?" in err
    # the model file edited in the work tree: the version's commit has the right one
    (repo / "models" / "churn.skops").write_bytes(b"edited since")
    edited = cli("scan", "churn", "data/holdout.csv", "--target", "churn", "--format", "json")
    assert as_json(edited)["artifact_source"].startswith("commit ")


def test_findings_exit_3_and_show_up_in_model_show(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    noisy(project["holdout"]).to_csv(repo / "noisy.csv", index=False)
    out = mlm(repo, "scan", "churn", "noisy.csv", "--target", "churn", check=False)
    assert out.returncode == 3, out.stderr
    assert 'region == "north"' in out.stdout and "major" in out.stderr
    allowed = cli("scan", "churn", "noisy.csv", "--target", "churn", "--max-major", "9")
    assert allowed[0] == 0
    shown = cli("model", "show", "churn")[1]
    assert "scan findings" in shown and 'region == "north"' in shown
    info = as_json(cli("model", "show", "churn", "--format", "json"))
    assert "noisy.csv" in info["scans"]
    assert any(f["slice"] == 'region == "north"' for f in info["findings"])
    for form in ("csv", "md"):
        code, text, _ = cli(
            "scan", "churn", "noisy.csv", "--target", "churn", "--format", form, "--no-record"
        )
        assert code == 3 and "north" in text


def test_pickle_by_run_id_and_onnx_file(repo: Path, project: dict[str, Any], cli: Any) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.linear_model import LogisticRegression

    train = project["train"]
    small = churn_model(train, LogisticRegression(max_iter=300))
    run_id = train_and_register(repo, small, train, "models/other.pkl")
    out = cli("scan", run_id[:12], "data/holdout.csv", "--target", "churn", "--format", "json")
    doc = as_json(out)
    assert doc["answers"] == "pickle" and doc["run"] == run_id
    assert f"run {run_id[:12]}" in cli("scan", "history", run_id[:12])[1]

    types = [(c, FloatTensorType([None, 1])) for c in ("age", "income", "tenure")] + [
        (c, StringTensorType([None, 1])) for c in ("region", "plan")
    ]
    onx = to_onnx(small, initial_types=types, options={id(small): {"zipmap": False}})
    (repo / "churn.onnx").write_bytes(onx.SerializeToString())
    code, text, err = cli(
        "scan", "churn.onnx", "data/holdout.csv", "--target", "churn", "--format", "json"
    )
    assert code == 0, err
    onnx_doc = json.loads(text)
    assert onnx_doc["answers"] == "onnx" and onnx_doc["task"] == "classification"
    assert "not recorded" in err  # a loose file has no commit to keep the note on
    # the same model through ONNX and through pickle: the same findings
    assert [f["detector"] for f in onnx_doc["findings"]] == [f["detector"] for f in doc["findings"]]


def test_a_model_overwritten_since_its_run_comes_from_the_object_store(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    small = churn_model(project["train"], LogisticRegression(max_iter=300))
    with gitmlm.start_run() as run:
        joblib.dump(small, repo / "models" / "late.pkl")
        run.log_artifact(repo / "models" / "late.pkl")
    (repo / "models" / "late.pkl").write_bytes(b"the next run's model")  # never committed
    code, text, err = cli(
        "scan", run.id[:12], "data/holdout.csv", "--target", "churn", "--format", "json"
    )
    assert code in (0, 3), err
    doc = json.loads(text)
    assert doc["answers"] == "pickle" and doc["run"] == run.id
    assert "object store" in json.dumps(doc)


def test_bad_input_is_one_line_and_writes_no_note(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    import pandas as pd

    holdout = project["holdout"]
    n = 100_000
    cases = {
        "no target column 'nope'": (holdout, ["--target", "nope"]),
        "has a single value": (holdout.assign(churn=1), []),
        "needs column(s) the data lacks: plan": (holdout.drop(columns="plan"), []),
        "100,000 distinct values": (
            pd.DataFrame(
                {
                    "customer": [f"c{i}" for i in range(n)],
                    "pred": np.arange(n) % 2,
                    "churn": (np.arange(n) // 3) % 2,
                }
            ),
            ["--prediction", "pred"],
        ),
    }
    for message, (frame, args) in cases.items():
        frame.to_csv(repo / "bad.csv", index=False)
        code, _, err = cli("scan", "churn", "bad.csv", "--target", "churn", *args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    (repo / "bad.csv").write_text("")
    code, _, err = cli("scan", "churn", "bad.csv", "--target", "churn")
    assert code == 1 and "file is empty" in err
    (repo / "broken.joblib").write_bytes(b"\x80\x04 not really a pickle")
    code, _, err = cli("scan", "broken.joblib", "data/holdout.csv", "--target", "churn")
    assert code == 1 and "cannot load it as a joblib model" in err
    (repo / "weird.bin").write_bytes(b"hello")
    code, _, err = cli("scan", "weird.bin", "data/holdout.csv", "--target", "churn")
    assert "expected one of skops, joblib, pickle, onnx" in err
    (repo / "mlm.toml").write_text((repo / "mlm.toml").read_text().replace("trust =", "# trust ="))
    code, _, err = cli("scan", "churn", "data/holdout.csv", "--target", "churn")
    assert code == 1 and "skops does not trust by default (sklearn.tree._tree.Tree)" in err
    assert scan_notes(repo) == ""


def test_html_report_has_a_plot_per_finding(repo: Path, project: dict[str, Any], cli: Any) -> None:
    pytest.importorskip("matplotlib")
    noisy(project["holdout"]).to_csv(repo / "noisy.csv", index=False)
    cli("scan", "churn", "noisy.csv", "--target", "churn", "--html", "scan.html", "--no-record")
    page = (repo / "scan.html").read_text()
    findings = page.count("<h2>") - page.count("<h2>Notes")
    assert findings >= 1 and page.count("data:image/png;base64") == findings
    assert "region == &quot;north&quot;" in page


def test_gate_runs_the_scan_refuses_with_findings_and_force_records_the_reason(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    noisy(project["holdout"]).to_csv(repo / "data" / "holdout.csv", index=False)
    code, _, err = cli("promote", "churn", "production")
    assert code == 1
    assert "scan: major <= 0" in err and "FAIL" in err
    assert 'region == "north"' in err and "scanned now" in err
    assert scan_notes(repo) != ""  # the gate's scan is kept: the next promotion reads it
    code, _, err = cli("promote", "churn", "production")
    assert code == 1 and "(recorded)" in err
    code, out, _ = cli("promote", "churn", "production", "--force", "--reason", "known noise")
    assert code == 0 and "gates overridden" in out
    tag = out.split("tag ")[1].split()[0]
    body = git(repo, "cat-file", "tag", tag)
    assert "known noise" in body and "scan: major <= 0" in body


def test_clean_scan_passes_the_gate(repo: Path, project: dict[str, Any], cli: Any) -> None:
    code, out, err = cli("promote", "churn", "production")
    assert code == 0 and "is now in production" in out, err


def test_ci_check_report_lists_the_findings(repo: Path, project: dict[str, Any], cli: Any) -> None:
    noisy(project["holdout"]).to_csv(repo / "data" / "holdout.csv", index=False)
    cli("promote", "--request", "churn", "production", "v0.0.1")
    code, out, _ = cli("ci", "check")
    assert code == 1
    assert "**Scan findings** on holdout.csv" in out
    assert "| major | performance |" in out and 'region == "north"' in out


def test_scan_notes_travel_with_sync(
    tmp_path: Path,
    repo: Path,
    project: dict[str, Any],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli("scan", "churn", "data/holdout.csv", "--target", "churn")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    assert cli("sync")[0] == 0
    mine = as_json(cli("scan", "history", "churn", "--format", "json"))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    monkeypatch.chdir(other)
    assert cli("fetch")[0] == 0
    theirs = as_json(cli("scan", "history", "churn", "--format", "json"))
    assert theirs == mine and len(theirs) == 1


def test_scores_only_are_recorded_on_the_named_version(
    repo: Path, project: dict[str, Any], cli: Any
) -> None:
    scored = project["holdout"].assign(p=0.3)
    scored.to_csv(repo / "scored.csv", index=False)
    doc = as_json(
        cli(
            "scan",
            "churn@v0.0.1",
            "scored.csv",
            "--target",
            "churn",
            "--proba",
            "p",
            "--format",
            "json",
            "--max-major",
            "99",
        )
    )
    assert doc["answers"] == "columns" and doc["version"] == "v0.0.1"
    assert doc["key"] is not None  # recorded on the version's commit
    code, _, err = cli("scan", "churn@v9.9.9", "scored.csv", "--target", "churn", "--proba", "p")
    assert code == 1 and "no version v9.9.9" in err
