"""Model quality and latency per time window, from a table of logged predictions and outcomes.

Windows are pandas time groupings (``"1h"``, ``"1d"``, ``"7d"``): each row is one window that
has data, labelled by its start; without a window the whole table is one row labelled ``"all"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.offsets import BaseOffset

from gitmlm.errors import MlmError

SLO_KEYS = ("p50", "p95", "p99")
# Integer labels with at most this many values (and integer predictions) are classes, not amounts.
MAX_CLASSES = 20


def window_quality(
    df: pd.DataFrame,
    labels: str,
    prediction: str,
    time: str | None = None,
    window: str | None = None,
    task: str | None = None,
) -> list[dict[str, object]]:
    """Quality per window: accuracy, F1 and AUC (binary) for classification; MAE, RMSE, bias.

    `task` is "classification" or "regression"; None infers it: booleans, text, categories and
    integer labels with integer predictions and at most 20 distinct labels are classification.
    For binary labels the positive class is 1/True, else the last label in sorted order. A
    numeric prediction in [0, 1] that is not itself a label is a score: AUC uses it, and accuracy
    and F1 threshold it at 0.5. Multiclass F1 is the macro average; rows missing the label or the
    prediction are left out (counted in `dropped`).
    """
    _need(df, [labels, prediction, *([time] if time else [])])
    task = task or _infer_task(df[labels], df[prediction])
    if task not in {"classification", "regression"}:
        raise MlmError(f"task must be 'classification' or 'regression', not {task!r}")
    classes: list[Any] = []
    if task == "classification":
        classes = sorted(df[labels].dropna().unique().tolist(), key=_sort_key)
    rows: list[dict[str, object]] = []
    for label, part in _windows(df, time, window):
        y = part[labels]
        p = part[prediction]
        ok = y.notna() & p.notna()
        row: dict[str, object] = {"window": label, "n": int(ok.sum()), "dropped": int((~ok).sum())}
        y, p = y[ok], p[ok]
        if task == "regression":
            row.update(_regression(y, p))
        else:
            row.update(_classification(y, p, classes))
        rows.append(row)
    return rows


def window_latency(
    df: pd.DataFrame,
    latency: str,
    time: str | None = None,
    window: str | None = None,
    slo: Mapping[str, float] | None = None,
) -> list[dict[str, object]]:
    """p50/p95/p99 of `latency` per window; `slo_breached` when any given SLO is exceeded.

    `slo` maps "p50", "p95" or "p99" to the highest acceptable value, in the column's unit.
    """
    _need(df, [latency, *([time] if time else [])])
    if not pd.api.types.is_numeric_dtype(df[latency]) or pd.api.types.is_bool_dtype(df[latency]):
        raise MlmError(f"latency column {latency!r} is not numeric")
    limits = dict(slo or {})
    unknown = [k for k in limits if k not in SLO_KEYS]
    if unknown:
        raise MlmError(f"unknown SLO {', '.join(unknown)} (known: {', '.join(SLO_KEYS)})")
    rows: list[dict[str, object]] = []
    for label, part in _windows(df, time, window):
        values = part[latency].dropna().to_numpy(dtype=np.float64)
        row: dict[str, object] = {"window": label, "n": int(values.size)}
        if values.size:
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            stats = {"p50": float(p50), "p95": float(p95), "p99": float(p99)}
        else:
            stats = {}
        row.update(stats)
        breaches = [k for k, limit in limits.items() if k in stats and stats[k] > limit]
        row["slo_breached"] = bool(breaches)
        row["breaches"] = breaches
        rows.append(row)
    return rows


def _need(df: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns))
        raise MlmError(f"no column {', '.join(map(repr, missing))} (has: {have})")


def _windows(
    df: pd.DataFrame, time: str | None, window: str | None
) -> Iterator[tuple[str, pd.DataFrame]]:
    if window is None:
        yield "all", df
        return
    if time is None:
        raise MlmError("a window needs a time column")
    try:
        ts = pd.to_datetime(df[time])
    except (ValueError, TypeError) as e:
        raise MlmError(f"column {time!r} does not hold times: {e}") from e
    freq = _offset(window)
    frame = df.assign(**{time: ts})
    for start, part in frame.groupby(pd.Grouper(key=time, freq=freq), sort=True):
        if len(part):
            yield pd.Timestamp(start).isoformat(), part  # type: ignore[arg-type]


def _offset(window: str) -> BaseOffset:
    m = re.fullmatch(r"\s*(\d*)\s*([A-Za-z]+)\s*", window)
    if m is None:
        raise MlmError(f"bad window {window!r}: use e.g. 15min, 1h, 1d or 7d")
    count, unit = m.groups()
    # pandas deprecated 'd' and dropped 'H'; users write both.
    unit = {"d": "D", "H": "h", "w": "W", "day": "D", "days": "D", "hour": "h"}.get(unit, unit)
    try:
        offset = pd.tseries.frequencies.to_offset(f"{count}{unit}")
    except ValueError as e:
        raise MlmError(f"bad window {window!r}: use e.g. 15min, 1h, 1d or 7d") from e
    return offset


def _sort_key(v: object) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float | np.number) else (1, str(v))


def _infer_task(y: pd.Series[Any], p: pd.Series[Any]) -> str:
    dt = y.dtype
    if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt):
        return "classification"
    if pd.api.types.is_integer_dtype(dt) or _integral(y):
        distinct = y.nunique()
        if distinct <= 2:
            return "classification"
        if distinct <= MAX_CLASSES and (pd.api.types.is_integer_dtype(p.dtype) or _integral(p)):
            return "classification"
    return "regression"


def _integral(s: pd.Series[Any]) -> bool:
    values = s.dropna().to_numpy()
    if not pd.api.types.is_numeric_dtype(s.dtype) or values.size == 0:
        return False
    return bool(np.all(np.mod(values.astype(np.float64), 1) == 0))


def _regression(y: pd.Series[Any], p: pd.Series[Any]) -> dict[str, object]:
    if not len(y):
        return {"mae": None, "rmse": None, "bias": None}
    err = p.to_numpy(dtype=np.float64) - y.to_numpy(dtype=np.float64)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
    }


def _positive(classes: list[Any]) -> Any:
    if set(classes) <= {0, 1} and 1 in classes:
        return classes[classes.index(1)]
    return classes[-1]


def _classification(y: pd.Series[Any], p: pd.Series[Any], classes: list[Any]) -> dict[str, object]:
    out: dict[str, object] = {"accuracy": None, "f1": None, "auc": None}
    if not len(y):
        return out
    yv = y.to_numpy()
    pv = p.to_numpy()
    scores: npt.NDArray[np.float64] | None = None
    if len(classes) <= 2 and classes:
        positive = _positive(classes)
        negative = next((c for c in classes if c != positive), None)
        is_score = (
            pd.api.types.is_float_dtype(p.dtype)
            and not set(np.unique(pv).tolist()) <= set(classes)
            and float(np.min(pv)) >= 0.0
            and float(np.max(pv)) <= 1.0
        )
        if is_score:
            scores = pv.astype(np.float64)
            pv = np.full(scores.size, negative, dtype=object)
            pv[scores >= 0.5] = positive
        truth = yv == positive
        hit = pv == positive
        if scores is None:
            scores = hit.astype(np.float64)
        out["accuracy"] = float(np.mean(pv == yv))
        out["f1"] = _f1(truth, hit)
        out["auc"] = auc(truth, scores)
    else:
        out["accuracy"] = float(np.mean(pv == yv))
        out["f1"] = float(np.mean([_f1(yv == c, pv == c) for c in classes]))
    return out


def _f1(truth: npt.NDArray[np.bool_], hit: npt.NDArray[np.bool_]) -> float:
    tp = int(np.sum(truth & hit))
    denom = int(np.sum(truth)) + int(np.sum(hit))
    return 2 * tp / denom if denom else 0.0


def auc(truth: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann–Whitney) form; ties get average ranks."""
    n_pos = int(np.sum(truth))
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    unique = np.unique(scores, return_inverse=True, return_counts=True)
    inverse, counts = unique[1], unique[2]
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return float((np.sum(ranks[truth]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
