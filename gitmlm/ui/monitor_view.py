"""What the Monitor page shows, read through gitmlm.monitor: each model's recorded
observations over time per feature, quality and latency against the SLO, the latest report."""

from __future__ import annotations

from typing import Any

from gitmlm.core import config
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import state as registry
from gitmlm.monitor import monitor

FEATURE_SERIES = ("psi", "js", "null_rate_now", "out_of_range", "unseen_share")


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


def monitor_page(repo: Repo, name: str) -> dict[str, Any]:
    registry.load(repo).model(name)  # an unknown model is an error with the known ones
    seen = monitor.history(repo, name)
    features: dict[str, dict[str, list[Any]]] = {}
    for o in seen:
        for feature, entry in o.doc.get("features", {}).items():
            series = features.setdefault(
                feature, {"x": [], "version": [], **{k: [] for k in FEATURE_SERIES}}
            )
            series["x"].append(o.observed)
            series["version"].append(str(o.doc.get("version", "")))
            for key in FEATURE_SERIES:
                series[key].append(entry.get(key))
    try:
        slo = monitor.settings(config.load(repo.workdir)).slo if repo.root else {}
    except MlmError:
        slo = {}
    return {
        "model": name,
        "count": len(seen),
        "features": features,
        "quality": _windows(seen, "quality"),
        "latency": _windows(seen, "latency"),
        "slo": slo,
        "latest": seen[-1].doc if seen else None,
        "latest_id": seen[-1].id if seen else "",
    }


def _windows(seen: list[monitor.Observation], key: str) -> dict[str, dict[str, list[Any]]]:
    """Metric -> {"x": window, "y": value} over every observation's windows (a later
    observation of the same window replaces an earlier one)."""
    by_window: dict[str, dict[str, Any]] = {}
    for o in seen:
        for row in o.doc.get(key, []):
            window = str(row.get("window", o.observed))
            by_window[window] = row
    out: dict[str, dict[str, list[Any]]] = {}
    for window in sorted(by_window):
        for metric, value in by_window[window].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series = out.setdefault(metric, {"x": [], "y": []})
                series["x"].append(window)
                series["y"].append(value)
    return out
