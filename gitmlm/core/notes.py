"""Notes documents in git: cached reads, and read-modify-write under lock + compare-and-swap."""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import briefcache, codec
from gitmlm.core.git import CasFailed, Repo
from gitmlm.errors import MlmError

Doc = dict[str, dict[str, Any]]
"""run id -> run table, as one note holds them."""

MAX_ATTEMPTS = 60


@dataclass
class Snapshot:
    """One notes ref at one moment: which commits carry a note and which blob it is."""

    ref: str
    tip: str | None
    entries: dict[str, str]
    errors: list[tuple[str, str]] = field(default_factory=list)


def snapshot(repo: Repo, ref: str) -> Snapshot:
    tip = repo.ref(ref)
    return Snapshot(ref, tip, repo.notes(tip))


def _cache_path(repo: Repo, blob: str) -> str:
    return os.path.join(repo.mlm_dir, "cache", blob[:2], blob[2:] + ".json")


def cached_doc(repo: Repo, blob: str) -> Doc | None:
    """The parsed note if a listing already cached it, else None (nothing is parsed)."""
    try:
        with open(_cache_path(repo, blob), encoding="utf-8") as fh:
            cached: Doc = json.load(fh)
            return cached
    except (OSError, ValueError):
        return None


def read_doc(repo: Repo, blob: str) -> Doc:
    """A note's runs, parsed once per blob: TOML parsing is the cost of listing, JSON is cheap.

    The cache is keyed by the blob's own id, so it can never be stale. An index note (schema 2)
    yields every run of its store.
    """
    cached = cached_doc(repo, blob)
    if cached is not None:
        return cached
    path = _cache_path(repo, blob)
    doc = parse_note(repo, blob)
    try:
        text = json.dumps(doc)  # dumps: the C encoder (dump is pure Python)
    except TypeError:
        codec.refuse_dates(doc)  # a hand-edited date, said with its spot
        raise
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only .git still lists, just slower
    return doc


def parse_note(
    repo: Repo,
    blob: str,
    known: Mapping[str, Doc] | None = None,
    used: dict[str, Doc] | None = None,
) -> Doc:
    """A note's runs, parsed from the blob; NoteError if it is not valid. For an index note,
    `known` holds run blobs parsed before, by blob id, and `used` gets every run blob read
    (a sweep's index note changes with every run, its run blobs do not). What they hold is
    shared: the caller never changes it."""
    data = repo.blob(blob)
    if is_index(data):
        index = parse_index(data)
        if not repo.has_object(index.store):
            raise codec.NoteError(f"its run store {index.store[:12]} is missing")
        doc: Doc = {}
        for run_blob in repo.fanout_files(index.store).values():
            one = known.get(run_blob) if known is not None else None
            if one is None:
                one = codec.decode_doc(repo.blob(run_blob))
            if used is not None:
                used[run_blob] = one
            doc.update(one)
        if len(doc) != index.count:
            raise codec.NoteError(f"it counts {index.count} runs, its store holds {len(doc)}")
    else:
        doc = codec.decode_doc(data)
    return doc


# --- index notes: a commit with many runs ------------------------------------------------------
# A note is one blob, rewritten whole on every change, so a commit holding every run of a sweep
# made each run cost as much as all earlier ones (quadratic). Beyond INLINE_MAX runs a commit's
# note becomes an index (schema 2): a count, the newest runs in brief (what `git log` shows),
# and the id of a tree holding one blob per run (a schema-1 note of that run alone), fanned out
# by the run id's last two characters. That tree is kept reachable under STORE/<commit> in the
# same notes tree, so one compare-and-swap still moves everything and sync carries it.

STORE = "mlm-runs"
"""Top-level folder of a notes tree: STORE/<commit> is the run store of that commit's index."""
INLINE_MAX = 64
"""Runs a schema-1 note holds; a write that would exceed it migrates the note to an index."""
LATEST = 10
"""Runs an index shows in brief (the newest by id)."""
INDEX_SCHEMA = 2
_INDEX_HEAD = b"schema = 2\n"


@dataclass(frozen=True)
class Index:
    count: int
    store: str
    latest: Doc


def is_index(data: bytes) -> bool:
    return data.startswith(_INDEX_HEAD)


def store_key(commit: str) -> str:
    """The `write_notes` key of a commit's run store."""
    return f"{STORE}/{commit}"


def _store_path(run_id: str) -> str:
    return f"{run_id[-2:]}/{run_id}"


_parsed: dict[str, Index] = {}
"""Index notes this process parsed or wrote, by blob id (content-addressed: never stale), so
a run's end does not re-parse the index its start just wrote."""
_PARSED_MAX = 256


def _remember(blob: str, index: Index) -> Index:
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[blob] = index
    return index


def index_of(repo: Repo, blob: str) -> Index | None:
    """The index note `blob` parsed (remembered per blob id), None for a schema-1 note."""
    known = _parsed.get(blob)
    if known is not None:
        return known
    data = repo.blob(blob)
    return _remember(blob, parse_index(data)) if is_index(data) else None


def parse_index(data: bytes) -> Index:
    try:
        doc = codec.loads_toml(data.decode())
    except UnicodeDecodeError as exc:
        raise codec.NoteError(f"not valid TOML: {exc}") from exc
    count, tree, latest = doc.get("count"), doc.get("store"), doc.get("latest", {})
    if (
        doc.get("schema") != INDEX_SCHEMA
        or not isinstance(count, int)
        or not isinstance(tree, str)
        or len(tree) != 40
        or not isinstance(latest, dict)
    ):
        raise codec.NoteError("an index note needs schema = 2, count, store and latest")
    return Index(count, tree, latest)


def _brief(table: Mapping[str, Any]) -> dict[str, Any]:
    """A run's name, status and metrics; {} for tables that are not run records (series)."""
    if not isinstance(table.get("status"), str):
        return {}
    return {k: table[k] for k in ("name", "status", "metrics") if k in table}


_briefs: dict[tuple[str, str], str] = {}
"""(run id, repr of its brief) -> the brief's `[latest.<id>]` tables as TOML: an index is
rewritten at every run's start and end with nine of its ten briefs unchanged."""


def _brief_toml(run_id: str, brief: Mapping[str, Any]) -> str:
    import tomli_w

    key = (run_id, repr(brief))
    known = _briefs.get(key)
    if known is None:
        if len(_briefs) >= _PARSED_MAX:
            _briefs.clear()
        known = _briefs[key] = tomli_w.dumps({"latest": {run_id: brief}})
    return known


def _encode_index(count: int, tree: str, latest: Mapping[str, Mapping[str, Any]]) -> bytes:
    import tomli_w

    newest = {rid: latest[rid] for rid in sorted(latest, reverse=True)}
    if newest and all(newest.values()):
        # What tomli_w writes for the whole document, a table at a time (tested equal).
        body = "\n".join(
            [tomli_w.dumps({"count": count, "store": tree})]
            + [_brief_toml(rid, brief) for rid, brief in newest.items()]
        )
    else:
        body = tomli_w.dumps({"count": count, "store": tree, "latest": newest})
    note = (
        f"# {count} runs on this commit, the newest {len(newest)} in brief below; every run is "
        f"a blob of the tree `store` (git mlm runs lists them all)\n"
    )
    return _INDEX_HEAD + note.encode() + body.encode()


def _newest(latest: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The newest LATEST briefs; notes of other refs (series, profiles) have none to show."""
    shown = sorted(rid for rid, brief in latest.items() if brief)
    return {rid: latest[rid] for rid in shown[-LATEST:]}


def stage_doc(
    repo: Repo, commit: str, doc: Mapping[str, Mapping[str, Any]], known: Mapping[str, str] = {}
) -> dict[str, str | None]:
    """`write_notes` updates that make `doc` the whole note on `commit`, in the layout its size
    calls for. `known` maps run ids to blobs already holding the same table (reused as is)."""
    if len(doc) <= INLINE_MAX:
        return {commit: repo.write_blob(codec.encode_doc(doc))}
    items = {_store_path(rid): known[rid] for rid in doc if rid in known}
    todo = [rid for rid in doc if rid not in known]
    blobs = repo.write_blobs([codec.encode_doc({rid: doc[rid]}) for rid in todo])
    items.update({_store_path(rid): b for rid, b in zip(todo, blobs, strict=True)})
    tree = repo.write_fanout(None, items)
    latest = _newest({rid: _brief(t) for rid, t in doc.items()})
    note = repo.write_blob(_encode_index(len(doc), tree, latest))
    return {commit: note, store_key(commit): tree}


def stage_runs(
    repo: Repo, snap: Snapshot, commit: str, runs: Mapping[str, Mapping[str, Any]]
) -> dict[str, str | None]:
    """`write_notes` updates that add or replace `runs` (by id) in the note on `commit`.

    Costs what the runs written cost, not what the note holds: a small note is spliced (only
    the new runs are encoded), an index gains blobs in its store tree. Raises NoteError when
    the note there is not valid (nothing is ever written into one).
    """
    blob = snap.entries.get(commit)
    if blob is None:
        return stage_doc(repo, commit, runs)
    index = index_of(repo, blob)
    if index is not None:
        paths = {rid: _store_path(rid) for rid in runs}
        added = sum(1 for p in paths.values() if repo.fanout_file(index.store, p) is None)
        tree = repo.write_fanout(
            index.store, {paths[rid]: _write_run(repo, rid, t) for rid, t in runs.items()}
        )
        latest = _newest({**index.latest, **{rid: _brief(t) for rid, t in runs.items()}})
        note = repo.write_blob(_encode_index(index.count + added, tree, latest))
        _remember(note, Index(index.count + added, tree, latest))
        return {commit: note, store_key(commit): tree}
    data = repo.blob(blob)
    doc = read_doc(repo, blob)
    merged = {**doc, **runs}
    if len(merged) > INLINE_MAX:  # the first write beyond the limit migrates to an index
        return stage_doc(repo, commit, merged)
    blocks = codec.sections(data)
    fresh = codec.sections(codec.encode_doc(runs))
    if blocks is None or fresh is None or blocks.keys() != doc.keys():
        return {commit: repo.write_blob(codec.encode_doc(merged))}  # laid out by hand
    return {commit: repo.write_blob(codec.assemble({**blocks, **fresh}))}


def run_table(repo: Repo, snap: Snapshot, commit: str, run_id: str) -> dict[str, Any] | None:
    """One run's table in the note on `commit` (None if absent); NoteError if unreadable."""
    blob = snap.entries.get(commit)
    if blob is None:
        return None
    index = index_of(repo, blob)
    if index is None:
        return read_doc(repo, blob).get(run_id)
    run_blob = repo.fanout_file(index.store, _store_path(run_id))
    if run_blob is None:
        return None
    known = _written.get(run_blob)
    if known is not None and known[0] == run_id:
        table: dict[str, Any] = json.loads(known[1])
        return table
    return codec.decode_doc(repo.blob(run_blob)).get(run_id)


_written: dict[str, tuple[str, str]] = {}
"""Run blobs of index stores this process wrote: blob id -> (run id, its table as JSON), so a
run's end reads the record its start wrote without parsing TOML (JSON gives a fresh copy with
the types TOML would give back: lists, floats, strings)."""


def _write_run(repo: Repo, run_id: str, table: Mapping[str, Any]) -> str:
    """The blob of one run of an index store (a schema-1 note of that run alone)."""
    blob = repo.write_blob(codec.encode_doc({run_id: table}))
    try:
        as_json = json.dumps(table, allow_nan=True)
    except (TypeError, ValueError):
        return blob  # a value JSON cannot carry: read back from TOML
    if len(_written) >= _PARSED_MAX:
        _written.clear()
    _written[blob] = (run_id, as_json)
    return blob


def store_blobs(repo: Repo, data: bytes) -> dict[str, str]:
    """Run id -> blob of an index note's runs ({} for a schema-1 note): reusable as they are."""
    if not is_index(data):
        return {}
    return repo.fanout_files(parse_index(data).store)


def adopt(commit: str, blob: str, data: bytes) -> dict[str, str | None]:
    """`write_notes` updates that take a note as it is (from another side of a merge), with
    the run store an index note names."""
    out: dict[str, str | None] = {commit: blob}
    if is_index(data):
        with contextlib.suppress(codec.NoteError):
            out[store_key(commit)] = parse_index(data).store
    return out


def drop_runs(
    repo: Repo, snap: Snapshot, commit: str, run_ids: Iterable[str]
) -> dict[str, str | None]:
    """`write_notes` updates that remove `run_ids` from the note on `commit` ({} when it holds
    none of them); a note left empty is removed, with its run store. NoteError if unreadable."""
    blob = snap.entries.get(commit)
    if blob is None:
        return {}
    doc = read_doc(repo, blob)
    gone = {rid for rid in run_ids if rid in doc}
    if not gone:
        return {}
    rest = {rid: table for rid, table in doc.items() if rid not in gone}
    data = repo.blob(blob)
    out: dict[str, str | None] = {}
    if is_index(data) and len(rest) <= INLINE_MAX:
        out[store_key(commit)] = None
    if not rest:
        out[commit] = None
        return out
    out.update(stage_doc(repo, commit, rest, store_blobs(repo, data)))
    return out


def read_all(repo: Repo, snap: Snapshot, commits: list[str] | None = None) -> dict[str, Doc]:
    """Docs per annotated commit; unreadable notes go to `snap.errors` and are skipped."""
    out: dict[str, Doc] = {}
    wanted = (
        snap.entries
        if commits is None
        else {c: snap.entries[c] for c in commits if c in snap.entries}
    )
    for commit, blob in wanted.items():
        try:
            out[commit] = read_doc(repo, blob)
        except codec.NoteError as exc:
            snap.errors.append((commit, str(exc)))
    return out


def update(
    repo: Repo,
    ref: str,
    change: Callable[[Snapshot], Mapping[str, str | None]],
    message: str,
) -> str:
    """Apply `change` (snapshot -> new blob per commit) as one notes commit, safely.

    A local lock serialises this machine's writers; the ref move itself is a compare-and-swap,
    so a writer that is not us (git notes, a fetch, another machine on a shared disk) makes us
    re-read and redo the change rather than lose its work.
    """
    with repo.lock(ref):
        for attempt in range(MAX_ATTEMPTS):
            snap = snapshot(repo, ref)
            updates = change(snap)
            if not updates:
                return snap.tip or ""
            new = repo.write_notes(ref, snap.tip, updates, message)
            try:
                repo.update_ref(ref, new, snap.tip, message)
                return new
            except CasFailed:
                time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
    raise MlmError(f"could not update {ref}: it kept moving; try again")


def put_runs(
    repo: Repo, ref: str, commit: str, runs: Mapping[str, Mapping[str, Any]], message: str
) -> None:
    """Add or replace runs (by id) in the note on `commit`; other runs there are kept."""

    def change(snap: Snapshot) -> dict[str, str | None]:
        try:
            return stage_runs(repo, snap, commit, runs)
        except codec.NoteError as exc:
            raise MlmError(
                f"the note on {commit[:12]} in {ref} is not valid ({exc}); "
                f"fix or remove it with `git notes --ref {ref} edit {commit[:12]}`"
            ) from exc

    update(repo, ref, change, message)


Brief = briefcache.Brief


def briefs(repo: Repo, snap: Snapshot, commits: list[str]) -> dict[str, list[Brief]]:
    """The runs on `commits`, briefly, from one pack file keyed by note blob id.

    `git mlm log` would otherwise open one cache file per commit; the pack makes it one read.
    Entries are keyed by blob id, so the pack is never stale; it is rewritten (atomically)
    only when a note it lacks is asked for, keeping only notes the ref still has.
    """
    pack = briefcache.load_pack(repo.mlm_dir)
    out: dict[str, list[Brief]] = {}
    added = False
    for commit in commits:
        blob = snap.entries.get(commit)
        if blob is None:
            continue
        rows = pack.get(blob)
        if rows is None:
            try:
                doc = read_doc(repo, blob)
            except codec.NoteError as exc:
                snap.errors.append((commit, str(exc)))
                continue
            rows = [
                (
                    rid,
                    str(t.get("name", "")),
                    # a tombstone (`git mlm runs rm`) shows as status "deleted": log skips it
                    "deleted" if t.get("deleted") is True else str(t.get("status", "")),
                    str(t.get("host", "")),
                    int(t.get("pid", 0)),
                    dict(t.get("metrics", {})),
                    briefcache.metrics_text(t.get("metrics", {})),
                )
                for rid, t in sorted(doc.items())
            ]
            pack[blob] = rows
            added = True
        out[commit] = rows
    if added:
        live = set(snap.entries.values())
        briefcache.save_pack(repo.mlm_dir, {b: rows for b, rows in pack.items() if b in live})
    return out
