"""XGBoost and LightGBM autologging against the real libraries: params, per-iteration
evaluation metrics as step series, the booster as an artifact; native and sklearn-style APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

import gitmlm
from gitmlm.autolog import autolog
from gitmlm.autolog import lightgbm as lgb_autolog
from gitmlm.autolog import xgboost as xgb_autolog
from gitmlm.core.git import Repo
from gitmlm.tracking import logged


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    return x, x[:, 0] * 2 + rng.normal(scale=0.1, size=200)


@pytest.fixture
def autologged() -> Iterator[None]:
    assert {"xgboost", "lightgbm"} <= set(autolog())
    try:
        yield
    finally:
        autolog(disable=True)


def test_xgboost_native_and_sklearn(repo: Path, data: tuple, autologged: None) -> None:
    x, y = data
    train, valid = xgb.DMatrix(x[:150], y[:150]), xgb.DMatrix(x[150:], y[150:])
    with gitmlm.start_run() as run:
        booster = xgb.train(
            {"max_depth": 2, "eta": 0.3},
            train,
            num_boost_round=5,
            evals=[(train, "train"), (valid, "valid")],
        )
    got = gitmlm.get_run(run.id)
    assert got.params == {"max_depth": 2, "eta": 0.3, "num_boost_round": 5}
    assert got.steps["valid-rmse"]["step"] == [0, 1, 2, 3, 4]
    assert got.metrics["train-rmse"] == got.steps["train-rmse"]["value"][-1]
    kept = logged.kept_path(Repo.open(repo), run.id, xgb_autolog.MODEL).read_bytes()
    again = xgb.Booster()
    again.load_model(bytearray(kept))
    assert np.allclose(again.predict(valid), booster.predict(valid))

    with gitmlm.start_run() as run:
        xgb.XGBRegressor(n_estimators=3, max_depth=2).fit(
            x[:150], y[:150], eval_set=[(x[150:], y[150:])]
        )
    assert gitmlm.get_run(run.id).steps["validation_0-rmse"]["step"] == [0, 1, 2]


def test_lightgbm_native_and_sklearn(repo: Path, data: tuple, autologged: None) -> None:
    x, y = data
    train = lgb.Dataset(x[:150], y[:150])
    valid = lgb.Dataset(x[150:], y[150:], reference=train)
    params = {"objective": "regression", "num_leaves": 4, "verbose": -1}
    with gitmlm.start_run() as run:
        booster = lgb.train(params, train, num_boost_round=4, valid_sets=[valid])
    got = gitmlm.get_run(run.id)
    assert got.params["num_leaves"] == 4 and got.params["num_boost_round"] == 4
    assert got.steps["valid_0-l2"]["step"] == [0, 1, 2, 3]
    text = logged.kept_path(Repo.open(repo), run.id, lgb_autolog.MODEL).read_text()
    assert np.allclose(lgb.Booster(model_str=text).predict(x[150:]), booster.predict(x[150:]))

    with gitmlm.start_run() as run:
        lgb.LGBMRegressor(n_estimators=3, num_leaves=4, verbose=-1).fit(
            x[:150], y[:150], eval_set=[(x[150:], y[150:])]
        )
    assert gitmlm.get_run(run.id).steps["valid_0-l2"]["step"] == [0, 1, 2]


def test_disable_restores_train(repo: Path) -> None:
    original = xgb.train, lgb.train
    autolog()
    assert xgb.train is not original[0] and lgb.train is not original[1]
    autolog(disable=True)
    assert (xgb.train, lgb.train) == original
