"""What every framework's autologging shares: which run to record into, and values as params."""

from __future__ import annotations

import atexit
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
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
    """The current run, or a new one autologging owns. A training call records into the
    user's run; outside one, each gets its own run (the previous own run ends here): two fits
    of a script never mix their params in one record."""
    active = tracking.current()
    if active is not None and active not in _own:
        return active
    with _lock:
        end_own()
        run = tracking.open_run(tags={"mlm.autolog": framework})
        _own.append(run)
        return run


def run_of(kept: tracking.ActiveRun | None, framework: str) -> tracking.ActiveRun:
    """The run a logger or callback records into: the user's innermost open run; else the own
    run it has been recording into, while that is open; else a new own run. (A logger made
    before the user's `with start_run()` records into that run, not into one of its own.)"""
    active = tracking.current()
    if active is not None and active not in _own:
        return active
    if kept is not None and kept in _own:
        return kept
    return run_for(framework)


_training: set[str] = set()
"""Own runs whose training began and has not ended. A callback sees no exception (Keras and
transformers have no hook for it): such a run that is still training when it is ended (the
process exits, or the next own run starts) failed, with the exception that ended the script."""


def training_began(run: tracking.ActiveRun) -> None:
    if run in _own:
        _training.add(run.id)


def training_ended(run: tracking.ActiveRun) -> None:
    _training.discard(run.id)


def failed(run: tracking.ActiveRun, error: BaseException) -> None:
    """Training raised: an own run ends failed now, with the exception. A run the user opened
    is left to its `with` block, which records the exception as it propagates."""
    _training.discard(run.id)
    with _lock:
        if run not in _own:
            return
        _own.remove(run)
    if run in tracking._active:
        tracking.close_run(run, error)


def end_own() -> None:
    while _own:
        run = _own.pop()
        if tracking.current() is run or run in tracking._active:
            if run.id in _training:
                _training.discard(run.id)
                tracking.close_run(run, _unfinished_error())
            else:
                tracking.close_run(run)


def _unfinished_error() -> BaseException:
    # The exception that ended the script (set when Python printed its traceback), if any.
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if isinstance(error, BaseException):
        return error
    return RuntimeError("training stopped before it ended (no exception reached the script)")


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


def nested_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """param_values, with dicts of text keys kept as tables (a model's config, hparams)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
            out[str(key)] = nested_values(value)
        else:
            out.update(param_values({key: value}))
    return out


MODEL_ERROR_TAG = "mlm.autolog.model_error"


def log_saved(
    run: tracking.ActiveRun, name: str, save: Callable[[Path], None]
) -> dict[str, Any] | None:
    """Let the framework save a model to a temporary path (inside .git/mlm: the disk of the
    object cache), then keep that file or folder as the artifact `name`, streamed from disk.
    A model the framework cannot save does not fail a finished training: the run says why in
    the tag `mlm.autolog.model_error` instead of holding no model without a word."""
    root = run.repo.mlm_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autolog-", dir=root) as tmp:
        target = Path(tmp) / Path(name).name
        try:
            save(target)
            if not target.exists():
                raise FileNotFoundError(f"the framework wrote no {target.name}")
        except Exception as exc:
            run.set_tag(MODEL_ERROR_TAG, f"{name}: {type(exc).__name__}: {exc}"[:500])
            return None
        return run.log_file(target, name)


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric values of a framework's logs (floats, ints, one-element tensors), as
    MLflow's callbacks keep them; text and larger arrays are not metrics."""
    out: dict[str, float] = {}
    for key, value in values.items():
        # a torch tensor counts its elements with numel(), a numpy value with .size
        size = value.numel() if hasattr(value, "numel") else getattr(value, "size", None)
        if size == 1 and hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out
