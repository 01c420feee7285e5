"""Shortcut features: a slice whose link with the prediction is much stronger than its link
with the label — the model answers from the slice rather than from what decides the outcome.

For a class c (the positive class of a binary task; each class of a multi-class one) the link of
slice s with the prediction is P(pred = c | s) − P(pred = c | rest), and with the label
P(y = c | s) − P(y = c | rest); the effect is the first's size minus the second's. Regression
compares the slice's shift in mean prediction with its shift in mean target, in units of the
target's standard deviation. The test is the two-sided z-test, slice against rest, of
1[pred = c] − 1[y = c] (regression: pred − y).
"""

from __future__ import annotations

import numpy as np

from gitmlm.scan import slices
from gitmlm.scan.context import Context, same
from gitmlm.scan.findings import ALPHA, Finding, bh, grade

NAME = "shortcut"
EXCESS = (0.10, 0.20, 0.30)
MAX_CLASSES = 10


def detect(ctx: Context) -> list[Finding]:
    cols = ctx.columns
    tests = []
    if ctx.task == "classification":
        classes = list(ctx.classes or np.unique(ctx.y.astype(str)))
        chosen = classes[1:2] if len(classes) == 2 else classes[:MAX_CLASSES]
        for c in chosen:
            # The predicted probability where there is one: a hard label exaggerates every
            # link (it rounds 0.6 to 1), which would make every useful feature look like one.
            by_pred = (
                ctx.proba[:, classes.index(c)]
                if ctx.proba is not None
                else same(ctx.pred, np.full(len(ctx.y), c)).astype(float)
            )
            by_label = same(ctx.y, np.full(len(ctx.y), c)).astype(float)
            tests.append((f"class {c}", by_pred, by_label))
    else:
        sd = float(np.std(ctx.y.astype(float))) or 1.0
        tests.append(("", ctx.pred.astype(float) / sd, ctx.y.astype(float) / sd))
    rows = []
    for what, by_pred, by_label in tests:
        t = slices.test(cols, by_pred - by_label, ctx.min_support, two_sided=True)
        tp = slices.test(cols, by_pred, ctx.min_support)
        tl = slices.test(cols, by_label, ctx.min_support)
        for i in range(len(t.labels)):
            link_pred = float(tp.mean[i] - tp.rest[i])
            link_label = float(tl.mean[i] - tl.rest[i])
            rows.append(
                (what, t.labels[i], link_pred, link_label, int(t.support[i]), t.p[i], t.se[i])
            )
    if not rows:
        return []
    q = bh([r[5] for r in rows])
    out = []
    for (what, label, lp, ll, n, p, se), qi in zip(rows, q, strict=True):
        effect = abs(lp) - abs(ll)
        severity = grade(effect - slices.Z_GRADE * float(se), *EXCESS)
        if severity is None or qi >= ALPHA:
            continue
        unit = f"P({what[6:]}) " if what else "mean, in target SDs, "
        out.append(
            Finding(
                NAME,
                severity,
                f"{label} moves the predicted {unit}by {lp:+.3f} but the true one by {ll:+.3f}",
                label,
                f"link with prediction ({what})" if what else "link with prediction",
                lp,
                ll,
                effect,
                n,
                float(p),
                float(qi),
            )
        )
    return out
