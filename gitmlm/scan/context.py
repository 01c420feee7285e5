"""What every detector reads: the data, the model's answers on it, and the scan's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gitmlm.scan.loading import Predictor
from gitmlm.scan.slices import Column


@dataclass
class Options:
    seed: int = 0
    min_support: int = 0
    """Smallest slice tested; 0: max(20, 1% of the rows)."""
    pairs: bool = True
    sample: int = 1000
    """Rows re-predicted by robustness and stochasticity."""
    noise: float = 0.01
    """Numeric perturbation: this share of the feature's spread (inter-quartile range)."""
    sensitive: list[str] = field(default_factory=list)
    detectors: list[str] | None = None
    """Only these detectors (None: all)."""


@dataclass
class Context:
    frame: pd.DataFrame
    """The evaluation rows (every column)."""
    X: pd.DataFrame
    """The model's input columns, in its order."""
    target: str
    y: np.ndarray
    pred: np.ndarray
    task: str
    """"classification" or "regression"."""
    options: Options
    columns: list[Column]
    """Single-column slices (features and sensitive columns)."""
    proba: np.ndarray | None = None
    classes: list[Any] | None = None
    predictor: Predictor | None = None
    """None when only a predictions column was given: nothing is re-predicted."""
    training: list[pd.DataFrame] = field(default_factory=list)
    run_metrics: dict[str, float] = field(default_factory=dict)
    stochastic: bool = False
    """Set by the stochasticity detector: answers that change by themselves make perturbation
    tests meaningless."""
    notes: list[str] = field(default_factory=list)
    """What was skipped and why: shown with the report."""

    @property
    def min_support(self) -> int:
        return self.options.min_support or max(20, len(self.y) // 100)

    @property
    def correct(self) -> np.ndarray:
        return same(self.pred, self.y)

    @property
    def confidence(self) -> np.ndarray | None:
        return None if self.proba is None else self.proba.max(axis=1)

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.options.seed, salt])

    def sample_rows(self, salt: int) -> np.ndarray:
        n = len(self.y)
        if n <= self.options.sample:
            return np.arange(n)
        return np.sort(self.rng(salt).choice(n, self.options.sample, replace=False))


def same(a: Any, b: Any) -> np.ndarray:
    """Element-wise label equality that does not care whether 1 came as int, float or str."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iufb" and b.dtype.kind in "iufb":
        return np.asarray(a == b)
    return np.asarray(a.astype(str) == b.astype(str))


def abs_error(ctx: Context) -> np.ndarray:
    return np.asarray(np.abs(ctx.pred.astype(float) - ctx.y.astype(float)))
