"""Performance by slice: a slice whose accuracy (classification) or mean absolute error
(regression) is significantly worse than the rest of the rows, by enough to matter.

Slices are single columns and pairs (`gitmlm.scan.slices`); a pair is only reported when it is
clearly worse than both of its single slices, so one weak region is not repeated many times.
"""

from __future__ import annotations

import numpy as np

from gitmlm.scan import slices
from gitmlm.scan.context import Context, abs_error
from gitmlm.scan.findings import ALPHA, Finding, bh, grade

NAME = "performance"
# Classification: accuracy drop against the whole set, relative to the whole set's accuracy.
ACCURACY_DROP = (0.05, 0.10, 0.20)
# Regression: relative increase of the mean absolute error.
MAE_RISE = (0.2, 0.5, 1.0)
PAIR_MARGIN = 0.10
"""A pair must be this much worse than both its single slices to be reported on its own."""


def detect(ctx: Context) -> list[Finding]:
    cols = slices.crossed(ctx.columns, ctx.options.pairs)
    classify = ctx.task == "classification"
    loss = (~ctx.correct).astype(float) if classify else abs_error(ctx)
    whole = float(loss.mean())
    t = slices.test(cols, loss, ctx.min_support)
    q = bh(t.p)
    effects: dict[str, float] = {}
    for i, label in enumerate(t.labels):
        effects[label] = _effect(classify, float(t.mean[i]), whole)
    out = []
    for i, label in enumerate(t.labels):
        effect = effects[label]
        sure = _effect(classify, float(t.mean[i] - slices.Z_GRADE * t.se[i]), whole)
        severity = grade(sure, *(ACCURACY_DROP if classify else MAE_RISE))
        if severity is None or q[i] >= ALPHA:
            continue
        if t.parents[i] and effect < max(effects.get(p, 0.0) for p in t.parents[i]) + PAIR_MARGIN:
            continue
        if classify:
            value, ref, metric = 1 - float(t.mean[i]), 1 - whole, "accuracy"
            text = f"accuracy {value:.3f} on {label} against {ref:.3f} overall (-{effect:.0%})"
        else:
            value, ref, metric = float(t.mean[i]), whole, "mae"
            text = f"MAE {value:.4g} on {label} against {ref:.4g} overall (+{effect:.0%})"
        out.append(
            Finding(
                NAME,
                severity,
                f"{text} ({t.support[i]} rows)",
                label,
                metric,
                value,
                ref,
                effect,
                int(t.support[i]),
                float(t.p[i]),
                float(q[i]),
            )
        )
    return out


def _effect(classify: bool, loss: float, whole: float) -> float:
    if classify:
        return (loss - whole) / (1 - whole) if whole < 1 else 0.0  # relative accuracy drop
    return loss / whole - 1 if whole > 0 else (np.inf if loss > 0 else 0.0)
