"""Writing runs imported from another tool: ids, placement on a commit, idempotence.

An imported run is an ordinary run record with `imported = {from, id, ...}`. Its gitmlm id is
made from its start time and a hash of its source id, so importing the same run twice (or on
two clones) gives the same id; and runs whose source id is already recorded are skipped.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gitmlm.core import codec, ids, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.tracking import logged
from gitmlm.tracking import record as tracking

IMPORTED = "imported"


@dataclass
class Source:
    """One run as another tool recorded it, in gitmlm's terms."""

    tool: str
    source_id: str
    name: str
    status: str
    started_ms: int
    ended_ms: int | None = None
    user: str = ""
    commit: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    """The source id of the run this one is nested in."""
    note: str | None = None
    files: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    """Artifact name -> a reader of its bytes (read only when the run is written)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More of `imported`: where it came from (experiment, store)."""


@dataclass
class Report:
    imported: list[str] = field(default_factory=list)
    skipped: int = 0
    """Runs recorded by an earlier import."""
    on_head: int = 0
    """Runs placed on HEAD: their source named no commit this repository has."""
    artifacts: int = 0


def run_id(tool: str, source_id: str, started_ms: int) -> str:
    """A ULID whose time is the run's start and whose randomness is a hash of its source id."""
    digest = int.from_bytes(hashlib.sha256(f"{tool}:{source_id}".encode()).digest()[:10], "big")
    value = (max(started_ms, 0) << 80) | digest
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    chars = []
    for _ in range(26):
        chars.append(alphabet[value & 31])
        value >>= 5
    out = "".join(reversed(chars))
    assert ids.is_run_id_prefix(out)
    return out


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def param_value(text: str) -> Any:
    """MLflow and DVC params as written: a number or bool stays one when it reads back exactly
    ("0.1" -> 0.1, "007" stays text), anything else is text."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
        return text
    if isinstance(value, bool):
        return value if text in ("true", "false") else text
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return value if str(value) == text else text
    return text


def _storable(key: str, value: Any) -> Any:
    """A value TOML holds; None and the like as their text, as MLflow writes them."""
    if isinstance(value, dict):
        return {str(k): _storable(f"{key}.{k}", v) for k, v in value.items()}
    try:
        return codec.check_value("param", key, value)
    except MlmError:
        return str(value)


def _imported(repo: Repo) -> dict[tuple[str, str], tuple[str, str]]:
    """(tool, source id) -> (run id, commit) of every run imported before, deleted ones too."""
    listing = tracking.list_runs(repo, deleted=True)
    return {
        (str(r.extra[IMPORTED].get("from")), str(r.extra[IMPORTED].get("id"))): (r.id, r.commit)
        for r in listing.runs
        if isinstance(r.extra.get(IMPORTED), dict)
    }


def placement(repo: Repo, sources: Sequence[Source]) -> dict[str, tuple[str, str]]:
    """Source id -> (gitmlm run id, commit) of each source: where an earlier import put it, or
    where `write` puts it (its own commit when this repository has it, else HEAD)."""
    seen = _imported(repo)
    head = repo.head_commit()
    out = {}
    for s in sources:
        commit = s.commit if s.commit and repo.has_object(s.commit) else head
        new = (run_id(s.tool, s.source_id, s.started_ms), commit)
        out[s.source_id] = seen.get((s.tool, s.source_id), new)
    return out


def write(repo: Repo, sources: Sequence[Source], *, dry_run: bool = False) -> Report:
    """Write the runs not imported before; all or nothing per notes ref."""
    report = Report()
    seen = set(_imported(repo))
    new_ids = {s.source_id: run_id(s.tool, s.source_id, s.started_ms) for s in sources}
    head = repo.head_commit()
    by_commit: dict[str, dict[str, dict[str, Any]]] = {}
    series: dict[str, dict[str, dict[str, Any]]] = {}
    kept: list[tuple[str, str, Callable[[], bytes]]] = []
    for s in sources:
        if (s.tool, s.source_id) in seen:
            report.skipped += 1
            continue
        rid = new_ids[s.source_id]
        commit = s.commit if s.commit and repo.has_object(s.commit) else None
        table: dict[str, Any] = {
            "name": s.name or rid[-6:],
            "status": s.status,
            "started": iso(s.started_ms),
            "ended": iso(s.ended_ms),
            "updated": iso(s.ended_ms or s.started_ms),
            "user": s.user,
            "commit": commit or head,
            "params": {k: _storable(k, v) for k, v in s.params.items()},
            "metrics": s.metrics,
            "tags": s.tags,
            IMPORTED: {"from": s.tool, "id": s.source_id, **s.extra},
        }
        if commit is None:
            report.on_head += 1
            why = f"commit {s.commit} is not in this repository" if s.commit else "no commit"
            table[IMPORTED]["placed"] = f"on HEAD at import: {s.tool} recorded {why}"
        if s.parent:
            table["parent"] = new_ids.get(s.parent) or run_id(s.tool, s.parent, s.started_ms)
        if s.note:
            table["note"] = s.note
        if s.series:
            table["series"] = sorted(s.series)
            series.setdefault(table["commit"], {})[rid] = codec.encode_series(s.series)
        for name, read in sorted(s.files.items()):
            kept.append((rid, name, read))
        by_commit.setdefault(table["commit"], {})[rid] = {
            k: v for k, v in table.items() if v is not None and v != {}
        }
        report.imported.append(rid)
    if dry_run or not report.imported:
        return report
    # Artifacts first: a record never names bytes that are not there.
    for rid, name, read in kept:
        info = logged.keep(repo, rid, name, read())
        for runs in by_commit.values():
            if rid in runs:
                runs[rid].setdefault("artifacts", {})[logged.check_name(name)] = info
        report.artifacts += 1
    # Series before summaries (a summary names its series); each ref moves in one commit.
    _put_all(repo, refs.SERIES, series, f"gitmlm: import series of {len(report.imported)} runs")
    _put_all(repo, refs.RUNS, by_commit, f"gitmlm: import {len(report.imported)} runs")
    return report


def _put_all(repo: Repo, ref: str, docs: dict[str, store.Doc], message: str) -> None:
    if not docs:
        return

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for commit, runs in docs.items():
            blob = snap.entries.get(commit)
            doc = dict(store.read_doc(repo, blob)) if blob else {}
            doc.update(runs)
            out[commit] = repo.write_blob(codec.encode_doc(doc))
        return out

    store.update(repo, ref, change, message)
