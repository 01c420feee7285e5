"""Robustness: how often the model changes its answer when one feature is nudged.

On a sample of rows each feature in turn is perturbed a little — a numeric one by Gaussian
noise of `Options.noise` times its inter-quartile range, a categorical one by swapping each
value for the most frequent other value, a text one by a typo and a change of case — and the
model predicts again. The flip rate is the share of rows whose label changes (regression: whose
prediction moves by more than a tenth of the target's standard deviation). A one-sided binomial
test against `TOLERATED` flips, corrected over the features, decides what is reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from gitmlm.scan import slices
from gitmlm.scan.context import Context, same
from gitmlm.scan.findings import ALPHA, Finding, bh, grade

NAME = "robustness"
TOLERATED = 0.01
FLIPS = (0.03, 0.07, 0.15)
CATEGORY_FLIPS = (0.20, 1.01, 1.01)
"""A swapped category changes what the row says, so flips there are at most minor."""


def detect(ctx: Context) -> list[Finding]:
    if ctx.predictor is None:
        ctx.notes.append("robustness: skipped (only a predictions column, no model to re-run)")
        return []
    if ctx.stochastic:
        ctx.notes.append("robustness: skipped (the model's answers change by themselves)")
        return []
    rows = ctx.sample_rows(1)
    base_x = ctx.X.iloc[rows].reset_index(drop=True)
    base = ctx.predictor.predict(base_x)
    spread = float(np.std(ctx.y.astype(float))) if ctx.task == "regression" else 0.0
    tried = []
    for i, name in enumerate(ctx.X.columns):
        kind, moved = perturb(base_x[name], ctx.X[name], ctx.rng(100 + i), ctx.options.noise)
        if moved is None:
            continue
        x = base_x.copy()
        x[name] = moved
        got = ctx.predictor.predict(x)
        if ctx.task == "classification":
            flipped = ~same(got, base)
        else:
            flipped = np.abs(got.astype(float) - base.astype(float)) > 0.1 * spread
        tried.append((name, kind, int(flipped.sum()), len(rows)))
    if not tried:
        return []
    p = np.array([sps.binom.sf(k - 1, n, TOLERATED) for _, _, k, n in tried])
    q = bh(p)
    out = []
    for (name, kind, k, n), pi, qi in zip(tried, p, q, strict=True):
        rate = k / n
        severity = grade(rate, *(CATEGORY_FLIPS if kind == "category swap" else FLIPS))
        if severity is None or qi >= ALPHA:
            continue
        out.append(
            Finding(
                NAME,
                severity,
                f"a small change of {name} ({kind}) flips {rate:.1%} of predictions",
                name,
                "flip rate",
                rate,
                TOLERATED,
                rate,
                n,
                float(pi),
                float(qi),
                {"perturbation": kind},
            )
        )
    return out


def perturb(
    col: pd.Series, full: pd.Series, rng: np.random.Generator, noise: float
) -> tuple[str, pd.Series | None]:
    if slices.is_text(full):
        return "typo and case", col.map(lambda v: _typo(v, rng) if isinstance(v, str) else v)
    if full.dtype.kind in "iufc" and not slices.is_categorical(full):
        x = col.to_numpy(dtype=float, na_value=np.nan)
        q75, q25 = np.nanpercentile(full.to_numpy(dtype=float, na_value=np.nan), [75, 25])
        scale = (q75 - q25) or float(np.nanstd(full.to_numpy(dtype=float, na_value=np.nan)))
        if not scale:
            return "noise", None
        moved = x + rng.normal(0, 1, len(x)) * scale * noise
        if full.dtype.kind in "iu":
            return "noise", pd.Series(np.round(moved), index=col.index).astype(full.dtype)
        return "noise", pd.Series(moved, index=col.index).astype(full.dtype)
    top = full.value_counts(dropna=True)
    if len(top) < 2:
        return "category swap", None
    first, second = top.index[0], top.index[1]
    return "category swap", col.map(lambda v: second if v == first else first)


def _typo(text: str, rng: np.random.Generator) -> str:
    if len(text) < 4:
        return text.upper()
    i = int(rng.integers(1, len(text) - 2))
    swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return swapped.lower() if rng.random() < 0.5 else swapped.upper()
