"""Promotion gates: what a version must show before it enters a stage.

[registry.gates.production]
require = ["metrics.auc >= 0.9", "params.epochs >= 10"]   # --where conditions on its run
better_than_current = "auc"        # by [metrics] auc = "max"/"min", against the holder
datasets_match_lock = true         # the run's dataset digests equal mlm.lock's
clean_checkpoint = true            # the run was made from committed code
signed = true                      # the stage's tags must be signed (see signing.py)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitmlm.core import config, fmt, where
from gitmlm.core.records import Run, flat_row
from gitmlm.data import lock as lockfile
from gitmlm.errors import MlmError

KNOWN = ("require", "better_than_current", "datasets_match_lock", "clean_checkpoint", "signed")


@dataclass(frozen=True)
class Evidence:
    """What is known about a version: its run's flat row, or the snapshot in its tag."""

    version: str
    row: dict[str, Any]
    source: str
    """"run <id>", "tag snapshot" or "nothing recorded"."""


@dataclass(frozen=True)
class Check:
    gate: str
    ok: bool
    detail: str


def evidence(version: str, body: dict[str, Any], run: Run | None) -> Evidence:
    if run is not None:
        return Evidence(version, flat_row(run), f"run {run.id}")
    if not body:
        return Evidence(version, {}, "nothing recorded")
    row: dict[str, Any] = {"run_id": body.get("run", "")}
    if "checkpoint" in body:
        row["checkpoint"] = body["checkpoint"]
    for name, value in dict(body.get("metrics", {})).items():
        row[f"metrics.{name}"] = value
    for name, digest in dict(body.get("datasets", {})).items():
        row[f"datasets.{name}"] = digest
    return Evidence(version, row, "tag snapshot")


def _names(value: Any, key: str, stage: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise MlmError(
            f"{config.FILE}: [registry.gates.{stage}] {key} must be a string or a list of strings"
        )
    return list(items)


def evaluate(
    cfg: dict[str, Any],
    root: Path,
    stage: str,
    settings: dict[str, Any],
    candidate: Evidence,
    current: Evidence | None,
) -> list[Check]:
    """Every gate of `stage` applied to the candidate; an empty list when the stage has none."""
    unknown = sorted(set(settings) - set(KNOWN))
    if unknown:
        raise MlmError(
            f"{config.FILE}: [registry.gates.{stage}] has unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(KNOWN)}"
        )
    row = candidate.row
    checks: list[Check] = []
    for text in _names(settings.get("require", []), "require", stage):
        predicate = where.compile_where(text)
        shown = ", ".join(
            f"{c} = {fmt.cell(row[c]) if c in row else 'missing'}"
            for c in sorted(where.columns(where.parse(text)))
        )
        checks.append(Check(text, bool(row) and predicate(row), shown or candidate.source))
    for metric in _names(settings.get("better_than_current", []), "better_than_current", stage):
        checks.append(_better(cfg, metric, candidate, current))
    if settings.get("datasets_match_lock") is True:
        checks.append(_datasets(root, candidate))
    if settings.get("clean_checkpoint") is True:
        checkpoint = row.get("checkpoint")
        checks.append(
            Check(
                "clean checkpoint",
                checkpoint == "clean",
                f"run made from {'committed code' if checkpoint == 'clean' else 'a checkpoint'}"
                if checkpoint
                else f"no run recorded ({candidate.source})",
            )
        )
    return checks


def direction(cfg: dict[str, Any], metric: str) -> str:
    found = config.metric_direction(cfg, metric)
    if found is None:
        raise MlmError(
            f'declare which way {metric} is better: add {metric} = "max" (or "min") '
            f"under [metrics] in {config.FILE}"
        )
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _better(
    cfg: dict[str, Any], metric: str, candidate: Evidence, current: Evidence | None
) -> Check:
    way = direction(cfg, metric)
    gate = f"better {metric} than current ({way})"
    mine = _number(candidate.row.get(f"metrics.{metric}"))
    if mine is None:
        return Check(gate, False, f"{candidate.version} has no {metric} ({candidate.source})")
    if current is None:
        return Check(gate, True, f"{metric} = {fmt.cell(mine)}; the stage is empty")
    theirs = _number(current.row.get(f"metrics.{metric}"))
    if theirs is None:
        return Check(gate, True, f"{metric} = {fmt.cell(mine)}; {current.version} has none")
    ok = mine > theirs if way == "max" else mine < theirs
    return Check(gate, ok, f"{fmt.cell(mine)} vs {fmt.cell(theirs)} ({current.version})")


def _datasets(root: Path, candidate: Evidence) -> Check:
    gate = "datasets match mlm.lock"
    lock = lockfile.load(root)
    if not lock:
        return Check(gate, False, f"no datasets in {lockfile.FILE}")
    wrong = []
    for name, entry in sorted(lock.items()):
        have = candidate.row.get(f"datasets.{name}")
        if have is None:
            wrong.append(f"{name} not recorded")
        elif have != entry.get("digest"):
            wrong.append(f"{name} differs")
    if wrong:
        return Check(gate, False, "; ".join(wrong))
    return Check(gate, True, f"{len(lock)} dataset(s) equal")


def metric_changes(
    cfg: dict[str, Any], candidate: Evidence, current: Evidence | None
) -> list[dict[str, Any]]:
    """Metric by metric, the candidate against the holder, with the direction of change."""
    names = {c[8:] for c in candidate.row if c.startswith("metrics.")}
    if current is not None:
        names |= {c[8:] for c in current.row if c.startswith("metrics.")}
    rows = []
    for name in sorted(names):
        new = _number(candidate.row.get(f"metrics.{name}"))
        old = _number(current.row.get(f"metrics.{name}")) if current else None
        way = config.metric_direction(cfg, name)
        change = ""
        if new is not None and old is not None:
            delta = new - old
            arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
            verdict = ""
            if way and delta:
                verdict = " better" if (delta > 0) == (way == "max") else " worse"
            change = f"{arrow} {delta:+.4g}{verdict}" if delta else "= same"
        rows.append(
            {
                "metric": name + (f" ({way})" if way else ""),
                "current": old,
                "candidate": new,
                "change": change,
            }
        )
    return rows
