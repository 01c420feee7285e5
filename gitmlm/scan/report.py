"""Rows of a scan for the table/json/csv/md formats (printing is the command line's job)."""

from __future__ import annotations

from typing import Any

from gitmlm.core import fmt
from gitmlm.scan.engine import Result

COLUMNS = ["severity", "detector", "slice", "metric", "value", "reference", "support", "q"]


def finding_rows(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "severity": f.get("severity", ""),
            "detector": f.get("detector", ""),
            "slice": f.get("slice", "") or "(all rows)",
            "metric": f.get("metric", ""),
            "value": f.get("value"),
            "reference": f.get("reference"),
            "support": f.get("support"),
            "q": f.get("q"),
            "message": f.get("message", ""),
        }
        for f in findings
    ]


def headline(result: Result) -> str:
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("major", "medium", "minor"))
    return (
        f"scanned {result.subject.label} ({result.kind}) on {result.data.name}: "
        f"{result.rows:,} rows, {result.task}, {counts} ({result.seconds:.1f} s)"
    )


def as_json(result: Result, key: str | None, exceeded: list[str]) -> str:
    from gitmlm.scan.record import table

    doc = {"key": key, **table(result), "seconds": round(result.seconds, 3), "exceeded": exceeded}
    return fmt.to_json(doc)


def render(result: Result, fmt_: str) -> str:
    rows = finding_rows([f.record() for f in result.findings])
    columns = [*COLUMNS, "message"] if fmt_ in ("csv", "md") else COLUMNS
    if not rows:
        return "no findings" if fmt_ == "table" else fmt.render([], columns, fmt_)
    return fmt.render(rows, columns, fmt_)


def history_rows(recorded: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for r in recorded:
        d = r.doc
        counts = d.get("counts", {})
        rows.append(
            {
                "scanned": str(d.get("updated", ""))[:19],
                "model": d.get("model", "") or f"run {str(d.get('run', ''))[:12]}",
                "version": d.get("version", ""),
                "data": d.get("data", ""),
                "digest": str(d.get("data_digest", ""))[:19],
                "rows": d.get("rows"),
                "major": counts.get("major", 0),
                "medium": counts.get("medium", 0),
                "minor": counts.get("minor", 0),
                "commit": r.commit[:10],
            }
        )
    return rows
