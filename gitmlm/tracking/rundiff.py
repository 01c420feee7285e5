"""Comparing two runs key by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmlm.core.fmt import cell
from gitmlm.core.records import Run, flat_row


@dataclass(frozen=True)
class Row:
    key: str
    a: str
    b: str
    change: str


def _flat(run: Run) -> dict[str, Any]:
    out = {k: v for k, v in flat_row(run).items() if k.split(".", 1)[0] in _COMPARED}
    out["commit"] = run.commit[:10]
    out.update({k: str(v)[:19] for k, v in out.items() if k.startswith("datasets.")})
    return out


_COMPARED = {"commit", "checkpoint", "status", "params", "metrics", "datasets"}


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
                cell(va),
                cell(vb),
                change,
            )
        )
    return rows
