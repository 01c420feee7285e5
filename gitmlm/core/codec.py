"""The TOML schema of notes: run summaries and step series. Encoding and decoding only."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from gitmlm.core.records import Run
from gitmlm.errors import MlmError

SCHEMA = 1
_SCALARS = (str, int, float, bool)
_KNOWN = {
    "name",
    "status",
    "started",
    "ended",
    "updated",
    "user",
    "host",
    "pid",
    "command",
    "exit_code",
    "commit",
    "branch",
    "checkpoint",
    "base",
    "params",
    "metrics",
    "series",
    "tags",
    "datasets",
    "artifacts",
    "env",
}


class NoteError(MlmError):
    """A note that is not a gitmlm document (hand-edited, or from a newer schema)."""


def now() -> str:
    """UTC, microseconds, ISO 8601: sorts as text and parses with fromisoformat."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_value(kind: str, name: str, value: Any) -> Any:
    """A param or tag value TOML can hold, or a clear error naming the key."""
    if not isinstance(name, str) or not name:
        raise MlmError(f"{kind} names must be non-empty strings, got {name!r}")
    if value is None:
        return "None"  # as MLflow stores it: TOML has no null, and a run must not die for it
    if hasattr(value, "item") and not isinstance(value, _SCALARS):  # numpy scalars
        value = value.item()
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {str(k): check_value(kind, f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [check_value(kind, name, v) for v in value]
    raise MlmError(
        f"{kind} {name!r} has a value of type {type(value).__name__}; "
        "use str, int, float, bool, or a list or table of them"
    )


def check_metric(name: str, value: Any) -> float:
    if not isinstance(name, str) or not name:
        raise MlmError(f"metric names must be non-empty strings, got {name!r}")
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MlmError(f"metric {name!r} must be a number, got {type(value).__name__}")
    return float(value)


def check_step(step: Any) -> int | None:
    """A metric's step: None or an integer (numpy integers too), else a clear error."""
    if step is None:
        return None
    if isinstance(step, bool):
        raise MlmError(f"a metric step must be an integer, got {step!r}")
    try:
        return operator.index(step)
    except TypeError:
        raise MlmError(
            f"a metric step must be an integer, got {type(step).__name__} {step!r}"
        ) from None


def run_to_dict(run: Run) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": run.name,
        "status": run.status,
        "started": run.started,
        "ended": run.ended,
        "updated": run.updated,
        "user": run.user,
        "host": run.host,
        "pid": run.pid,
        "command": run.command,
        "exit_code": run.exit_code,
        "commit": run.commit,
        "branch": run.branch,
        "checkpoint": run.checkpoint,
        "base": run.base,
        "params": run.params,
        "metrics": run.metrics,
        "series": run.series,
        "tags": run.tags,
        "datasets": run.datasets,
        "artifacts": run.artifacts,
        "env": run.env,
        **run.extra,
    }
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def visible_tags(d: Mapping[str, Any]) -> dict[str, Any]:
    """The tags of a run table, less those `untagged` marks removed.

    An untag is a mark (`untagged.KEY = true`), not a missing key: sync's merge keeps every key
    either side has, so a plain removal would come back from a teammate's older copy.
    """
    gone = d.get("untagged", {})
    tags = dict(d.get("tags", {}))
    if isinstance(gone, Mapping):
        for key, mark in gone.items():
            if mark is True:
                tags.pop(key, None)
    return tags


def run_from_dict(run_id: str, d: Mapping[str, Any]) -> Run:
    try:
        return Run(
            id=run_id,
            name=str(d.get("name", "")),
            status=str(d["status"]),
            started=str(d["started"]),
            commit=str(d["commit"]),
            ended=d.get("ended"),
            updated=d.get("updated"),
            user=str(d.get("user", "")),
            host=str(d.get("host", "")),
            pid=d.get("pid"),
            command=list(d.get("command", [])),
            exit_code=d.get("exit_code"),
            branch=d.get("branch"),
            checkpoint=str(d.get("checkpoint", "clean")),
            base=d.get("base"),
            params=dict(d.get("params", {})),
            metrics={k: float(v) for k, v in d.get("metrics", {}).items()},
            series=list(d.get("series", [])),
            tags=visible_tags(d),
            datasets=dict(d.get("datasets", {})),
            artifacts=dict(d.get("artifacts", {})),
            env=dict(d.get("env", {})),
            extra={k: v for k, v in d.items() if k not in _KNOWN},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NoteError(f"run {run_id} is missing or has a bad field: {exc}") from exc


def encode_doc(runs: Mapping[str, Mapping[str, Any]]) -> bytes:
    """A note body: `schema = 1` and one table per run id, ids in time order."""
    import tomli_w  # loaded only by writers: readers mostly hit the JSON cache

    doc = {"schema": SCHEMA, "runs": {rid: runs[rid] for rid in sorted(runs)}}
    return tomli_w.dumps(doc).encode()


def loads_toml(text: str) -> dict[str, Any]:
    """A TOML document as tomllib reads it; NoteError if it is not valid TOML.

    rtoml (Rust) parses notes about ten times faster than tomli, and listing is parsing. tomli
    stays the reference: whatever rtoml rejects is read again by tomli, which either reads it
    (a float beyond 1e308 is inf to tomli, an error to rtoml) or gives the error it always
    gave; a byte order mark, which tomli rejects and rtoml skips, goes to tomli first.
    core_codec_toml_test checks the two agree on our notes and on hand-written edge cases.

    Not toml_rs, though 1.7 times faster: it segfaulted `git mlm ui` under concurrent requests
    (its bundled allocator, it seems), and a document nested 10,000 deep overflows its stack.
    rtoml refuses such nesting, and tomli says it is too deep: a note that cannot be read.
    """
    if not text.startswith("\ufeff"):
        try:
            import rtoml

            doc: dict[str, Any] = rtoml.loads(text)
            return doc
        except Exception:  # any refusal is tomli's to judge, below
            pass
    try:  # the standard library's tomllib, compiled (tomli >= 2.1)
        import tomli as tomllib
    except ImportError:  # pragma: no cover - tomli is a dependency; tomllib is the same code
        import tomllib  # type: ignore[no-redef]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NoteError(f"not valid TOML: {exc}") from exc
    except RecursionError as exc:  # nested deeper than tomli goes (400), or keys that long
        raise NoteError(f"cannot be read: {exc}") from exc
    _check_depth(doc)
    return doc


MAX_DEPTH = 400
"""The deepest a note's tables and arrays may nest: readers that recurse (flatten, JSON) fail
far deeper, mid-listing. rtoml refuses more than 80 levels in any one key or value, so only what
tomli reads can go past (a key of 999 parts, say)."""


def _check_depth(doc: dict[str, Any]) -> None:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:  # no recursion: the point is a depth recursion would not survive
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise NoteError(
                f"cannot be read: its tables and arrays nest deeper than {MAX_DEPTH} levels"
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def decode_doc(data: bytes) -> dict[str, dict[str, Any]]:
    try:
        doc = loads_toml(data.decode())
    except UnicodeDecodeError as exc:
        raise NoteError(f"not valid TOML: {exc}") from exc
    if doc.get("schema") != SCHEMA:
        raise NoteError(f"unsupported schema {doc.get('schema')!r} (this gitmlm reads {SCHEMA})")
    runs = doc.get("runs", {})
    if not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values()):
        raise NoteError("`runs` must be a table of run tables")
    return runs


def refuse_dates(value: Any, where: str = "runs") -> None:
    """NoteError naming the spot of a TOML date or time in a note's runs: a hand edit (gitmlm
    writes times as quoted strings) that nothing downstream carries (JSON, marshal, pandas).
    Looking costs a Python call per value, so readers look only when their encoder refuses
    (notes.read_doc, runscan)."""
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_dates(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_dates(item, f"{where}[{i}]")
    elif isinstance(value, (date, time)):
        raise NoteError(
            f"{where} is a bare TOML date or time ({value.isoformat()}), which gitmlm does not "
            f'record; quote it in the note: "{value.isoformat()}"'
        )


def encode_series(series: Mapping[str, Mapping[str, list[float]]]) -> dict[str, Any]:
    """One run's step series as a run table of the series note: {metric: {step, value}}."""
    return {name: {"step": s["step"], "value": s["value"]} for name, s in series.items()}


def is_finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


# --- splicing encoded run tables -------------------------------------------------------------
# Encoding a merged note costs more than merging it. A note written by encode_doc is
# "schema = 1" followed by one block per run, in run id order, each starting at a
# `[runs.<id>]` header; so a merged note whose runs are unchanged copies of either side's can
# be assembled from those blocks, byte for byte what encode_doc would write.

_HEAD = b"schema = 1\n"
_HEADER = re.compile(rb"^\[(?:\[?runs\.([0-9a-z]+)[.\]])?", re.MULTILINE)


def sections(data: bytes) -> dict[str, bytes] | None:
    """Run id -> its encoded block, or None when `data` is not laid out as encode_doc writes.

    Only whole, contiguous per-run blocks qualify: every line that opens a table must open one
    of a run's tables, and the blocks of one run must be adjacent.
    """
    if not data.startswith(_HEAD):
        return None
    found = list(_HEADER.finditer(data))
    if not found or data[len(_HEAD) : found[0].start()] != b"\n":
        return None
    out: dict[str, bytes] = {}
    last = ""
    for i, m in enumerate(found):
        if m.group(1) is None:
            return None  # a table that is not a run's
        rid = m.group(1).decode()
        end = found[i + 1].start() if i + 1 < len(found) else len(data)
        block = data[m.start() : end].rstrip(b"\n")
        if rid in out:
            if rid != last:
                return None
            out[rid] += b"\n\n" + block
        else:
            out[rid] = block
        last = rid
    return out


def concatenate(first: bytes, second: bytes) -> bytes | None:
    """Two notes laid out by encode_doc whose run ids are disjoint and every id in `first`
    sorts before every id in `second` (the usual case: run ids are times) as one note, or None.

    The cheap path of the merge: no splitting, just a check that every table header is a run's.
    """
    for data in (first, second):
        if not data.startswith(_HEAD + b"\n[runs.") or data.count(b"\n[") != data.count(
            b"\n[runs."
        ) + data.count(b"\n[[runs."):
            return None
    return first + second[len(_HEAD) :]


def assemble(blocks: Mapping[str, bytes]) -> bytes:
    """A note from run blocks as `sections` returns them: the inverse of `sections`."""
    return _HEAD + b"".join(b"\n" + blocks[rid] + b"\n" for rid in sorted(blocks))
