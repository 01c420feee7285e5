"""What XGBoost's and LightGBM's autologging share: wrapping a library's `train` function
wherever the library bound it, so its sklearn-style estimators are covered too."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from gitmlm.autolog import common
from gitmlm.tracking import record as tracking

Hooks = Callable[[tracking.ActiveRun, dict[str, Any]], Callable[[Any], None]]
"""(run, every argument by name) -> `after(booster)`; adds the per-iteration callback."""


class Patch:
    def __init__(self, framework: str, modules: list[ModuleType], name: str = "train") -> None:
        self.framework = framework
        self.modules = modules
        self.name = name
        self.original: Callable[..., Any] | None = None

    def enable(self, hooks: Hooks) -> None:
        if self.original is not None:
            return
        original = getattr(self.modules[0], self.name)
        self.original = original
        signature = inspect.signature(original)

        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            if getattr(common.state, "inside", False):
                return original(*args, **kwargs)
            common.state.inside = True
            try:
                run = common.run_for(self.framework)
                # every argument by name (params often come positionally), defaults included
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                named = dict(bound.arguments)
                after = hooks(run, named)
                bound.arguments.update(named)
                booster = original(*bound.args, **bound.kwargs)
                after(booster)
                return booster
            finally:
                common.state.inside = False

        for module in self.modules:
            if getattr(module, self.name, None) is original:
                setattr(module, self.name, train)

    def disable(self) -> None:
        if self.original is None:
            return
        for module in self.modules:
            current = getattr(module, self.name, None)
            if getattr(current, "__wrapped__", None) is self.original:
                setattr(module, self.name, self.original)
        self.original = None
