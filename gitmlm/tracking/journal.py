"""The write-ahead journal of a live run under .git/mlm/journal/: what a crash must not lose.

One JSON object per line, appended; a run's own process and a child attached through
GITMLM_RUN_ID both append to it, and only the run's owner folds it into the record.
Every logging call writes its line before it returns, so a SIGKILL loses nothing that was
logged (the page cache keeps it); a power loss may lose the last seconds, as nothing is fsynced.
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


def summary_wins(old_step: int | None, new_step: int | None) -> bool:
    """Whether a point replaces the metric's summary: the value at the highest step wins, and
    of values at one step the last logged (MLflow's rule). No step counts as step 0, as in
    MLflow."""
    return (new_step or 0) >= (old_step or 0)


class Appender:
    """A journal kept open by its run: each append is one write(2) of whole lines in append
    mode, with no open or close per logging call (the bulk of its cost)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._fd: int | None = None

    def append(self, events: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()
        if self._fd is None:
            self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class Folded:
    record: dict[str, Any] = field(default_factory=dict)
    named: bool = False
    """The command line named the run (`git mlm run --name`): the script's name does not."""
    name: str | None = None
    """The name the script gave, when the command line gave none."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Record fields set while the run ran (`overridden`)."""
    metric_steps: dict[str, int | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)


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
            out.named = bool(event.get("named"))
        elif kind == "name":
            out.name = event["v"]
        elif kind == "extra":
            out.extra.update(event["v"])
        elif kind == "params":
            _merge(out.params, event["v"])
        elif kind == "tags":
            out.tags.update(event["v"])
        elif kind == "metrics":
            for name, value, step in event["v"]:
                if name not in out.metrics or summary_wins(out.metric_steps[name], step):
                    out.metrics[name] = value
                    out.metric_steps[name] = step
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
    return out


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def artifacts(file: Path) -> dict[str, Any]:
    """The artifacts a live run has logged so far (path -> info), without replaying the rest:
    `git mlm gc` keeps their bytes though the record does not name them yet."""
    out: dict[str, Any] = {}
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        if '"k":"artifact"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        out[event["path"]] = event["v"]
    return out
