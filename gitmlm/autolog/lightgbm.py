"""LightGBM autologging: `lightgbm.train` and the sklearn-style estimators record their params,
each validation set's metrics per iteration (`valid_0-l2`, `training-binary_logloss`, … as
step series) and the booster as the artifact `model/model.txt`."""

from __future__ import annotations

from typing import Any

from gitmlm.autolog import boosting, common
from gitmlm.tracking import record as tracking

MODEL = "model/model.txt"
_patch: boosting.Patch | None = None
_options = {"log_models": True}


def autolog(*, log_models: bool = True, disable: bool = False) -> None:
    global _patch
    import lightgbm
    import lightgbm.engine
    import lightgbm.sklearn

    _options["log_models"] = log_models
    if _patch is None:
        _patch = boosting.Patch("lightgbm", [lightgbm.engine, lightgbm, lightgbm.sklearn])
    if disable:
        _patch.disable()
    else:
        _patch.enable(_hooks)


def _hooks(run: tracking.ActiveRun, kwargs: dict[str, Any]) -> Any:
    def log(env: Any) -> None:
        values = {
            f"{data}-{name}": float(value) for data, name, value, *_ in env.evaluation_result_list
        }
        if values:
            run.log_metrics(values, step=env.iteration)

    params = dict(kwargs.get("params") or {})
    if "num_boost_round" in kwargs:
        params["num_boost_round"] = kwargs["num_boost_round"]
    run.log_params(common.param_values(params))
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), log]

    def after(booster: Any) -> None:
        if _options["log_models"]:
            run.log_bytes(booster.model_to_string().encode(), MODEL)

    return after
