"""PyTorch Lightning autologging: `GitmlmLogger`, a Lightning `Logger`
(`Trainer(logger=GitmlmLogger())`), records the module's hyperparameters
(`save_hyperparameters()`), the trainer's `epochs` and the optimizer (`optimizer_name` and its
settings, as MLflow's autolog names them), every metric Lightning logs as a step series at the
global step (`train_loss_step`, `val_loss`, `epoch`, …), the trained weights as the artifact
`model/state_dict.pt` and the checkpoint a `ModelCheckpoint` chose as `model/<file>.ckpt`. A fit
that raises ends the run it opened as failed, with the exception. `autolog()` adds the logger
to every `Trainer.fit` that has none.
"""

from __future__ import annotations

import functools
import sys
import weakref
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from gitmlm.autolog import common
from gitmlm.tracking import record as tracking

FRAMEWORK = "lightning"
WEIGHTS = "model/state_dict.pt"
_original_fit: Callable[..., Any] | None = None
_options = {"log_models": True}


class GitmlmLogger(Logger):  # type: ignore[misc]  # Lightning's classes are untyped for mypy
    """Lightning's logger for gitmlm: records into the current run, or opens one (kept open
    after `fit` for a `test` that follows, like scikit-learn's autologging)."""

    def __init__(self, *, log_models: bool | None = None) -> None:
        super().__init__()
        self.log_models = _options["log_models"] if log_models is None else log_models
        self._run: tracking.ActiveRun | None = None
        self._module: weakref.ref[LightningModule] | None = None
        self._checkpoint: Any = None
        self._kept: set[tuple[str, float]] = set()

    @property
    def name(self) -> str:
        return "gitmlm"

    @property
    def version(self) -> str:
        # ModelCheckpoint writes below <default_root_dir>/gitmlm/<run id>/checkpoints
        return self.run.id

    @property
    def run(self) -> tracking.ActiveRun:
        """The run this logger records into (opened at first use)."""
        self._run = common.run_of(self._run, FRAMEWORK)
        return self._run

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kw: Any) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        self.run.log_params(common.nested_values(values))

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        # Called once the trainer has set its optimizers up, before the first step: the only
        # hook that hands a logger the module (and through it the trainer).
        if not isinstance(model, LightningModule):
            return
        self._module = weakref.ref(model)
        trainer = model._trainer
        if trainer is None or trainer.state.fn != "fit":
            return
        common.training_began(self.run)
        params: dict[str, Any] = {"epochs": trainer.max_epochs}
        if trainer.optimizers:
            optimizer = trainer.optimizers[0]
            params["optimizer_name"] = type(optimizer).__name__
            params.update(getattr(optimizer, "defaults", {}))
        self.run.log_params(common.param_values(params))

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = common.numbers(metrics)
        if values:
            self.run.log_metrics(values, step=step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._checkpoint = checkpoint_callback

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        if self._run is None:
            return
        run = self._run
        if status != "success":
            # Lightning calls this from inside its `except` clause, before it re-raises: the
            # exception at hand is the one that stopped training.
            error = sys.exc_info()[1]
            common.failed(run, error or RuntimeError(f"Lightning ended the fit as {status}"))
            return
        module = self._module() if self._module is not None else None
        trainer = module._trainer if module is not None else None
        if module is not None and trainer is not None and trainer.state.fn == "fit":
            if self.log_models and run in tracking._active:
                self._log_model(run, module)
            common.training_ended(run)

    def _log_model(self, run: tracking.ActiveRun, module: LightningModule) -> None:
        import torch

        common.log_saved(run, WEIGHTS, lambda path: torch.save(module.state_dict(), path))
        chosen = getattr(self._checkpoint, "best_model_path", "") or getattr(
            self._checkpoint, "last_model_path", ""
        )
        if chosen and Path(chosen).is_file():
            file = Path(chosen)
            seen = (str(file), file.stat().st_mtime)
            if seen not in self._kept:
                run.log_file(file, f"model/{file.name}")
                self._kept.add(seen)


def autolog(*, log_models: bool = True, disable: bool = False) -> None:
    """Add a GitmlmLogger to every `Trainer.fit` whose trainer has none (or stop doing so)."""
    global _original_fit
    _options["log_models"] = log_models
    if disable:
        if _original_fit is not None:
            Trainer.fit = _original_fit
            _original_fit = None
        return
    if _original_fit is not None:
        return
    original = Trainer.fit
    _original_fit = original

    @functools.wraps(original)
    def fit(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(lg, GitmlmLogger) for lg in self.loggers):
            self.loggers = [*self.loggers, GitmlmLogger()]
        return original(self, *args, **kwargs)

    Trainer.fit = fit
