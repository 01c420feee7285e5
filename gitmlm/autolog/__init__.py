"""Autologging: what a framework's training call knows (its params, scores, the fitted model),
recorded into the current run without changing the training code.

`gitmlm.autolog.autolog()` turns on every supported framework that is installed; each
framework's module (`gitmlm.autolog.sklearn`) has its own `autolog()`. Supported:
scikit-learn, XGBoost, LightGBM.
"""

from __future__ import annotations

import importlib.util

FRAMEWORKS = {
    "sklearn": "gitmlm.autolog.sklearn",
    "xgboost": "gitmlm.autolog.xgboost",
    "lightgbm": "gitmlm.autolog.lightgbm",
}


def autolog(*, log_models: bool = True, disable: bool = False) -> list[str]:
    """Turn autologging on (or off) for every supported framework installed; their names."""
    done = []
    for name, module in FRAMEWORKS.items():
        if importlib.util.find_spec(name) is None:
            continue
        mod = importlib.import_module(module)
        mod.autolog(log_models=log_models, disable=disable)
        done.append(name)
    return done
