"""`git mlm monitor --html FILE`: one self-contained page, histograms drawn by matplotlib.

Each feature gets a reference-vs-serving plot drawn from the two profiles (no raw training data
needed): numeric features as densities on the training bins (the frozen edges), categorical ones
as shares per category. Quality and latency windows are line plots against the training metric
and the SLO. Images are PNGs embedded as base64, so the file can be mailed or attached to an
incident as it is.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from gitmlm.core import fmt, page
from gitmlm.monitor.monitor import Result
from gitmlm.monitor.report import (
    FEATURE_COLUMNS,
    QUALITY_METRICS,
    feature_rows,
    latency_rows,
    quality_rows,
)
from gitmlm.stats.profile import CategoricalColumn, Column, NumericColumn

REF_COLOR = "#4c72b0"
NOW_COLOR = "#dd8452"
STATUS_COLOR = {"ok": "#2e7d32", "DRIFT": "#c62828", "SCHEMA": "#6a1b9a"}
MAX_CATEGORIES = 15


def require() -> None:
    """Raise the clear error now when matplotlib is missing."""
    page.figure_class()


def write(result: Result, path: Path) -> None:
    page.write(render(result), path)


def render(result: Result) -> str:
    figure = page.figure_class()
    e = html.escape
    head = [
        f"Monitor {result.target.label}",
        f"run {result.target.run.id} ({result.target.run.name})",
    ]
    verdict = (
        "FLAGGED: " + "; ".join(result.reasons)
        if result.flagged
        else "ok: nothing crossed a threshold"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(head[0])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(head[0])}</h1>",
        f"<p>{e(head[1])}; training dataset <b>{e(result.dataset)}</b> "
        f"({result.reference.rows:,} rows); serving <b>{e(str(result.data))}</b> "
        f"({result.serving.rows:,} rows); observed {e(result.observed)}</p>",
        f'<p class="{"bad" if result.flagged else "good"}">{e(verdict)}</p>',
    ]
    if result.warnings:
        parts.append("<ul>" + "".join(f"<li>{e(w)}</li>" for w in result.warnings) + "</ul>")
    rows = feature_rows(result)
    parts += ["<h2>Features</h2>", _table(rows, [*FEATURE_COLUMNS, "top_moves", "detail"])]
    parts.append('<div class="grid">')
    for f in sorted(result.report.features, key=lambda f: f.status == "ok"):
        ref = result.reference.columns.get(f.feature)
        now = result.serving.columns.get(f.feature)
        png = _feature_png(figure, f.feature, f.status, f.psi, ref, now)
        if png is not None:
            parts.append(page.img(png, f"{f.feature}: training vs serving"))
    parts.append("</div>")
    if result.quality:
        q = quality_rows(result)
        parts += ["<h2>Quality</h2>", _table(q, ["window", "n", "dropped", *QUALITY_METRICS])]
        parts.append(page.img(_quality_png(figure, result), "quality per window"))
    if result.latency:
        lat = latency_rows(result)
        parts += ["<h2>Latency</h2>", _table(lat, ["window", "n", "p50", "p95", "p99", "breaches"])]
        parts.append(page.img(_latency_png(figure, result), "latency per window"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin-bottom:1em}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    "th{background:#f3f3f3}.bad{color:#c62828;font-weight:bold}"
    ".good{color:#2e7d32;font-weight:bold}"
    ".grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}"
    "td.DRIFT{color:#c62828;font-weight:bold}td.SCHEMA{color:#6a1b9a;font-weight:bold}"
)


def _table(rows: list[dict[str, object]], columns: list[str]) -> str:
    cols = [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cells = []
        for c in cols:
            text = fmt.cell(r.get(c))
            cls = f' class="{e(text)}"' if c == "status" else ""
            cells.append(f"<td{cls}>{e(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _feature_png(
    figure: Any,
    name: str,
    status: str,
    psi: float | None,
    ref: Column | None,
    now: Column | None,
) -> bytes | None:
    if ref is None and now is None:
        return None
    fig = figure(figsize=(4.6, 2.8), layout="constrained")
    ax = fig.add_subplot()
    score = f", psi {psi:.3g}" if psi is not None else ""
    ax.set_title(f"{name}: {status}{score}", color=STATUS_COLOR.get(status, "#222"), fontsize=10)
    if isinstance(ref, NumericColumn) and isinstance(now, NumericColumn | None):
        _numeric(ax, ref, now)
    elif isinstance(ref, CategoricalColumn) and isinstance(now, CategoricalColumn | None):
        _categorical(ax, ref, now)
    else:
        ax.text(0.5, 0.5, _mismatch(ref, now), ha="center", va="center", wrap=True, fontsize=9)
        ax.set_axis_off()
    ax.tick_params(labelsize=8)
    return page.png(fig)


def _mismatch(ref: Column | None, now: Column | None) -> str:
    if ref is None:
        return "not in the training data"
    if now is None:
        return "missing from the serving data"
    return f"kind changed: {ref.kind} ({ref.dtype}) → {now.kind} ({now.dtype})"


def _numeric(ax: Any, ref: NumericColumn, now: NumericColumn | None) -> None:
    import numpy as np

    edges = np.array(ref.edges, dtype=np.float64)
    if edges.size < 2 or ref.finite == 0:
        ax.text(0.5, 0.5, "no finite training values", ha="center", va="center")
        return
    if edges[-1] == edges[0]:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])  # one value: draw it as a unit bin
    widths = np.diff(edges)
    ref_density = np.array(ref.counts, dtype=np.float64) / ref.finite / widths
    ax.stairs(ref_density, edges, fill=True, alpha=0.45, color=REF_COLOR, label="training")
    note = ""
    if now is not None and now.finite:
        if now.edges == ref.edges:
            counts = np.array(now.counts, dtype=np.float64)
            under, over = float(now.under), float(now.over)
        else:
            counts, under, over = _rebinned(now, ref.edges)
        ax.stairs(counts / now.finite / widths, edges, color=NOW_COLOR, lw=1.8, label="serving")
        if under or over:
            note = f"serving outside the bins: {under / now.finite:.2%} below, "
            note += f"{over / now.finite:.2%} above"
    ax.set_ylabel("density", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    if note:
        ax.set_xlabel(note, fontsize=8, color=NOW_COLOR)


def _rebinned(now: NumericColumn, edges: list[float]) -> tuple[Any, float, float]:
    """Serving counts on other edges, read off its quantiles (as `drift` estimates them)."""
    import numpy as np

    points = np.array([now.min, *now.quantiles, now.max], dtype=np.float64)
    grid = np.concatenate([[0.0], np.arange(1, 100) / 100.0, [1.0]])
    cdf = np.interp(np.array(edges, dtype=np.float64), points, grid, left=0.0, right=1.0)
    inner = np.diff(cdf) * now.finite
    return inner, float(cdf[0] * now.finite), float((1.0 - cdf[-1]) * now.finite)


def _categorical(ax: Any, ref: CategoricalColumn, now: CategoricalColumn | None) -> None:
    import numpy as np

    keys = list(ref.top)[:MAX_CATEGORIES]
    new = [k for k in (now.top if now is not None else {}) if k not in ref.top]
    keys += new[: max(0, MAX_CATEGORIES + 3 - len(keys))]
    ref_total = max(ref.nonnull, 1)
    ref_shares = [ref.top.get(k, 0) / ref_total for k in keys]
    labels = list(keys)
    if ref.other or (now is not None and now.nonnull - sum(now.top.get(k, 0) for k in keys)):
        labels.append("(other)")
        ref_shares.append(1.0 - sum(ref_shares))
    y = np.arange(len(labels))
    ax.barh(y + 0.2, ref_shares, height=0.4, color=REF_COLOR, alpha=0.7, label="training")
    if now is not None and now.nonnull:
        now_shares = [now.top.get(k, 0) / now.nonnull for k in keys]
        if len(labels) > len(keys):
            now_shares.append(1.0 - sum(now_shares))
        ax.barh(y - 0.2, now_shares, height=0.4, color=NOW_COLOR, label="serving")
    ax.set_yticks(y, [_clip(lbl) + (" (new)" if lbl in new else "") for lbl in labels])
    ax.invert_yaxis()
    ax.set_xlabel("share of values", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")


def _clip(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _quality_png(figure: Any, result: Result) -> bytes:
    fig = figure(figsize=(7, 3), layout="constrained")
    ax = fig.add_subplot()
    windows = [str(r["window"])[:10] for r in result.quality]
    x = list(range(len(windows)))
    for i, metric in enumerate(QUALITY_METRICS):
        values = [r.get(metric) for r in result.quality]
        if not any(isinstance(v, float) for v in values):
            continue
        color = f"C{i}"
        ys = [v if isinstance(v, float) else float("nan") for v in values]
        ax.plot(x, ys, marker="o", color=color, label=metric)
        if metric in result.training:
            ax.axhline(result.training[metric], color=color, ls="--", lw=1)
    ax.set_xticks(x, windows, rotation=30, ha="right", fontsize=8)
    title = "realised quality per window"
    if result.training:
        title += " (dashed: the run's training metric)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return page.png(fig)


def _latency_png(figure: Any, result: Result) -> bytes:
    fig = figure(figsize=(7, 3), layout="constrained")
    ax = fig.add_subplot()
    windows = [str(r["window"])[:10] for r in result.latency]
    x = list(range(len(windows)))
    breaches = {k for r in result.latency for k in r.get("breaches", [])}
    for i, p in enumerate(("p50", "p95", "p99")):
        ys = [r.get(p) if isinstance(r.get(p), float) else float("nan") for r in result.latency]
        ax.plot(x, ys, marker="o", color=f"C{i}", label=p + (" (SLO breached)" * (p in breaches)))
        if p in result.slo:
            ax.axhline(result.slo[p], color=f"C{i}", ls="--", lw=1)
    ax.set_xticks(x, windows, rotation=30, ha="right", fontsize=8)
    title = "latency per window" + (" (dashed: SLO)" if result.slo else "")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return page.png(fig)
