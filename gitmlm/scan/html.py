"""`git mlm scan --html FILE`: one page, a table of findings and a plot per finding — the
slice's metric against the whole set's (or the measured rate against the tolerated one)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from gitmlm.core import page
from gitmlm.scan import report
from gitmlm.scan.engine import Result
from gitmlm.scan.findings import Finding

COLORS = {"major": "#c44e52", "medium": "#dd8452", "minor": "#ccb974"}
REST = "#4c72b0"


def require() -> None:
    page.figure_class()


def write(result: Result, path: Path) -> None:
    page.write(render(result), path)


def render(result: Result) -> str:
    figure = page.figure_class()
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>scan of {html.escape(result.subject.label)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "td,th{padding:2px 8px;text-align:left}figure{margin:0}</style>",
        f"<h1>{html.escape(report.headline(result))}</h1>",
    ]
    rows = report.finding_rows([f.record() for f in result.findings])
    if not rows:
        parts.append("<p>No findings.</p>")
    else:
        parts.append(_table(rows, [*report.COLUMNS, "message"]))
    for i, f in enumerate(result.findings, 1):
        parts.append(f"<h2>{i}. {html.escape(f.severity)} — {html.escape(f.detector)}</h2>")
        parts.append(f"<p>{html.escape(f.message)}</p>")
        parts.append(page.img(_plot(figure, f), f.message))
    if result.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
        parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
    return "\n".join(parts)


def _plot(figure: Any, f: Finding) -> bytes:
    fig = figure(figsize=(5, 2.2))
    ax = fig.subplots()
    where = f.slice or "all rows"
    other = "tolerated" if f.detector == "robustness" else "whole set"
    if f.detector in ("shortcut",):
        other = "label"
    if f.detector in ("parity",):
        other = "rest"
    names = [_clip(where), other]
    values = [f.value, f.reference]
    ax.barh(names, values, color=[COLORS.get(f.severity, "#888"), REST])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3g}", va="center")
    ax.set_xlabel(f.metric + (f"  (n = {f.support:,})" if f.support else ""))
    ax.invert_yaxis()
    fig.tight_layout()
    return page.png(fig)


def _clip(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[dict[str, object]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: object) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
