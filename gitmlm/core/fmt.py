"""Rendering rows for people and machines: table, json, csv, md. No pandas on this path."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv", "md")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(cell(v) for v in value)
    return str(value)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or infinity: say them as strings rather than emit invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return cell(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(value: Any) -> str:
    return json.dumps(_json_safe(value), indent=2, ensure_ascii=False)


SHORT_DIGEST = 12
"""Hex digits of a content digest shown in tables (JSON and CSV keep the whole digest)."""


def short_digest(value: str) -> str:
    """`sha256:<64 hex>` -> `sha256:<12 hex>`, as git abbreviates hashes; other text as is."""
    algorithm, sep, hexdigits = value.partition(":")
    long = sep and algorithm.isalnum() and len(hexdigits) > SHORT_DIGEST
    if long and all(c in "0123456789abcdef" for c in hexdigits):
        return f"{algorithm}:{hexdigits[:SHORT_DIGEST]}"
    return value


def columns_of(rows: Sequence[dict[str, Any]], first: Sequence[str]) -> list[str]:
    seen = [c for c in first if any(c in r for r in rows)]
    rest: set[str] = set()
    for r in rows:
        rest.update(k for k in r if k not in seen)
    order = {"params": 0, "metrics": 1, "tags": 2, "datasets": 3}
    return seen + sorted(rest, key=lambda c: (order.get(c.split(".", 1)[0], 9), c))


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str = "table") -> str:
    if fmt == "json":
        return to_json([{c: r.get(c) for c in columns if c in r} for r in rows])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([cell(r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    if fmt == "md":

        def esc(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        lines = [
            "| " + " | ".join(esc(c) for c in columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
        ]
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)
