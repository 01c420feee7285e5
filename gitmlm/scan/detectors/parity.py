"""Parity across sensitive columns (`[scan] sensitive = ["gender"]` or --sensitive).

For each group of a sensitive column, classification compares the rate of the positive answer
(the second of two classes, or the most frequent one) in the group with the rest: the ratio of
the smaller to the larger is the disparate impact, 1 when equal ("four-fifths rule": below 0.8
is a concern). Regression compares the mean prediction, in units of the target's standard
deviation. Two-proportion (or pooled z) tests, corrected over all groups.
"""

from __future__ import annotations

import numpy as np

from gitmlm.scan import slices
from gitmlm.scan.context import Context, same
from gitmlm.scan.findings import ALPHA, Finding, bh, grade

NAME = "parity"
IMPACT = (0.10, 0.20, 0.40)
"""1 - disparate impact ratio: 0.9, 0.8 and 0.6 are the limits."""
SHIFT = (0.10, 0.25, 0.50)


def detect(ctx: Context) -> list[Finding]:
    wanted = [c for c in ctx.columns if c.name in ctx.options.sensitive]
    if not wanted:
        return []
    if ctx.task == "classification":
        classes = list(ctx.classes or np.unique(ctx.y.astype(str)))
        positive = classes[1] if len(classes) == 2 else _most_frequent(ctx.pred)
        v = same(ctx.pred, np.full(len(ctx.pred), positive)).astype(float)
    else:
        sd = float(np.std(ctx.y.astype(float))) or 1.0
        v = ctx.pred.astype(float) / sd
        positive = None
    t = slices.test(wanted, v, ctx.min_support, two_sided=True)
    q = bh(t.p)
    out = []
    for i, label in enumerate(t.labels):
        m, r = float(t.mean[i]), float(t.rest[i])
        if positive is not None:
            ratio = min(m, r) / max(m, r) if max(m, r) > 0 else 1.0
            effect = 1 - ratio
            sure = max(abs(m - r) - slices.Z_GRADE * float(t.se[i]), 0.0)
            severity = grade(sure / max(m, r) if max(m, r) > 0 else 0.0, *IMPACT)
            text = (
                f"{label} gets {positive!s} {m:.1%} of the time against {r:.1%} for the rest "
                f"(disparate impact {ratio:.2f})"
            )
            metric, value, ref = f"rate of {positive}", m, r
        else:
            effect = abs(m - r)
            severity = grade(effect - slices.Z_GRADE * float(t.se[i]), *SHIFT)
            text = f"mean prediction on {label} differs from the rest by {m - r:+.2f} target SDs"
            metric, value, ref = "mean prediction (SDs)", m, r
        if severity is None or q[i] >= ALPHA:
            continue
        out.append(
            Finding(
                NAME,
                severity,
                text,
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


def _most_frequent(pred: np.ndarray) -> object:
    values, counts = np.unique(pred.astype(str), return_counts=True)
    return values[int(np.argmax(counts))]
