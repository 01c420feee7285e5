"""scikit-learn autologging: every estimator's `fit` records its params, training scores and
the fitted model (pickled, as the artifact `model/model.pkl`); a later `score()` call records
`validation_score`. Only the outermost `fit` records (a Pipeline's steps and a search's
candidates are part of it); a search also records `best_params.*` and `best_cv_score`.
"""

from __future__ import annotations

import functools
import math
import pickle
import weakref
from collections.abc import Callable
from typing import Any

from gitmlm.autolog import common
from gitmlm.tracking import record as tracking

MODEL = "model/model.pkl"
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
_fitted: weakref.WeakKeyDictionary[Any, tracking.ActiveRun] = weakref.WeakKeyDictionary()
_options = {"log_models": True}


def autolog(*, log_models: bool = True, disable: bool = False) -> None:
    """Patch (or with `disable`, restore) `fit` of every scikit-learn estimator and `score`."""
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.utils import all_estimators

    _options["log_models"] = log_models
    if disable:
        for (cls, name), original in _originals.items():
            setattr(cls, name, original)
        _originals.clear()
        return
    for _, cls in all_estimators():
        # the class that defines the fit it uses (GridSearchCV's is BaseSearchCV's)
        owner = next((c for c in cls.__mro__ if "fit" in c.__dict__), None)
        if owner is not None and (owner, "fit") not in _originals:
            _patch(owner, "fit", _fit_wrapper)
    for mixin in (ClassifierMixin, RegressorMixin):
        if (mixin, "score") not in _originals:
            _patch(mixin, "score", _score_wrapper)


def _patch(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = cls.__dict__[name]
    _originals[(cls, name)] = original
    setattr(cls, name, functools.wraps(original)(make(original)))


def _fit_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(common.state, "inside", False):
            return original(self, *args, **kwargs)  # a step of an outer fit: it records
        common.state.inside = True
        try:
            run = common.run_for("sklearn")
            result = original(self, *args, **kwargs)
            x = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            _record_fit(run, self, x, y)
            _fitted[self] = run
            return result
        finally:
            common.state.inside = False

    return fit


def _score_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    def score(self: Any, *args: Any, **kwargs: Any) -> Any:
        value = original(self, *args, **kwargs)
        if getattr(common.state, "inside", False):
            return value
        run = _fitted.get(self)
        if run is not None and run in tracking._active:
            common.state.inside = True
            try:
                run.log_metric("validation_score", float(value))
            finally:
                common.state.inside = False
        return value

    return score


def _record_fit(run: tracking.ActiveRun, est: Any, x: Any, y: Any) -> None:
    from sklearn.base import is_classifier, is_regressor

    run.log_params(common.param_values(est.get_params(deep=True)))
    run.set_tags({"estimator_name": type(est).__name__, "estimator_class": _qualname(est)})
    metrics: dict[str, float] = {}
    if y is not None and hasattr(est, "predict"):
        if is_classifier(est):
            metrics.update(_classifier_metrics(est, x, y))
        elif is_regressor(est):
            metrics.update(_regressor_metrics(est, x, y))
    if hasattr(est, "best_score_"):
        metrics["best_cv_score"] = float(est.best_score_)
        best = common.param_values(getattr(est, "best_params_", {}))
        run.log_params({"best_params": best})
    run.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})
    if _options["log_models"]:
        run.log_bytes(pickle.dumps(est), MODEL)


def _qualname(est: Any) -> str:
    return f"{type(est).__module__}.{type(est).__qualname__}"


def _classifier_metrics(est: Any, x: Any, y: Any) -> dict[str, float]:
    from sklearn import metrics as m

    pred = est.predict(x)
    out = {
        "training_accuracy_score": m.accuracy_score(y, pred),
        "training_precision_score": m.precision_score(y, pred, average="weighted", zero_division=0),
        "training_recall_score": m.recall_score(y, pred, average="weighted", zero_division=0),
        "training_f1_score": m.f1_score(y, pred, average="weighted", zero_division=0),
        "training_score": est.score(x, y),
    }
    return {k: float(v) for k, v in out.items()}


def _regressor_metrics(est: Any, x: Any, y: Any) -> dict[str, float]:
    from sklearn import metrics as m

    pred = est.predict(x)
    mse = float(m.mean_squared_error(y, pred))
    return {
        "training_mean_squared_error": mse,
        "training_root_mean_squared_error": math.sqrt(mse),
        "training_mean_absolute_error": float(m.mean_absolute_error(y, pred)),
        "training_r2_score": float(m.r2_score(y, pred)),
        "training_score": float(est.score(x, y)),
    }
