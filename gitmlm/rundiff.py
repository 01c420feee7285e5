"""Comparing two runs key by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmlm.records import Run, flatten, format_number


@dataclass(frozen=True)
class Row:
    key: str
    a: str
    b: str
    change: str


def _flat(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {
        "commit": run.commit[:10],
        "checkpoint": run.checkpoint,
        "status": run.status,
    }
    flatten("params", run.params, out)
    for k, v in run.metrics.items():
        out[f"metrics.{k}"] = v
    for k, info in run.datasets.items():
        out[f"datasets.{k}"] = str(info.get("digest", ""))[:19]
    return out


def compare(a: Run, b: Run) -> list[Row]:
    fa, fb = _flat(a), _flat(b)
    rows = []
    for key in sorted(set(fa) | set(fb), key=lambda k: (k.split(".")[0] != "commit", k)):
        va, vb = fa.get(key), fb.get(key)
        if va == vb or (isinstance(va, float) and isinstance(vb, float) and va != va and vb != vb):
            continue
        change = ""
        if key.startswith("metrics.") and isinstance(va, float) and isinstance(vb, float):
            change = f"{vb - va:+.6g}"
        elif va is None:
            change = "added"
        elif vb is None:
            change = "removed"
        rows.append(
            Row(
                key,
                "" if va is None else format_number(va),
                "" if vb is None else format_number(vb),
                change,
            )
        )
    return rows
