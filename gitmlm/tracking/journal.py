"""The write-ahead journal of a live run under .git/mlm/journal/: what a crash must not lose.

One JSON object per line, appended; a run's own process and a child attached through
GITMLM_RUN_ID both append to it, and only the run's owner folds it into the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def path(mlm_dir: Path, run_id: str) -> Path:
    return mlm_dir / "journal" / f"{run_id}.jsonl"


def append(file: Path, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
    # One write of whole lines in append mode: concurrent appenders never interleave a line.
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


@dataclass
class Folded:
    record: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    """Other record fields set while running (`error` of a failed child of `git mlm run`)."""


def fold(file: Path) -> Folded:
    """Replay the journal; a torn last line (killed mid-write) is ignored."""
    out = Folded()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("k")
        if kind == "start":
            out.record = event["record"]
        elif kind == "params":
            _merge(out.params, event["v"])
        elif kind == "tags":
            out.tags.update(event["v"])
        elif kind == "metrics":
            for name, value, step in event["v"]:
                out.metrics[name] = value
                if step is not None:
                    s = out.series.setdefault(name, {"step": [], "value": []})
                    s["step"].append(step)
                    s["value"].append(value)
        elif kind == "dataset":
            out.datasets[event["name"]] = event["v"]
        elif kind == "artifact":
            out.artifacts[event["path"]] = event["v"]
        elif kind == "env":
            out.env.update(event["v"])
        elif kind == "fields":
            out.fields.update(event["v"])
    return out


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
