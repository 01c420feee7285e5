"""What every framework's autologging shares: which run to record into, and values as params."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from typing import Any

from gitmlm.tracking import record as tracking

_lock = threading.Lock()
state = threading.local()
"""`state.inside` is true during a recorded training call, in every framework: a search over
XGBoost estimators, or a Pipeline's steps, are part of the outer call's record."""
_own: list[tracking.ActiveRun] = []
"""A run autologging started itself (no run was open): kept open after `fit` so that scores
computed next land in it too; ended when the next one starts or the process exits."""


def run_for(framework: str) -> tracking.ActiveRun:
    """The current run, or a new one autologging owns."""
    active = tracking.current()
    if active is not None:
        return active
    with _lock:
        end_own()
        run = tracking.open_run(tags={"mlm.autolog": framework})
        _own.append(run)
        return run


def end_own() -> None:
    while _own:
        run = _own.pop()
        if tracking.current() is run or run in tracking._active:
            tracking.close_run(run)


atexit.register(end_own)


def param_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars as they are; anything else (None, estimators, arrays) as its text, as MLflow."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)):
            out[str(key)] = value
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            out[str(key)] = value.item()
        else:
            text = repr(value) if not isinstance(value, type(None)) else "None"
            out[str(key)] = text if len(text) <= 500 else text[:497] + "..."
    return out
