"""Overfitting: the model is much better on its training data than on the evaluation data.

The training metric is measured by predicting the training data when it is available (up to
`SAMPLE` rows), else taken from the run's record (`train_accuracy`, `train_mae`, ...). The gap
is tested with a two-proportion z-test (accuracy) or Welch's test on absolute errors (MAE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from gitmlm.scan.context import Context, abs_error, same
from gitmlm.scan.findings import ALPHA, Finding, grade

NAME = "overfitting"
SAMPLE = 20_000
ACCURACY_GAP = (0.05, 0.10, 0.20)
MAE_RATIO = (0.25, 0.5, 1.0)
RECORDED = {
    "classification": ("train_accuracy", "train_acc", "accuracy_train", "acc_train"),
    "regression": ("train_mae", "mae_train"),
}


def detect(ctx: Context) -> list[Finding]:
    classify = ctx.task == "classification"
    eval_loss = (~ctx.correct).astype(float) if classify else abs_error(ctx)
    train_loss = _training_loss(ctx, classify)
    if train_loss is not None:
        n_t = train_loss.size
        t_mean = float(train_loss.mean())
        source = f"measured on {n_t:,} training rows"
        se = np.sqrt(eval_loss.var() / eval_loss.size + train_loss.var() / n_t)
    else:
        recorded = _recorded(ctx, classify)
        if recorded is None:
            ctx.notes.append(
                "overfitting: skipped (no training data and no recorded training metric)"
            )
            return []
        name, t_mean = recorded
        t_mean = 1 - t_mean if classify else t_mean
        n_t = 0
        source = f"recorded by the run as {name}"
        se = np.sqrt(eval_loss.var() / eval_loss.size)
    e_mean = float(eval_loss.mean())
    diff = e_mean - t_mean
    p = float(sps.norm.sf(diff / se)) if se > 0 else (0.0 if diff > 0 else 1.0)
    if classify:
        effect = diff
        severity = grade(effect, *ACCURACY_GAP)
        metric, value, ref = "accuracy", 1 - e_mean, 1 - t_mean
        text = f"accuracy {ref:.3f} on training data ({source}) against {value:.3f} here"
    else:
        effect = e_mean / t_mean - 1 if t_mean > 0 else (np.inf if e_mean > 0 else 0.0)
        severity = grade(effect, *MAE_RATIO)
        metric, value, ref = "mae", e_mean, t_mean
        text = f"MAE {ref:.4g} on training data ({source}) against {value:.4g} here"
    if severity is None or p >= ALPHA:
        return []
    return [Finding(NAME, severity, text, "", metric, value, ref, effect, n_t, p, p)]


def _training_loss(ctx: Context, classify: bool) -> np.ndarray | None:
    if not ctx.training or ctx.predictor is None:
        return None
    target = ctx.target
    frames = [t for t in ctx.training if target in t.columns]
    if not frames:
        return None
    train = pd.concat(frames, ignore_index=True)
    missing = [c for c in ctx.X.columns if c not in train.columns]
    if missing:
        ctx.notes.append(f"overfitting: training data lacks {', '.join(missing[:5])}")
        return None
    if len(train) > SAMPLE:
        train = train.sample(SAMPLE, random_state=ctx.options.seed)
    got = ctx.predictor.predict(train[list(ctx.X.columns)])
    y = train[target].to_numpy()
    if classify:
        return np.asarray(~same(got, y), dtype=float)
    return np.asarray(np.abs(got.astype(float) - y.astype(float)))


def _recorded(ctx: Context, classify: bool) -> tuple[str, float] | None:
    for name in RECORDED["classification" if classify else "regression"]:
        value = ctx.run_metrics.get(name)
        if isinstance(value, int | float) and np.isfinite(value):
            return name, float(value)
    return None
