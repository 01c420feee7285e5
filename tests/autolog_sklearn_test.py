"""scikit-learn autologging against the real library: params, training and validation scores,
the fitted model as an artifact; one record per outermost fit."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import gitmlm
from gitmlm.autolog import sklearn as sk_autolog
from gitmlm.core.git import Repo
from gitmlm.tracking import logged
from tests.helpers import mlm


@pytest.fixture
def autolog() -> Iterator[None]:
    sk_autolog.autolog()
    try:
        yield
    finally:
        sk_autolog.autolog(disable=True)


def test_fit_records_params_scores_and_model(repo: Path, autolog: None) -> None:
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    with gitmlm.start_run(name="iris") as run:
        model = LogisticRegression(C=0.5, max_iter=300).fit(x_train, y_train)
        held_out = model.score(x_test, y_test)
    got = gitmlm.get_run(run.id)
    assert got.params["C"] == 0.5 and got.params["max_iter"] == 300
    assert got.tags["estimator_name"] == "LogisticRegression"
    assert got.metrics["training_accuracy_score"] == model.score(x_train, y_train)
    assert {"training_f1_score", "training_precision_score", "training_recall_score"} <= set(
        got.metrics
    )
    assert got.metrics["validation_score"] == held_out
    kept = logged.kept_path(Repo.open(repo), run.id, sk_autolog.MODEL).read_bytes()
    assert (pickle.loads(kept).predict(x_test) == model.predict(x_test)).all()


def test_search_over_a_pipeline_is_one_record(repo: Path, autolog: None) -> None:
    x, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))])
    search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=3)
    with gitmlm.start_run() as run:
        search.fit(x, y)
    got = gitmlm.get_run(run.id)
    assert got.params["best_params"] == {"clf__C": search.best_params_["clf__C"]}
    assert got.params["cv"] == 3 and "estimator__clf__max_iter" in got.params
    assert got.metrics["best_cv_score"] == search.best_score_
    assert len(gitmlm.runs()) == 1  # the candidates' and steps' fits are part of this one


def test_without_a_run_autolog_makes_one(repo: Path) -> None:
    """A plain script, through the MLflow spelling: the run stays open for the scores that
    follow the fit and ends with the process."""
    (repo / "fit.py").write_text(
        "import gitmlm.mlflow as mlflow\n"
        "from sklearn.datasets import load_diabetes\n"
        "from sklearn.linear_model import Ridge\n"
        "mlflow.sklearn.autolog()\n"
        "x, y = load_diabetes(return_X_y=True)\n"
        "m = Ridge(alpha=0.3).fit(x[:300], y[:300])\n"
        "print(m.score(x[300:], y[300:]))\n"
    )
    proc = subprocess.run([sys.executable, "fit.py"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    assert row["status"] == "finished" and row["params.alpha"] == 0.3
    assert row["metrics.validation_score"] == float(proc.stdout)
    assert row["tags.mlm.autolog"] == "sklearn"
    assert {"metrics.training_r2_score", "metrics.training_root_mean_squared_error"} <= set(row)


def test_disable_restores_the_library(repo: Path) -> None:
    original = LogisticRegression.fit
    sk_autolog.autolog()
    assert LogisticRegression.fit is not original
    sk_autolog.autolog(disable=True)
    assert LogisticRegression.fit is original
    x, y = load_iris(return_X_y=True)
    with gitmlm.start_run() as run:
        LogisticRegression(max_iter=300).fit(x, y)
    assert gitmlm.get_run(run.id).params == {}


def test_two_fits_outside_a_run_are_two_runs(repo: Path, autolog: None) -> None:
    from gitmlm.autolog import common

    x, y = load_iris(return_X_y=True)
    try:
        LogisticRegression(C=0.5, max_iter=300).fit(x, y)
        StandardScaler().fit(x)
    finally:
        common.end_own()
    first, second = (gitmlm.get_run(r) for r in gitmlm.runs(order_by="started")["run_id"])
    assert first.params["C"] == 0.5 and "with_mean" not in first.params
    assert second.params["with_mean"] is True and "C" not in second.params
