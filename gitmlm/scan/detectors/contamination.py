"""Train/test contamination: evaluation rows that also occur in the model's training data.

Rows are compared by a hash of the columns both tables have (the features and the target), so
only exact copies count. Some copies happen by chance when every column takes few values; the
share of evaluation rows repeated within the evaluation data itself is that chance level, and
only the excess over it is graded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gitmlm.scan.context import Context
from gitmlm.scan.findings import Finding, grade

NAME = "contamination"
SHARE = (0.01, 0.05, 0.20)


def row_hashes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return np.asarray(pd.util.hash_pandas_object(df[cols], index=False).to_numpy())


def detect(ctx: Context) -> list[Finding]:
    if not ctx.training:
        ctx.notes.append("contamination: skipped (no training data found; see --train)")
        return []
    cols = [c for c in ctx.frame.columns if all(c in t.columns for t in ctx.training)]
    if not cols:
        ctx.notes.append("contamination: skipped (training data shares no column)")
        return []
    train = np.concatenate([row_hashes(t, cols) for t in ctx.training])
    mine = row_hashes(ctx.frame, cols)
    copied = np.isin(mine, train)
    share = float(copied.mean())
    _, counts = np.unique(mine, return_counts=True)
    chance = float((counts[counts > 1]).sum() / len(mine))
    severity = grade(share - chance, *SHARE)
    if severity is None:
        return []
    message = f"{copied.sum():,} evaluation rows ({share:.1%}) are copies of training rows"
    if ctx.task == "classification" and 0 < copied.sum() < len(copied):
        ok = ctx.correct
        message += (
            f"; accuracy {ok[copied].mean():.3f} on them against {ok[~copied].mean():.3f} "
            "on the others"
        )
    return [
        Finding(
            NAME,
            severity,
            message,
            "",
            "copied rows",
            share,
            chance,
            share - chance,
            int(copied.sum()),
            extra={"columns": cols},
        )
    ]
