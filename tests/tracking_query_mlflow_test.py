"""`gitmlm.runs(where=, order_by=)` answers MLflow's filter and order strings as MLflow's own
`search_runs` does, over the same runs logged into both (the real MLflow, in its own venv)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.errors import MlmError
from tests.helpers import peer_python

NAN = math.nan
RUNS: list[dict[str, Any]] = [
    {
        "name": "r1",
        "params": {"batch_size": 2, "model": "cnn", "lr": 0.1},
        "metrics": {"acc": 0.91, "loss": 0.3, "f1 score": 0.5},
        "tags": {"team": "vision"},
    },
    {
        "name": "r2",
        "params": {"batch_size": 4, "model": "mlp", "lr": 0.01},
        "metrics": {"acc": 0.72, "loss": NAN},
        "tags": {"team": ""},
    },
    {
        "name": "r3",
        "params": {"batch_size": 2, "model": "", "lr": 0.5},
        "metrics": {"acc": 0.95, "f1 score": 0.2},
        "tags": {},
    },
    {
        "name": "r4",
        "params": {"batch_size": 8, "model": "cnn"},
        "metrics": {"acc": 0.4, "loss": 1.5},
        "tags": {"team": "Vision"},
        "failed": True,
    },
    {
        "name": "R5",
        "params": {"model": "rnn", "lr": 0.1},
        "metrics": {"loss": NAN, "f1 score": 0.9},
        "tags": {"team": "nlp"},
    },
]

FILTERS = [
    "metrics.acc > 0.5",
    "metric.acc > 0.5",
    "metrics.acc >= 0.9 and params.model = 'cnn'",
    "metrics.acc < 0.8 and tags.team != 'nlp'",
    "params.batch_size = '2'",
    "param.batch_size = '2'",
    "params.batch_size != '2'",
    "params.lr = '0.1'",
    "params.lr LIKE '0.%'",
    "params.model = ''",
    "params.model != ''",
    "attributes.status = 'FINISHED'",
    "attribute.status = 'FAILED'",
    "status != 'FINISHED'",
    "attributes.run_name = 'r2'",
    "run_name = 'r2'",
    "tags.mlflow.runName = 'r2'",
    "run_name LIKE 'r%'",
    "attributes.run_name ILIKE 'r%'",
    "tags.team = ''",
    "tags.team = 'vision'",
    "tags.team != ''",
    "tags.team ILIKE 'vis%'",
    "metrics.`f1 score` > 0.3",
    'metrics."f1 score" > 0.3',
    "metrics.loss < 1",
    "metrics.loss >= 0",
    "attributes.start_time > 0",
    "end_time > 0",
]
# The last key makes ties the same on both sides (MLflow breaks them by its run ids).
TIE = "attributes.run_name ASC"
ORDERS = [
    "metrics.acc DESC",
    "metrics.acc ASC",
    "metrics.loss ASC",
    "metrics.loss DESC",
    "metrics.`f1 score` DESC",
    "metrics.`acc` DESC",
    "`metrics.f1 score` ASC",
    "tags.team ASC",
    "tags.team DESC",
    "params.model ASC",
    "params.model DESC",
    "attributes.start_time ASC",
    "start_time DESC",
    "attributes.run_name DESC",
    "run_name",
    "attribute.status",
]
# MLflow refuses these; gitmlm must refuse them too rather than answer nothing.
REFUSED = ["acc >= 0.94", "1 = 1", "foo IS NULL", "attributes.nosuch = 'x'"]
# (MLflow's file store also refuses `or` and `in` on params, which gitmlm reads; not compared.)


def _mlflow(tmp: Path, queries: list[tuple[str, list[str] | None]]) -> list[dict[str, Any]]:
    script = tmp / "search.py"
    script.write_text(MLFLOW_SCRIPT)
    spec = {"uri": (tmp / "mlruns").as_uri(), "runs": RUNS, "queries": queries}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.run(
        [str(peer_python("mlflow")), str(script)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answers


def _log_gitmlm(repo: Path) -> None:
    for run in RUNS:
        try:
            with gitmlm.start_run(name=run["name"], params=run["params"], tags=run["tags"]) as r:
                r.log_metrics(run["metrics"])
                if run.get("failed"):
                    raise RuntimeError("failed on purpose")
        except RuntimeError:
            pass


def _gitmlm(where: str | None, order_by: list[str] | None) -> dict[str, Any]:
    try:
        return {"names": gitmlm.runs(where=where, order_by=order_by)["name"].tolist()}
    except MlmError as exc:
        return {"error": str(exc)}


def test_gitmlm_answers_mlflow_filters_and_orders_as_mlflow_does(
    repo: Path, tmp_path: Path
) -> None:
    queries: list[tuple[str, list[str] | None]] = [(f, None) for f in FILTERS]
    queries += [("", [o, TIE]) for o in ORDERS]
    queries += [("", None)]  # the default order: newest first
    queries += [(f, None) for f in REFUSED]
    mlflow_answers = _mlflow(tmp_path, queries)
    _log_gitmlm(repo)
    wrong = []
    for (where, order_by), theirs in zip(queries, mlflow_answers, strict=True):
        ours = _gitmlm(where or None, order_by)
        if "error" in theirs:
            if "error" not in ours:
                wrong.append(
                    f"{where!r}: MLflow refuses ({theirs['error'][:80]}), we answer {ours}"
                )
            continue
        assert "error" not in ours, f"{where!r} {order_by}: {ours['error']}"
        if order_by is None and where:
            same = sorted(ours["names"]) == sorted(theirs["names"])
        else:
            same = ours["names"] == theirs["names"]
        if not same:
            wrong.append(f"{where!r} {order_by}: MLflow {theirs['names']}, gitmlm {ours['names']}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("where", "suggestion"),
    [
        ("metrics.ac > 0.5", "metrics.acc"),
        ("metric.accc > 0.5", "metrics.acc"),
        ("acc >= 0.94", "metrics.acc"),
        ("params.batchsize = 2", "params.batch_size"),
        ("foo is null", None),
        ("1=1", None),
    ],
)
def test_an_unknown_column_is_an_error_with_a_suggestion(
    repo: Path, where: str, suggestion: str | None
) -> None:
    with gitmlm.start_run(name="a", params={"batch_size": 2}) as run:
        run.log_metric("acc", 0.9)
    with pytest.raises(MlmError, match="unknown column") as raised:
        gitmlm.runs(where=where)
    if suggestion:
        assert f"did you mean {suggestion}?" in str(raised.value)


def test_an_unknown_order_column_is_an_error_not_ignored(repo: Path) -> None:
    with gitmlm.start_run(name="a") as run:
        run.log_metric("acc", 0.9)
    with pytest.raises(MlmError, match=r"unknown column .metrics.ac. in --order-by.*metrics.acc"):
        gitmlm.runs(order_by="metrics.ac desc")


def test_names_with_spaces_and_backticks_order(repo: Path) -> None:
    for name, f1 in (("low", 0.1), ("high", 0.9), ("none", None)):
        with gitmlm.start_run(name=name) as run:
            if f1 is not None:
                run.log_metric("f1 score", f1)
    assert gitmlm.runs(order_by="metrics.`f1 score` desc")["name"].tolist() == [
        "high",
        "low",
        "none",
    ]
    assert gitmlm.runs(order_by=["metrics.`f1 score`", "name"])["name"].tolist() == [
        "low",
        "high",
        "none",
    ]


def test_no_runs_accepts_any_data_column(repo: Path) -> None:
    # Nothing to check names against yet, and no answer to get wrong.
    assert gitmlm.runs(where="metrics.acc > 0.5").empty
    with pytest.raises(MlmError, match="unknown column 'foo'"):
        gitmlm.runs(where="foo = 1")


MLFLOW_SCRIPT = """
import json
import sys

import mlflow

spec = json.load(sys.stdin)
mlflow.set_tracking_uri(spec["uri"])
experiment = mlflow.create_experiment("diff")
for run in spec["runs"]:
    with mlflow.start_run(experiment_id=experiment, run_name=run["name"]):
        for key, value in run["params"].items():
            mlflow.log_param(key, value)
        for key, value in run["metrics"].items():
            mlflow.log_metric(key, value)
        for key, value in run["tags"].items():
            mlflow.set_tag(key, value)
        if run.get("failed"):
            mlflow.end_run(status="FAILED")
answers = []
for filter_string, order_by in spec["queries"]:
    try:
        found = mlflow.search_runs(
            [experiment], filter_string=filter_string, order_by=order_by, output_format="list"
        )
        answers.append({"names": [r.info.run_name for r in found]})
    except Exception as exc:
        answers.append({"error": str(exc)})
print(json.dumps(answers))
"""
