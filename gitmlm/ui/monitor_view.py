"""What the Monitor pages show, read through gitmlm.monitor: each model's recorded
observations over time per feature, quality and latency against the SLO, the latest report; and
one observation (`git mlm monitor --html`) with its training-vs-serving charts. The chart data
comes from gitmlm.monitor.charts, drawn by the same script (static/ui.js) on every page."""

from __future__ import annotations

from typing import Any

from gitmlm.core import config
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import state as registry
from gitmlm.monitor import charts, monitor
from gitmlm.monitor import report as monitor_report


def monitor_index(repo: Repo) -> list[dict[str, Any]]:
    """Each registered model with how many observations it has and the latest verdict."""
    out = []
    for name in sorted(registry.load(repo).models):
        seen = monitor.history(repo, name)
        last = seen[-1].doc if seen else {}
        out.append(
            {
                "model": name,
                "observations": len(seen),
                "last": str(last.get("observed", "")),
                "flagged": bool(last.get("flagged", False)),
                "reasons": list(last.get("reasons", [])),
            }
        )
    return out


LATEST_COLUMNS = [
    "feature",
    "status",
    "psi",
    "js",
    "null_rate_ref",
    "null_rate_now",
    "out_of_range",
    "unseen_share",
    "crossed",
]


def monitor_page(repo: Repo, name: str) -> dict[str, Any]:
    registry.load(repo).model(name)  # an unknown model is an error with the known ones
    seen = monitor.history(repo, name)
    try:
        slo = monitor.settings(config.load(repo.workdir)).slo if repo.root else {}
    except MlmError:
        slo = {}
    latest = seen[-1].doc if seen else None
    rows = [{"feature": f, **e} for f, e in (latest or {}).get("features", {}).items()]
    return {
        "model": name,
        "count": len(seen),
        "latest": latest,
        "latest_id": seen[-1].id if seen else "",
        "rows": rows,
        "columns": monitor_report.present(rows, LATEST_COLUMNS),
        "chart_data": charts.history_charts(seen, slo),
    }


def observation_page(result: monitor.Result) -> dict[str, Any]:
    """One observation, as `git mlm monitor --html` shows it."""
    t = result.target
    rows = monitor_report.feature_rows(result)
    return {
        "title": f"Monitor {t.label}",
        "run": f"run {t.run.id} ({t.run.name})",
        "result": result,
        "verdict": "FLAGGED: " + "; ".join(result.reasons)
        if result.flagged
        else "ok: nothing crossed a threshold",
        "rows": rows,
        "columns": monitor_report.present(
            rows, [*monitor_report.FEATURE_COLUMNS, "top_moves", "detail"]
        ),
        "quality": monitor_report.quality_rows(result),
        "quality_columns": ["window", "n", "dropped", *monitor_report.QUALITY_METRICS, "breaches"],
        "latency": monitor_report.latency_rows(result),
        "latency_columns": ["window", "n", "p50", "p95", "p99", "breaches"],
        "chart_data": charts.result_charts(result),
    }
