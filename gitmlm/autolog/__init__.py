"""Autologging: what a framework's training call knows (its params, scores, the fitted model),
recorded into the current run without changing the training code.

`gitmlm.autolog.autolog()` turns on every supported framework that is installed; each
framework's module (`gitmlm.autolog.sklearn`) has its own `autolog()`. Supported:
scikit-learn, XGBoost, LightGBM, and the deep-learning frameworks PyTorch Lightning,
transformers and Keras, whose modules also give the Logger or Callback to pass by hand.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from gitmlm.autolog import onimport

FRAMEWORKS = {
    "sklearn": "gitmlm.autolog.sklearn",
    "xgboost": "gitmlm.autolog.xgboost",
    "lightgbm": "gitmlm.autolog.lightgbm",
}
LATER = {
    "lightning": ("lightning.pytorch", "gitmlm.autolog.lightning"),
    "transformers": ("transformers.trainer", "gitmlm.autolog.transformers"),
    "keras": ("keras", "gitmlm.autolog.keras"),
}
"""Frameworks turned on when the script imports them (their module, in sys.modules, that
holds what is patched): autolog() itself must not spend seconds importing torch."""


def autolog(*, log_models: bool = True, disable: bool = False) -> list[str]:
    """Turn autologging on (or off) for every supported framework installed; their names."""
    done = []
    for name, module in FRAMEWORKS.items():
        if importlib.util.find_spec(name) is None:
            continue
        mod = importlib.import_module(module)
        mod.autolog(log_models=log_models, disable=disable)
        done.append(name)
    for name, (trigger, module) in LATER.items():
        if importlib.util.find_spec(name) is None:
            continue
        if disable:
            onimport.forget(trigger)
            if module in sys.modules:
                sys.modules[module].autolog(disable=True)
        else:

            def enable(module: str = module) -> None:
                importlib.import_module(module).autolog(log_models=log_models)

            onimport.when_imported(trigger, enable)
        done.append(name)
    return done
