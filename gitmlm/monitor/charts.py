"""What the monitor's charts draw, as plain data (lists of numbers and labels, JSON-ready).

The ui draws them with plotly.js (gitmlm/ui/static/ui.js): `git mlm monitor --html`, the ui's
Monitor pages and `git mlm report` all take their chart data from here, so there is one home for
what a chart shows. Each feature's chart compares the two profiles (no raw training data is
needed): numeric features as densities on the training bins (the frozen edges), categorical ones
as shares per category. Windows (quality, latency) are series per metric with their reference
lines: the run's training metric, the SLO.
"""

from __future__ import annotations

import math
from typing import Any

from gitmlm.monitor.monitor import Observation, Result, day
from gitmlm.monitor.report import QUALITY_METRICS
from gitmlm.stats.profile import CategoricalColumn, Column, NumericColumn

MAX_CATEGORIES = 15
LATENCY = ("p50", "p95", "p99")
HISTORY_SCORES = ("psi", "js", "null_rate_now", "out_of_range", "unseen_share")
"""The per-feature scores drawn over time from recorded observations."""


def result_charts(result: Result) -> dict[str, Any]:
    """Every chart of one observation: a chart per feature (flagged first), quality and latency
    per window."""
    features = []
    for f in sorted(result.report.features, key=lambda f: f.status == "ok"):
        chart = feature_chart(
            f.feature,
            f.status,
            f.psi,
            result.reference.columns.get(f.feature),
            result.serving.columns.get(f.feature),
        )
        if chart is not None:
            features.append(chart)
    return {
        "features": features,
        "quality": windows(result.quality, QUALITY_METRICS),
        "latency": windows(result.latency, LATENCY),
        "training": dict(result.training),
        "slo": dict(result.slo),
    }


def history_charts(seen: list[Observation], slo: dict[str, float]) -> dict[str, Any]:
    """Recorded observations over time: per feature its scores per observation, and quality and
    latency per window (a later observation of a window replaces an earlier one)."""
    features: dict[str, dict[str, list[Any]]] = {}
    for o in seen:
        for feature, entry in o.doc.get("features", {}).items():
            series = features.setdefault(feature, {"x": [], **{k: [] for k in HISTORY_SCORES}})
            series["x"].append(o.observed)
            for key in HISTORY_SCORES:
                series[key].append(_number(entry.get(key)))
    return {
        "history": {
            f: {
                "x": s["x"],
                "scores": {k: s[k] for k in HISTORY_SCORES if any(v is not None for v in s[k])},
            }
            for f, s in sorted(features.items())
        },
        "quality": windows(_by_window(seen, "quality"), QUALITY_METRICS),
        "latency": windows(_by_window(seen, "latency"), LATENCY),
        "training": {},
        "slo": dict(slo),
    }


def _by_window(seen: list[Observation], key: str) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for o in seen:
        for row in o.doc.get(key, []):
            rows[str(row.get("window", o.observed))] = {
                **row,
                "window": row.get("window", o.observed),
            }
    return [rows[w] for w in sorted(rows)]


def windows(
    rows: list[dict[str, Any]], metrics: tuple[str, ...]
) -> dict[str, dict[str, list[Any]]]:
    """Metric -> {"x": window, "y": value} for the metrics any row has (a gap where one lacks it);
    a metric a window breached is listed in "breached"."""
    out: dict[str, dict[str, list[Any]]] = {}
    for metric in metrics:
        if not any(_number(r.get(metric)) is not None for r in rows):
            continue
        out[metric] = {
            "x": [day(r["window"]) for r in rows],
            "y": [_number(r.get(metric)) for r in rows],
            "breached": [metric in r.get("breaches", []) for r in rows],
        }
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def feature_chart(
    name: str, status: str, psi: float | None, ref: Column | None, now: Column | None
) -> dict[str, Any] | None:
    """One feature's training-vs-serving chart; None when neither side has the column."""
    if ref is None and now is None:
        return None
    head = {"feature": name, "status": status, "psi": _number(psi)}
    if isinstance(ref, NumericColumn) and isinstance(now, NumericColumn | None):
        return {**head, **_numeric(ref, now)}
    if isinstance(ref, CategoricalColumn) and isinstance(now, CategoricalColumn | None):
        return {**head, **_categorical(ref, now)}
    return {**head, "kind": "note", "note": _mismatch(ref, now)}


def _mismatch(ref: Column | None, now: Column | None) -> str:
    if ref is None:
        return "not in the training data"
    if now is None:
        return "missing from the serving data"
    return f"kind changed: {ref.kind} ({ref.dtype}) → {now.kind} ({now.dtype})"


def _numeric(ref: NumericColumn, now: NumericColumn | None) -> dict[str, Any]:
    import numpy as np

    edges = np.array(ref.edges, dtype=np.float64)
    if edges.size < 2 or ref.finite == 0:
        return {"kind": "note", "note": "no finite training values"}
    if edges[-1] == edges[0]:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])  # one value: draw it as a unit bin
    widths = np.diff(edges)
    out: dict[str, Any] = {
        "kind": "numeric",
        "edges": edges.tolist(),
        "training": (np.array(ref.counts, dtype=np.float64) / ref.finite / widths).tolist(),
        "serving": None,
        "note": "",
    }
    if now is not None and now.finite:
        if now.edges == ref.edges:
            counts = np.array(now.counts, dtype=np.float64)
            under, over = float(now.under), float(now.over)
        else:
            counts, under, over = _rebinned(now, ref.edges)
        out["serving"] = (counts / now.finite / widths).tolist()
        if under or over:
            out["note"] = (
                f"serving outside the bins: {under / now.finite:.2%} below, "
                f"{over / now.finite:.2%} above"
            )
    return out


def _rebinned(now: NumericColumn, edges: list[float]) -> tuple[Any, float, float]:
    """Serving counts on other edges, read off its quantiles (as `drift` estimates them)."""
    import numpy as np

    points = np.array([now.min, *now.quantiles, now.max], dtype=np.float64)
    grid = np.concatenate([[0.0], np.arange(1, 100) / 100.0, [1.0]])
    cdf = np.interp(np.array(edges, dtype=np.float64), points, grid, left=0.0, right=1.0)
    inner = np.diff(cdf) * now.finite
    return inner, float(cdf[0] * now.finite), float((1.0 - cdf[-1]) * now.finite)


def _categorical(ref: CategoricalColumn, now: CategoricalColumn | None) -> dict[str, Any]:
    keys = list(ref.top)[:MAX_CATEGORIES]
    new = [k for k in (now.top if now is not None else {}) if k not in ref.top]
    keys += new[: max(0, MAX_CATEGORIES + 3 - len(keys))]
    ref_total = max(ref.nonnull, 1)
    ref_shares = [ref.top.get(k, 0) / ref_total for k in keys]
    labels = list(keys)
    if ref.other or (now is not None and now.nonnull - sum(now.top.get(k, 0) for k in keys)):
        labels.append("(other)")
        ref_shares.append(1.0 - sum(ref_shares))
    now_shares = None
    if now is not None and now.nonnull:
        now_shares = [now.top.get(k, 0) / now.nonnull for k in keys]
        if len(labels) > len(keys):
            now_shares.append(1.0 - sum(now_shares))
    return {
        "kind": "categorical",
        "categories": labels,
        "new": [label in new for label in labels],
        "training": ref_shares,
        "serving": now_shares,
        "note": "",
    }
