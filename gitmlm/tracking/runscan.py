"""Reading notes into columns of runs: what the worker processes of a runtable build do, and
what the building process does beside them, for a few notes, or for a failed worker's jobs.

    python -m gitmlm.tracking.runscan GITDIR JOBS_FD JOB_NOTES < note blob ids > records

A job is the JOB_NOTES notes from index job * JOB_NOTES of the list. Each parser (the building
process and every worker) takes the next job number from the shared pipe JOBS_FD (4-byte
records, all written before anyone reads, so each read takes one whole record) until the pipe
is empty, so the work balances itself whatever each process has to do besides. A worker writes
one record per job: RECORD (job number, payload length), then the payload (encode()).
"""

from __future__ import annotations

import marshal
import operator
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import NoneType
from typing import Any

from gitmlm.core import codec
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES, flat_row, flatten
from gitmlm.tracking import listing


@dataclass
class Chunk:
    """The runs of some notes, as columns: one entry per run table read, in note order."""

    ids: list[str] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)
    deleted: list[bool] = field(default_factory=list)
    archived: list[bool] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    """Row key -> values, None where a row lacks the key (flat_row never puts None under a key
    that is not an attribute: TOML has no null)."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(note blob, problem)."""
    live: bool = False
    """Some run table says `running`: its status is worked out at read time, so these rows are
    not kept on disk."""
    full: bool = True
    """Every row has every column: no value in `columns` is a filler None."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Column -> "f" when every value it holds is a float (fillers aside), "s" when every one
    is a string or None, else "": found here, beside the other parsers, so the building
    process need not test a column's values one by one (runtable.Column)."""
    notes: list[tuple[str, int, bool]] = field(default_factory=list)
    """(note blob, its rows, it holds a running run) for each note read, in order: a later
    build reuses the rows of notes that did not change (never of one with a running run)."""


_RUNS: dict[str, store.Doc] = {}
"""The run blobs of the index notes the last scan here read (read only: rows are made from
them). A sweep's note on one commit is an index note that changes with every run; its runs do
not, so the next build, which reads that note only, decodes the new run only."""


def scan(repo: Repo, blobs: Sequence[str]) -> Chunk:
    return scan_encoded(repo, blobs)[0]


def scan_encoded(repo: Repo, blobs: Sequence[str]) -> tuple[Chunk, bytes]:
    """list_runs' per-run work over some notes: each run table as its flat row, with the
    effective status (listing.effective_status); unreadable notes and runs go to `errors`.
    With the Chunk's bytes (encode): marshal refuses the one TOML value it cannot carry, a
    date (a hand edit), and then the notes are read again, each looked over for dates."""
    chunk = _scan(repo, blobs, False)
    try:
        return chunk, encode(chunk)
    except ValueError:
        chunk = _scan(repo, blobs, True)
        return chunk, encode(chunk)


def _scan(repo: Repo, blobs: Sequence[str], look: bool) -> Chunk:
    out = Chunk()
    rows: list[dict[str, Any]] = []
    used: dict[str, store.Doc] = {}
    for blob in blobs:
        first, live = len(rows), False
        try:
            doc = store.parse_note(repo, blob, _RUNS, used)
            if look:
                codec.refuse_dates(doc)
        except codec.NoteError as exc:
            out.errors.append((blob, str(exc)))
            doc = {}
        for rid, table in doc.items():
            row = fast_row(rid, table)
            if row is None:
                live = live or table.get("status") == "running"
                try:
                    run = codec.run_from_dict(rid, table)
                except codec.NoteError as exc:
                    out.errors.append((blob, str(exc)))
                    continue
                run.status = listing.effective_status(run)
                row = flat_row(run)
            out.ids.append(rid)
            out.updated.append(table.get("updated") or "")
            out.deleted.append(table.get("deleted") is True)
            out.archived.append(table.get("archived") is True)
            rows.append(row)
        out.notes.append((blob, len(rows) - first, live))
        out.live = out.live or live
    if used:  # kept for the index notes of this scan only: memory stays bounded
        _RUNS.clear()
        _RUNS.update(used)
    out.full = _transpose(rows, out.columns)
    out.kinds = {name: _kind(name, values) for name, values in out.columns.items()}
    return out


def _transpose(rows: list[dict[str, Any]], columns: dict[str, list[Any]]) -> bool:
    """Rows into columns, None where a row lacks a key; True when every row has the same keys
    in the same order (a sweep's runs): then each column is one `map` in C, with no filler."""
    n = len(rows)
    shapes: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        shapes.setdefault(tuple(row), []).append(i)
    if len(shapes) == 1:
        for key in next(iter(shapes)):
            columns[key] = list(map(operator.itemgetter(key), rows))
        return True
    for i, row in enumerate(rows):
        for key, value in row.items():
            values = columns.get(key)
            if values is None:
                values = columns[key] = [None] * n
            values[i] = value
    return n == 0


def _kind(name: str, values: list[Any]) -> str:
    types = set(map(type, values))  # in C
    if types <= _STRINGS:
        return "s"
    # A None is a filler (the row lacks the column) except in an attribute, where it is a value.
    if types - _STRINGS == {float} and (NoneType not in types or name not in ATTRIBUTES):
        return "f" if str not in types else ""
    return ""


_STRINGS = {str, NoneType}


_NONE: dict[str, Any] = {}
"""What a missing table reads as in fast_row (read only, never written)."""
_NO_LIST: list[Any] = []


def fast_row(rid: str, d: dict[str, Any]) -> dict[str, Any] | None:
    """`flat_row(codec.run_from_dict(rid, d))` for a finished run table as the codec writes it,
    without making a Run (most of a cold listing's Python time); None for any other table, which
    then takes that slow path: a running run, a field of an unexpected type, untag marks.
    tracking_runtable_test checks the two agree."""
    get = d.get
    status, started, commit = get("status"), get("started"), get("commit")
    name, user, host = get("name", ""), get("user", ""), get("host", "")
    checkpoint = get("checkpoint", "clean")
    params, metrics = get("params", _NONE), get("metrics", _NONE)
    tags, datasets = get("tags", _NONE), get("datasets", _NONE)
    if (
        type(status) is not str
        or status == "running"
        or type(started) is not str
        or type(commit) is not str
        or type(name) is not str
        or type(user) is not str
        or type(host) is not str
        or type(checkpoint) is not str
        or "untagged" in d
        or type(params) is not dict
        or type(metrics) is not dict
        or type(tags) is not dict
        or type(datasets) is not dict
        or type(get("artifacts", _NONE)) is not dict
        or type(get("env", _NONE)) is not dict
        or type(get("command", _NO_LIST)) is not list
        or type(get("series", _NO_LIST)) is not list
    ):
        return None
    row: dict[str, Any] = {
        "run_id": rid,
        "name": name,
        "status": status,
        "commit": commit,
        "branch": get("branch"),
        "started": started,
        "ended": get("ended"),
        "user": user,
        "host": host,
        "checkpoint": checkpoint,
        "exit_code": get("exit_code"),
    }
    parent, note = get("parent"), get("note")
    if isinstance(parent, str) and parent:
        row["parent"] = parent
    if isinstance(note, str):
        row["note"] = note
    for key, value in params.items():  # flatten's first level, inline
        if isinstance(value, dict):
            flatten(f"params.{key}", value, row)
        else:
            row[_PARAMS.get(key) or _key(_PARAMS, "params.", key)] = value
    for key, value in metrics.items():
        if type(value) is not float:
            return None
        row[_METRICS.get(key) or _key(_METRICS, "metrics.", key)] = value
    for key, value in tags.items():
        row[f"tags.{key}"] = value
    for key, info in datasets.items():
        if type(info) is not dict:
            return None
        row[f"datasets.{key}"] = info.get("digest", "")
    return row


_PARAMS: dict[str, str] = {}
_METRICS: dict[str, str] = {}
"""Row keys made once per name: every run of a sweep shares the same key objects, whose hashes
are then computed once (`_transpose` hashes each row's keys)."""


def _key(made: dict[str, str], prefix: str, name: str) -> str:
    key = made[name] = prefix + name
    return key


JOB = struct.Struct(">I")
"""A job number in the jobs pipe."""
RECORD = struct.Struct(">IQ")
"""A worker's record head: job number, payload length."""


def next_job(fd: int) -> int | None:
    """The next job from the jobs pipe, None once it is empty."""
    data = os.read(fd, JOB.size)
    return JOB.unpack(data)[0] if len(data) == JOB.size else None


def encode(chunk: Chunk) -> bytes:
    """A Chunk as bytes (marshal: twice as fast as pickle on these lists); ValueError for a
    value marshal cannot carry (a date: scan_encoded)."""
    return marshal.dumps(
        (
            chunk.ids,
            chunk.updated,
            chunk.deleted,
            chunk.archived,
            chunk.columns,
            chunk.errors,
            chunk.live,
            chunk.full,
            chunk.kinds,
            chunk.notes,
        )
    )


def decode(data: bytes) -> Chunk:
    return Chunk(*marshal.loads(data))


def records(data: bytes) -> tuple[dict[int, bytes], int]:
    """Job number -> payload of the whole records at the start of `data` (a worker may be
    writing the next one), and the bytes they take; payloads are checked by decode()."""
    out: dict[int, bytes] = {}
    at = 0
    while at + RECORD.size <= len(data):
        job, size = RECORD.unpack_from(data, at)
        if at + RECORD.size + size > len(data):
            break
        out.setdefault(job, data[at + RECORD.size : at + RECORD.size + size])
        at += RECORD.size + size
    return out, at


def worker() -> None:
    """`python -m gitmlm.tracking.runscan GITDIR JOBS_FD JOB_NOTES` < blob ids: one record
    per job taken, on stdout."""
    blobs = sys.stdin.read().split()
    repo = Repo.open(sys.argv[1])
    fd, size = int(sys.argv[2]), int(sys.argv[3])
    out = sys.stdout.buffer
    while (job := next_job(fd)) is not None:
        _, data = scan_encoded(repo, blobs[job * size : (job + 1) * size])
        out.write(RECORD.pack(job, len(data)))
        out.write(data)
    out.flush()


if __name__ == "__main__":
    worker()
