"""Keras 3 autologging: `GitmlmCallback`, a Keras `Callback` (`model.fit(...,
callbacks=[GitmlmCallback()])`), records the optimizer's config as `opt_*` params (`opt_name`,
`opt_learning_rate`, …, as MLflow's Keras autolog names them) with `epochs` and `steps`, each
epoch's logs (`loss`, `val_loss`, `accuracy`, …) as step series at the epoch, every Nth batch's
as `<name>_step` at the global batch with `log_every_n_steps=N`, and the trained model as the
artifact `model/model.keras` (Keras' own format). `autolog()` adds the callback to every
`Model.fit`, records `fit`'s arguments too, and ends the run it opened as failed, with the
exception, when fit raises. Any backend; the tests use torch's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import keras

from gitmlm.autolog import common
from gitmlm.tracking import record as tracking

FRAMEWORK = "keras"
MODEL = "model/model.keras"
UNLOGGED = frozenset({"self", "x", "y", "callbacks", "validation_data", "verbose", "sample_weight"})
"""fit's arguments that are data or plumbing, not settings (MLflow leaves out the same, and
logs `sample_weight`, a weight per row, as its text; here it is data too)."""
_original_fit: Callable[..., Any] | None = None
_defined_on_model = False
"""Whether keras.Model itself defined fit (with every backend so far, its trainer does)."""
_options = {"log_models": True}


class GitmlmCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped for mypy
    """Records a fit into the current run, or into one it opens (kept open after fit for an
    `evaluate()` that follows, like scikit-learn's autologging)."""

    def __init__(
        self, *, log_every_n_steps: int | None = None, log_models: bool | None = None
    ) -> None:
        super().__init__()
        if log_every_n_steps is not None and log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be 1 or more, not {log_every_n_steps}")
        self.log_every_n_steps = log_every_n_steps
        self.log_models = _options["log_models"] if log_models is None else log_models
        self.run: tracking.ActiveRun | None = None
        self._step = 0

    def _current(self) -> tracking.ActiveRun:
        self.run = common.run_of(self.run, FRAMEWORK)
        return self.run

    def on_train_begin(self, logs: Any = None) -> None:
        run = self._current()
        self._step = 0
        params: dict[str, Any] = {
            k: v for k, v in (self.params or {}).items() if k in ("epochs", "steps")
        }
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "get_config"):
            params.update({f"opt_{k}": v for k, v in optimizer.get_config().items()})
        run.log_params(common.param_values(params))
        common.training_began(run)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        every = self.log_every_n_steps
        if every is not None and logs and self._step % every == 0:
            values = {f"{k}_step": v for k, v in common.numbers(logs).items()}
            self._current().log_metrics(values, step=self._step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        values = common.numbers(logs or {})
        if values:
            self._current().log_metrics(values, step=epoch)

    def on_train_end(self, logs: Any = None) -> None:
        run = self._current()
        if self.log_models and self.model is not None:
            common.log_saved(run, MODEL, lambda path: self.model.save(path))
        common.training_ended(run)


def autolog(
    *, log_models: bool = True, disable: bool = False, log_every_n_steps: int | None = None
) -> None:
    """Add a GitmlmCallback to every `Model.fit` that has none (or stop doing so)."""
    global _original_fit, _defined_on_model
    _options["log_models"] = log_models
    if disable:
        if _original_fit is not None:
            if _defined_on_model:
                keras.Model.fit = _original_fit
            else:  # the backend's trainer defines it: Model only shadowed it
                del keras.Model.fit
            _original_fit = None
        return
    if _original_fit is not None:
        return
    original = keras.Model.fit
    _original_fit = original
    _defined_on_model = "fit" in keras.Model.__dict__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        callbacks = list(kwargs.pop("callbacks", None) or [])
        ours = next((c for c in callbacks if isinstance(c, GitmlmCallback)), None)
        if ours is None:
            ours = GitmlmCallback(log_every_n_steps=log_every_n_steps)
            callbacks.append(ours)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        settings = {k: v for k, v in bound.arguments.items() if k not in UNLOGGED}
        ours._current().log_params(common.param_values(settings))
        try:
            return original(self, *args, callbacks=callbacks, **kwargs)
        except BaseException as exc:
            if ours.run is not None:
                common.failed(ours.run, exc)
            raise

    keras.Model.fit = fit
