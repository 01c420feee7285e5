"""Promotion gates: what a version must show before it enters a stage.

[registry.gates.production]
require = ["metrics.auc >= 0.9", "params.epochs >= 10"]   # --where conditions on its run
better_than_current = "auc"        # by [metrics] auc = "max"/"min", against the holder
datasets_match_lock = true         # the run's dataset digests equal mlm.lock's
clean_checkpoint = true            # the run was made from committed code
signed = true                      # the stage's tags must be signed (see signing.py)
scan = { data = "holdout.csv", target = "churned", max_major = 0 }   # `git mlm scan` findings
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmlm.core import config, fmt, scans, where
from gitmlm.core import digest as artifact_digest
from gitmlm.core.records import Run, flat_row
from gitmlm.data import lock as lockfile
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    from gitmlm.core.git import Repo

KNOWN = config.GATE_KEYS
SCAN_KEYS = ("data", "target", "max_major", "max_medium", "max_minor")

Scanner = Callable[[str, Path, str], scans.Recorded]
"""Runs and records a scan of (model@version, data file, target column) for the scan gate when
none is recorded; given by the caller (the command line), so the registry never imports the
scanner."""


@dataclass(frozen=True)
class Evidence:
    """What is known about a version: its run's flat row, or the snapshot in its tag."""

    version: str
    row: dict[str, Any]
    source: str
    """"run <id>", "tag snapshot" or "nothing recorded"."""
    model: str = ""
    commit: str = ""


@dataclass(frozen=True)
class Check:
    gate: str
    ok: bool
    detail: str


def evidence(
    version: str, body: dict[str, Any], run: Run | None, model: str = "", commit: str = ""
) -> Evidence:
    if run is not None:
        return Evidence(version, flat_row(run), f"run {run.id}", model, commit)
    if not body:
        return Evidence(version, {}, "nothing recorded", model, commit)
    row: dict[str, Any] = {"run_id": body.get("run", "")}
    if "checkpoint" in body:
        row["checkpoint"] = body["checkpoint"]
    for name, value in dict(body.get("metrics", {})).items():
        row[f"metrics.{name}"] = value
    for name, digest in dict(body.get("datasets", {})).items():
        row[f"datasets.{name}"] = digest
    return Evidence(version, row, "tag snapshot", model, commit)


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
    *,
    repo: Repo | None = None,
    scanner: Scanner | None = None,
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
        try:
            predicate = where.compile_where(text)
            used = where.columns(where.parse(text))
        except MlmError as exc:
            # The condition comes from the file, not a --where option: say where to fix it.
            what = str(exc).replace("bad --where expression", "bad condition")
            raise MlmError(
                f"{config.FILE}: [registry.gates.{stage}] require {text!r}: {what}"
            ) from None
        shown = ", ".join(
            f"{c} = {fmt.cell(row[c]) if c in row else 'missing'}" for c in sorted(used)
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
    if "scan" in settings:
        checks.append(_scan(root, stage, settings["scan"], candidate, repo, scanner))
    return checks


def _scan(
    root: Path,
    stage: str,
    spec: Any,
    candidate: Evidence,
    repo: Repo | None,
    scanner: Scanner | None,
) -> Check:
    """The version's recorded scan on the gate's data (scanned now if none is recorded and a
    scanner is at hand) must not have more findings of each severity than the limits."""
    where_ = f"{config.FILE}: [registry.gates.{stage}] scan"
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
        raise MlmError(f'{where_} must be a table like {{ data = "holdout.csv", max_major = 0 }}')
    unknown = sorted(set(spec) - set(SCAN_KEYS))
    if unknown:
        raise MlmError(
            f"{where_} has unknown key(s) {', '.join(unknown)}; known: {', '.join(SCAN_KEYS)}"
        )
    limits = {"major": spec.get("max_major", 0)}
    for sev in ("medium", "minor"):
        if f"max_{sev}" in spec:
            limits[sev] = spec[f"max_{sev}"]
    for sev, limit in limits.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise MlmError(f"{where_}: max_{sev} must be a whole number >= 0")
    gate = "scan: " + ", ".join(f"{sev} <= {n}" for sev, n in limits.items())
    data_path = root / spec["data"]
    if not data_path.is_file():
        return Check(gate, False, f"{spec['data']} is not in the work tree")
    if repo is None or not candidate.commit or not candidate.model:
        return Check(gate, False, "no registered version to read scans of")
    subject = f"{candidate.model}@{candidate.version}"
    digest = artifact_digest.of_file(data_path)
    found = scans.find(repo, candidate.commit, scans.key(subject, digest))
    how = "recorded"
    if found is None:
        target = spec.get("target")
        if scanner is None or not isinstance(target, str):
            return Check(
                gate,
                False,
                f"no recorded scan of {subject} on {spec['data']} ({digest[:19]}…): run "
                f"`git mlm scan {subject} {spec['data']} --target COL`"
                + ("" if isinstance(target, str) else ", or add target = COL to the gate"),
            )
        found = scanner(subject, data_path, target)
        how = "scanned now"
    over = [
        f"{found.count(sev)} {sev} > {limit}"
        for sev, limit in limits.items()
        if found.count(sev) > limit
    ]
    counted = ", ".join(f"{found.count(s)} {s}" for s in scans.SEVERITIES)
    if not over:
        return Check(gate, True, f"{counted} ({how})")
    worst = [
        f"{f.get('severity')} {f.get('detector')}: {f.get('message', '')}"
        for f in found.findings
        if f.get("severity") in limits
        and found.count(str(f.get("severity"))) > limits[str(f.get("severity"))]
    ]
    shown = "; ".join(worst[:5]) + (f"; and {len(worst) - 5} more" if len(worst) > 5 else "")
    return Check(gate, False, f"{', '.join(over)} ({how}): {shown}")


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
