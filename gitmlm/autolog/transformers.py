"""Hugging Face transformers autologging: `GitmlmCallback`, a `TrainerCallback`
(`Trainer(..., callbacks=[GitmlmCallback()])`), records the model's config and the
`TrainingArguments` as params (the arguments win a clash, as in transformers' own MLflow
callback), everything the Trainer logs (`loss`, `grad_norm`, `learning_rate`, `eval_loss`,
`epoch`, …) as step series at the global step, and the trained model as the folder artifact
`model/` (`save_pretrained`: config and safetensors weights, the tokenizer or processor too).
`autolog()` adds the callback to every `Trainer.train` and ends the run it opened as failed,
with the exception, when training raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from gitmlm.autolog import common
from gitmlm.tracking import record as tracking

FRAMEWORK = "transformers"
MODEL = "model"
_original_train: Callable[..., Any] | None = None
_options = {"log_models": True}


class GitmlmCallback(TrainerCallback):  # type: ignore[misc]  # transformers is untyped for mypy
    """Records a Trainer's training into the current run, or into one it opens (kept open
    after training for an `evaluate()` that follows, like scikit-learn's autologging)."""

    def __init__(self, *, log_models: bool | None = None) -> None:
        self.log_models = _options["log_models"] if log_models is None else log_models
        self.run: tracking.ActiveRun | None = None

    def _current(self) -> tracking.ActiveRun:
        self.run = common.run_of(self.run, FRAMEWORK)
        return self.run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return
        run = self._current()
        model = kw.get("model")
        config = getattr(model, "config", None)
        params = {**(config.to_dict() if config is not None else {}), **args.to_dict()}
        run.log_params(common.nested_values(params))
        common.training_began(run)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = common.numbers(logs)
        if values:
            self._current().log_metrics(values, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return
        run = self._current()
        model = kw.get("model")
        if self.log_models and model is not None:
            processor = kw.get("processing_class")
            common.log_saved(run, MODEL, lambda path: _save(model, processor, path))
        common.training_ended(run)


def _save(model: Any, processor: Any, path: Path) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(path)
    else:  # a plain torch module given to the Trainer
        import torch

        path.mkdir()
        torch.save(model.state_dict(), path / "state_dict.pt")
    if processor is not None and hasattr(processor, "save_pretrained"):
        processor.save_pretrained(path)


def autolog(*, log_models: bool = True, disable: bool = False) -> None:
    """Add a GitmlmCallback to every `Trainer.train` that has none (or stop doing so)."""
    global _original_train
    _options["log_models"] = log_models
    if disable:
        if _original_train is not None:
            Trainer.train = _original_train
            _original_train = None
        return
    if _original_train is not None:
        return
    original = Trainer.train
    _original_train = original

    @functools.wraps(original)
    def train(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        handler = self.callback_handler
        ours = next((c for c in handler.callbacks if isinstance(c, GitmlmCallback)), None)
        if ours is None:
            ours = GitmlmCallback()
            self.add_callback(ours)
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            if ours.run is not None:
                common.failed(ours.run, exc)
            raise

    Trainer.train = train
