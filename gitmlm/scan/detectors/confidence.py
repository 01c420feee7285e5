"""Over- and under-confidence by slice, and calibration of the whole set (ECE, Brier).

Per row the gap is the model's confidence (its top class probability) minus whether it was
right. On a slice where the model is confidently wrong the mean gap is large and positive
(overconfidence); where it is right more often than it claims, negative (underconfidence).
Calibration bins the confidence in ten bins and tests each bin's accuracy against its mean
confidence; ECE is the support-weighted mean gap.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from gitmlm.scan import slices
from gitmlm.scan.context import Context, same
from gitmlm.scan.findings import ALPHA, Finding, bh, grade

GAP = (0.10, 0.20, 0.30)
"""Mean confidence gap on a slice (and its excess over the whole set's)."""
ECE = (0.05, 0.10, 0.20)
BINS = 10


def detect(ctx: Context) -> list[Finding]:
    conf = ctx.confidence
    if conf is None or ctx.task != "classification":
        return []
    gap = conf - ctx.correct.astype(float)
    whole = float(gap.mean())
    out = []
    for name, v, sign in (("overconfidence", gap, 1.0), ("underconfidence", -gap, -1.0)):
        t = slices.test(slices.crossed(ctx.columns, ctx.options.pairs), v, ctx.min_support)
        q = bh(t.p)
        for i, label in enumerate(t.labels):
            effect = float(t.mean[i])  # mean gap on the slice, in the detector's direction
            sure = effect - slices.Z_GRADE * float(t.se[i])
            severity = grade(min(sure, sure - sign * whole), *GAP)
            if severity is None or q[i] >= ALPHA or t.parents[i]:
                continue
            value = sign * effect
            word = "confident" if sign > 0 else "unsure"
            out.append(
                Finding(
                    name,
                    severity,
                    f"on {label} the model is more {word} than right: mean confidence minus "
                    f"accuracy {value:+.3f} ({t.support[i]} rows)",
                    label,
                    "confidence gap",
                    value,
                    whole,
                    effect,
                    int(t.support[i]),
                    float(t.p[i]),
                    float(q[i]),
                )
            )
    cal = calibration(ctx, conf)
    if cal is not None:
        out.append(cal)
    return out


def calibration(ctx: Context, conf: np.ndarray) -> Finding | None:
    correct = ctx.correct.astype(float)
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, BINS - 1)
    n = np.bincount(which, minlength=BINS).astype(float)
    acc = np.bincount(which, weights=correct, minlength=BINS)
    cf = np.bincount(which, weights=conf, minlength=BINS)
    used = n >= 10
    acc, cf, n = acc[used] / n[used], cf[used] / n[used], n[used]
    ece = float((np.abs(acc - cf) * n).sum() / n.sum()) if n.size else 0.0
    se = np.sqrt(np.clip(cf * (1 - cf), 1e-4, None) / n)
    p = 2 * sps.norm.sf(np.abs(acc - cf) / se)
    q = bh(p)
    severity = grade(ece, *ECE)
    if severity is None or not n.size or q.min() >= ALPHA:
        return None
    brier = brier_score(ctx)
    return Finding(
        "calibration",
        severity,
        f"expected calibration error {ece:.3f} (Brier {brier:.3f}): confidence does not match "
        "accuracy",
        "",
        "ece",
        ece,
        0.0,
        ece,
        len(conf),
        float(p[np.argmin(q)]),
        float(q.min()),
        {"brier": brier},
    )


def brier_score(ctx: Context) -> float:
    assert ctx.proba is not None and ctx.classes is not None
    onehot = np.stack([same(ctx.y, np.full(len(ctx.y), c)) for c in ctx.classes], axis=1)
    return float(((ctx.proba - onehot) ** 2).sum(axis=1).mean())
