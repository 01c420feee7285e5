"""XGBoost autologging: `xgboost.train` and the sklearn-style estimators record their params,
each evaluation set's metrics per iteration (`validation_0-rmse`, `train-logloss`, … as step
series) and the booster as the artifact `model/model.json`."""

from __future__ import annotations

from typing import Any

from gitmlm.autolog import boosting, common
from gitmlm.tracking import record as tracking

MODEL = "model/model.json"
_patch: boosting.Patch | None = None
_options = {"log_models": True}


def autolog(*, log_models: bool = True, disable: bool = False) -> None:
    global _patch
    import xgboost
    import xgboost.sklearn
    import xgboost.training

    _options["log_models"] = log_models
    if _patch is None:
        _patch = boosting.Patch("xgboost", [xgboost.training, xgboost, xgboost.sklearn])
    if disable:
        _patch.disable()
    else:
        _patch.enable(_hooks)


def _hooks(run: tracking.ActiveRun, kwargs: dict[str, Any]) -> Any:
    import xgboost

    class Log(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            values = {
                f"{data}-{metric}": float(history[-1])
                for data, metrics in evals_log.items()
                for metric, history in metrics.items()
            }
            if values:
                run.log_metrics(values, step=epoch)
            return False

    params = dict(kwargs.get("params") or {})
    if "num_boost_round" in kwargs:
        params["num_boost_round"] = kwargs["num_boost_round"]
    run.log_params(common.param_values(params))
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Log()]

    def after(booster: Any) -> None:
        if _options["log_models"]:
            run.log_bytes(bytes(booster.save_raw(raw_format="json")), MODEL)

    return after
