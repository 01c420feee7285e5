"""Stochasticity and batch dependence: the same row must get the same answer.

The sample is predicted twice; any row whose answer differs is a stochastic model. Then a few
rows are predicted one at a time and compared with their answers inside the batch. These are
observations, not estimates: one differing row is proof, so there is no p-value.
"""

from __future__ import annotations

import numpy as np

from gitmlm.scan.context import Context, same
from gitmlm.scan.findings import Finding

ALONE = 10
TOLERANCE = 1e-6


def _differs(a: np.ndarray, b: np.ndarray, classify: bool) -> np.ndarray:
    if classify or a.dtype.kind not in "iufb":
        return ~same(a, b)
    diff = np.abs(a.astype(float) - b.astype(float))
    return np.asarray(diff > TOLERANCE * (1 + np.abs(b.astype(float))))


def detect(ctx: Context) -> list[Finding]:
    if ctx.predictor is None:
        ctx.notes.append("stochasticity: skipped (only a predictions column)")
        return []
    classify = ctx.task == "classification"
    x = ctx.X.iloc[ctx.sample_rows(2)].reset_index(drop=True)
    first, second = ctx.predictor.predict(x), ctx.predictor.predict(x)
    changed = _differs(first, second, classify)
    if changed.any():
        ctx.stochastic = True
        share = float(changed.mean())
        return [
            Finding(
                "stochasticity",
                "major" if share >= 0.01 else "medium",
                f"predicting the same {len(x):,} rows twice changed {changed.sum():,} answers "
                f"({share:.1%})",
                "",
                "changed answers",
                share,
                0.0,
                share,
                len(x),
            )
        ]
    alone = np.concatenate([ctx.predictor.predict(x.iloc[[i]]) for i in range(min(ALONE, len(x)))])
    moved = _differs(alone, first[: len(alone)], classify)
    if not moved.any():
        return []
    share = float(moved.mean())
    return [
        Finding(
            "batch dependence",
            "major" if classify or share >= 0.1 else "medium",
            f"{moved.sum()} of {len(alone)} rows get another answer alone than inside a batch",
            "",
            "changed answers",
            share,
            0.0,
            share,
            len(alone),
        )
    ]
