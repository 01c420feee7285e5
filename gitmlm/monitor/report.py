"""A monitor result for people (terminal table, Markdown) and machines (JSON); history tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitmlm.core import fmt, ids
from gitmlm.monitor.monitor import FEATURE_KEYS, Observation, Result, day

FEATURE_COLUMNS = ["feature", "kind", *FEATURE_KEYS, "crossed"]
_ORDER = {"SCHEMA": 0, "DRIFT": 1, "ok": 2}
# Checks on the shape of the distribution: only then are the bins that moved worth naming.
_SHAPE = {"psi", "js", "wasserstein", "linf", "unseen_share", "pvalue"}
QUALITY_METRICS = ("accuracy", "f1", "auc", "mae", "rmse", "bias")


def feature_rows(result: Result) -> list[dict[str, object]]:
    """`drift.report_rows`, flagged features first (training order within each status)."""
    from gitmlm.stats.drift import report_rows

    rows = report_rows(result.report)
    for row in rows:
        if row["role"] != "feature":
            row["feature"] = f"{row['feature']} ({row['role']})"
    return sorted(rows, key=lambda r: _ORDER.get(str(r["status"]), 3))


def quality_rows(result: Result) -> list[dict[str, object]]:
    """Realised quality per window, under a `training` row with the run's own metrics."""
    rows: list[dict[str, object]] = []
    if result.training:
        rows.append({"window": "training (run)", **result.training})
    for r in result.quality:
        rows.append({**r, "window": day(r["window"]), "breaches": ", ".join(r["breaches"])})
    return rows


def latency_rows(result: Result) -> list[dict[str, object]]:
    return [
        {**r, "window": day(r["window"]), "breaches": ", ".join(r["breaches"])}
        for r in result.latency
    ]


def present(rows: Sequence[dict[str, Any]], first: Sequence[str]) -> list[str]:
    """The columns of `first` that some row has a value in, in that order."""
    return [c for c in first if any(r.get(c) not in (None, "") for r in rows)]


def _heading(result: Result) -> list[str]:
    t = result.target
    run = f"run {t.run.id[: ids.SHORT]} ({t.run.name})"
    what = f"{t.label}, {run}" if t.model else run
    return [
        f"monitor {what}",
        f"training: dataset {result.dataset!r}, {result.reference.rows:,} rows",
        f"serving:  {result.data}, {result.serving.rows:,} rows",
    ]


def _verdict(result: Result) -> str:
    if not result.flagged:
        return "ok: nothing crossed a threshold"
    return "FLAGGED: " + "; ".join(result.reasons)


def _moves(result: Result) -> list[tuple[str, str]]:
    """(feature, what moved) for each flagged feature."""
    out = []
    for f in sorted(result.report.features, key=lambda f: _ORDER.get(f.status, 3)):
        if f.status == "ok":
            continue
        parts = [*f.schema]
        crossed = set(f.crossed)
        if "null_rate_delta" in crossed:
            parts.append(f"missing values {f.null_rate_ref:.1%} → {f.null_rate_now:.1%}")
        if "out_of_range" in crossed:
            parts.append(f"{f.out_of_range:.1%} outside the training range")
        if f.top_moves and crossed & _SHAPE:
            parts.append(", ".join(f"{m.label}: {m.ref:.1%} → {m.now:.1%}" for m in f.top_moves))
        if f.unseen_values:
            parts.append("new values: " + ", ".join(f.unseen_values))
        parts += f.notes
        out.append((f"{f.feature} ({f.status})", "; ".join(parts)))
    return out


def render_text(result: Result, style: str = "table") -> str:
    """The whole report as an aligned table (`table`) or Markdown (`md`)."""
    md = style == "md"
    out: list[str] = []
    head = _heading(result)
    if md:
        out += [f"### {head[0]}", "", f"- {head[1]}", f"- {head[2]}", ""]
        out.append(f"**{_verdict(result)}**")
        out.append("")
    else:
        out += [*head, ""]
    rows = feature_rows(result)
    cols = present(rows, FEATURE_COLUMNS)
    out += [fmt.render(rows, cols, style), ""]
    moves = _moves(result)
    if moves:
        out.append("#### What moved" if md else "what moved:")
        if md:
            out.append("")
        for feature, what in moves:
            out.append(f"- **{feature}**: {what}" if md else f"  {feature}: {what}")
        out.append("")
    if result.quality:
        q = quality_rows(result)
        qcols = present(q, ["window", "n", "dropped", *QUALITY_METRICS, "breaches"])
        out.append("#### Quality" if md else "quality:")
        if md:
            out.append("")
        out += [fmt.render(q, qcols, style), ""]
    if result.latency:
        lat = latency_rows(result)
        lcols = present(lat, ["window", "n", "p50", "p95", "p99", "breaches"])
        out.append("#### Latency" if md else "latency:")
        if md:
            out.append("")
        out += [fmt.render(lat, lcols, style), ""]
    if result.warnings:
        out.append("#### Warnings" if md else "warnings:")
        if md:
            out.append("")
        out += [f"- {w}" if md else f"  {w}" for w in result.warnings]
        out.append("")
    if not md:
        out.append(_verdict(result))
    return "\n".join(out).rstrip("\n")


def to_dict(result: Result) -> dict[str, Any]:
    t = result.target
    return {
        "target": {
            "model": t.model,
            "version": t.version,
            "stage": t.stage,
            "run": t.run.id,
            "run_name": t.run.name,
            "commit": t.commit,
        },
        "dataset": result.dataset,
        "data": str(result.data),
        "observed": result.observed,
        "flagged": result.flagged,
        "exit_code": result.exit_code,
        "reasons": result.reasons,
        "thresholds": result.thresholds,
        "warnings": result.warnings,
        "drift": result.report.to_dict(),
        "quality": result.quality,
        "training": result.training,
        "latency": result.latency,
    }


def render(result: Result, style: str) -> str:
    if style == "json":
        return fmt.to_json(to_dict(result))
    if style == "csv":
        rows = feature_rows(result)
        return fmt.render(rows, list(rows[0]) if rows else [], "csv")
    return render_text(result, style)


# --- history -----------------------------------------------------------------------------------

SCORES = ("psi", "js", "wasserstein", "linf", "null_rate_now", "out_of_range", "unseen_share")


def observation_rows(observations: Sequence[Observation]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for o in observations:
        d = o.doc
        drifted = [n for n, f in d.get("features", {}).items() if f.get("status") != "ok"]
        rows.append(
            {
                "observed": o.observed[:19].replace("T", " "),
                "id": o.id[: ids.SHORT],
                "version": d.get("version", ""),
                "data": d.get("data", ""),
                "rows": d.get("rows"),
                "flagged": d.get("flagged"),
                "drifted": ", ".join(drifted),
            }
        )
    return rows


def trend_rows(observations: Sequence[Observation], score: str) -> list[dict[str, object]]:
    """One row per feature: its `score` over the observations (oldest first) and its status."""
    features: dict[str, list[tuple[Any, str]]] = {}
    for o in observations:
        for name, f in o.doc.get("features", {}).items():
            features.setdefault(name, []).append((f.get(score), str(f.get("status", ""))))
    rows: list[dict[str, object]] = []
    for name, points in features.items():
        values = [v for v, _ in points if isinstance(v, int | float)]
        rows.append(
            {
                "feature": name,
                "observations": len(points),
                "flagged": sum(1 for _, s in points if s != "ok"),
                "last_status": points[-1][1],
                f"first_{score}": values[0] if values else None,
                f"last_{score}": values[-1] if values else None,
                "trend": " ".join(fmt.cell(v) if v is not None else "-" for v, _ in points[-12:]),
            }
        )
    return rows


def feature_history_rows(
    observations: Sequence[Observation], feature: str
) -> list[dict[str, object]]:
    """One row per observation: the feature's status and every score."""
    rows: list[dict[str, object]] = []
    for o in observations:
        f = o.doc.get("features", {}).get(feature)
        if f is None:
            continue
        rows.append(
            {
                "observed": o.observed[:19].replace("T", " "),
                "version": o.doc.get("version", ""),
                "data": o.doc.get("data", ""),
                "rows": o.doc.get("rows"),
                "status": f.get("status"),
                **{k: f.get(k) for k in SCORES},
                "crossed": ", ".join(f.get("crossed", [])),
            }
        )
    return rows
