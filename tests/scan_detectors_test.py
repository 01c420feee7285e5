"""The scan's detectors on tabular tasks with planted problems (fixed seeds): each problem is
found, named and located, and a clean model on clean data raises nothing major."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

import joblib
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from gitmlm.scan import engine
from gitmlm.scan.context import Options
from gitmlm.scan.findings import Finding, bh
from tests.helpers import churn_frame, churn_model


def scan(tmp_path: Path, model: Any, data: Any, train: Any = None, **options: Any) -> engine.Result:
    joblib.dump(model, tmp_path / "model.joblib")
    data.to_csv(tmp_path / "eval.csv", index=False)
    extra = []
    if train is not None:
        train.to_csv(tmp_path / "train.csv", index=False)
        extra = [str(tmp_path / "train.csv")]
    request = engine.Request(
        str(tmp_path / "model.joblib"),
        tmp_path / "eval.csv",
        "churn",
        train=extra,
        options=Options(**options),
    )
    return engine.scan(None, request)


def major(result: engine.Result, detector: str) -> list[Finding]:
    return [f for f in result.findings if f.severity == "major" and f.detector == detector]


@pytest.fixture(scope="module")
def frames() -> tuple[Any, Any]:
    return churn_frame(2000, 1), churn_frame(1500, 101)


@pytest.fixture(scope="module")
def clean_model(frames: tuple[Any, Any]) -> Any:
    return churn_model(frames[0])


def test_benjamini_hochberg_adjusts_step_up_and_stays_monotone() -> None:
    q = bh([0.01, 0.04, 0.03, 0.5])
    assert np.allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert list(bh([])) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_model_on_clean_data_has_nothing_major(tmp_path: Path, seed: int) -> None:
    train, test = churn_frame(2000, seed), churn_frame(1500, seed + 100)
    result = scan(tmp_path, churn_model(train), test, train, seed=seed, sensitive=["region"])
    assert [f for f in result.findings if f.severity == "major"] == []
    assert result.task == "classification" and result.rows == 1500


def test_slice_with_noisy_labels_is_a_major_performance_finding(
    tmp_path: Path, frames: tuple[Any, Any], clean_model: Any
) -> None:
    test = frames[1].copy()
    rng = np.random.default_rng(5)
    flip = (test.region == "north") & (rng.random(len(test)) < 0.5)
    test.loc[flip, "churn"] = 1 - test.loc[flip, "churn"]
    found = major(scan(tmp_path, clean_model, test), "performance")
    where = [f.slice for f in found]
    assert 'region == "north"' in where
    single = next(f for f in found if f.slice == 'region == "north"')
    assert single.metric == "accuracy" and single.value < single.reference - 0.15
    assert single.q < 0.05 and single.support == int((test.region == "north").sum())


def test_slice_where_the_model_is_confidently_wrong_is_overconfidence(
    tmp_path: Path, frames: tuple[Any, Any]
) -> None:
    train = frames[0].copy()
    pro = train.plan == "pro"
    train.loc[pro, "churn"] = 1 - train.loc[pro, "churn"]  # learnt backwards on this slice
    result = scan(tmp_path, churn_model(train), frames[1])
    found = major(result, "overconfidence")
    assert [f.slice for f in found] == ['plan == "pro"']
    assert found[0].value > 0.3  # confidence exceeds accuracy by 30 points on the slice
    assert 'plan == "pro"' in [f.slice for f in major(result, "performance")]


def test_feature_the_model_is_brittle_on_is_named(tmp_path: Path, frames: tuple[Any, Any]) -> None:
    rng = np.random.default_rng(7)
    train, test = frames[0].copy(), frames[1].copy()
    train["noise"] = rng.normal(0, 1000, len(train))
    test["noise"] = rng.normal(0, 1000, len(test))
    pre = ColumnTransformer(
        [("num", "passthrough", ["age", "tenure", "noise"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("pre", pre), ("knn", KNeighborsClassifier(1))])
    model.fit(train.drop(columns="churn"), train.churn)
    found = major(scan(tmp_path, model, test), "robustness")
    assert [f.slice for f in found] == ["noise"]
    assert found[0].value > 0.15 and found[0].extra["perturbation"] == "noise"


def test_evaluation_rows_copied_from_training_are_contamination(
    tmp_path: Path, frames: tuple[Any, Any], clean_model: Any
) -> None:
    import pandas as pd

    train, test = frames
    mixed = pd.concat([test.iloc[:1000], train.iloc[:400]], ignore_index=True)
    found = major(scan(tmp_path, clean_model, mixed, train), "contamination")
    assert len(found) == 1 and found[0].support == 400
    assert "400 evaluation rows" in found[0].message
    clean = scan(tmp_path, clean_model, test, train)
    assert [f for f in clean.findings if f.detector == "contamination"] == []


def test_overfitted_model_is_found_from_its_training_data(
    tmp_path: Path, frames: tuple[Any, Any]
) -> None:
    train, test = frames
    tree = churn_model(train, DecisionTreeClassifier(random_state=0))
    found = major(scan(tmp_path, tree, test, train), "overfitting")
    assert len(found) == 1 and found[0].reference == 1.0 and found[0].value < 0.8


def test_model_answering_at_random_is_stochastic_and_not_called_brittle(
    tmp_path: Path, frames: tuple[Any, Any]
) -> None:
    train, test = frames
    model = DummyClassifier(strategy="uniform").fit(train.drop(columns="churn"), train.churn)
    result = scan(tmp_path, model, test)
    assert [f.detector for f in major(result, "stochasticity")] == ["stochasticity"]
    assert [f for f in result.findings if f.detector == "robustness"] == []
    assert any("robustness: skipped" in n for n in result.notes)


def test_batch_dependent_function_is_found(
    tmp_path: Path, frames: tuple[Any, Any], monkeypatch: Any
) -> None:
    (tmp_path / "batchy.py").write_text(
        "def predict(df):\n    return (df['age'] > df['age'].mean()).astype(int).to_numpy()\n"
    )
    frames[1].to_csv(tmp_path / "eval.csv", index=False)
    request = engine.Request(
        "batchy",
        tmp_path / "eval.csv",
        "churn",
        predict="batchy:predict",
        options=Options(detectors=["stochasticity"]),
    )
    monkeypatch.chdir(tmp_path)
    result = engine.scan(None, request)
    assert [(f.detector, f.severity) for f in result.findings] == [("batch dependence", "major")]


def test_parity_across_a_sensitive_column(tmp_path: Path, frames: tuple[Any, Any]) -> None:
    train, test = frames[0].copy(), frames[1].copy()
    for df in (train, test):
        df["gender"] = np.where(np.arange(len(df)) % 2 == 0, "f", "m")
    train.loc[train.gender == "f", "churn"] = 1  # the model learns to answer from gender
    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["age", "income", "tenure"]),
            ("cat", OneHotEncoder(), ["region", "plan", "gender"]),
        ]
    )
    from sklearn.ensemble import GradientBoostingClassifier

    model = Pipeline([("pre", pre), ("m", GradientBoostingClassifier(random_state=0))])
    model.fit(train.drop(columns="churn"), train.churn)
    result = scan(tmp_path, model, test, sensitive=["gender"], detectors=["parity", "shortcut"])
    parity = [f for f in result.findings if f.detector == "parity" and f.severity != "minor"]
    assert {f.slice for f in parity} == {'gender == "f"', 'gender == "m"'}
    assert all(f.effect > 0.4 for f in parity)  # disparate impact below 0.6
    assert 'gender == "f"' in {f.slice for f in major(result, "shortcut")}


def test_predictions_column_only_runs_what_needs_no_model(
    tmp_path: Path, frames: tuple[Any, Any], clean_model: Any
) -> None:
    test = frames[1].copy()
    test["p"] = clean_model.predict_proba(test.drop(columns="churn"))[:, 1]
    pro = test.plan == "pro"
    test.loc[pro, "p"] = np.where(test.loc[pro, "churn"] == 1, 0.02, 0.98)  # confidently wrong
    test.to_csv(tmp_path / "eval.csv", index=False)
    request = engine.Request("scores", tmp_path / "eval.csv", "churn", proba="p")
    result = engine.scan(None, request)
    assert result.kind == "columns"
    assert 'plan == "pro"' in [f.slice for f in major(result, "overconfidence")]
    assert any("robustness: skipped" in n for n in result.notes)


def test_same_seed_same_findings(tmp_path: Path, frames: tuple[Any, Any], clean_model: Any) -> None:
    a = scan(tmp_path, clean_model, frames[1], seed=3)
    b = scan(tmp_path, clean_model, frames[1], seed=3)
    assert [f.record() for f in a.findings] == [f.record() for f in b.findings]


def test_regression_slice_with_larger_errors(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    n = 1500
    import pandas as pd

    df = pd.DataFrame({"x": rng.normal(0, 1, n), "site": rng.choice(["a", "b", "c"], n)})
    df["churn"] = (
        3 * df.x + rng.normal(0, 0.5, n) + np.where(df.site == "c", rng.normal(0, 4, n), 0)
    )
    model = Pipeline(
        [
            (
                "pre",
                ColumnTransformer([("n", "passthrough", ["x"]), ("c", OneHotEncoder(), ["site"])]),
            ),
            ("m", LinearRegression()),
        ]
    ).fit(df.drop(columns="churn"), df.churn)
    result = scan(tmp_path, model, df)
    assert result.task == "regression"
    found = major(result, "performance")
    assert 'site == "c"' in [f.slice for f in found]
    assert all('site == "c"' in f.slice and f.metric == "mae" for f in found)


def test_text_feature_brittle_to_typos_and_case(tmp_path: Path, monkeypatch: Any) -> None:
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 1200
    good = rng.random(n) < 0.5
    words = np.where(good, "a Great product, would buy again", "a poor product, would not buy")
    pd.DataFrame(
        {"review": words, "stars": rng.integers(1, 6, n), "churn": good.astype(int)}
    ).to_csv(tmp_path / "eval.csv", index=False)
    (tmp_path / "casey.py").write_text(
        "def predict(df):\n    return df['review'].str.contains('Great').astype(int).to_numpy()\n"
    )
    monkeypatch.chdir(tmp_path)
    request = engine.Request(
        "casey",
        tmp_path / "eval.csv",
        "churn",
        predict="casey:predict",
        options=Options(detectors=["robustness"]),
    )
    found = engine.scan(None, request).findings
    assert [(f.slice, f.severity, f.extra["perturbation"]) for f in found] == [
        ("review", "major", "typo and case")
    ]
