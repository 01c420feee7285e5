"""Notes documents in git: cached reads, and read-modify-write under lock + compare-and-swap."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import codec
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

    The cache is keyed by the blob's own id, so it can never be stale.
    """
    cached = cached_doc(repo, blob)
    if cached is not None:
        return cached
    path = _cache_path(repo, blob)
    doc = codec.decode_doc(repo.blob(blob))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only .git still lists, just slower
    return doc


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
        doc: Doc = {}
        blob = snap.entries.get(commit)
        if blob is not None:
            try:
                doc = dict(read_doc(repo, blob))
            except codec.NoteError as exc:
                raise MlmError(
                    f"the note on {commit[:12]} in {ref} is not valid ({exc}); "
                    f"fix or remove it with `git notes --ref {ref} edit {commit[:12]}`"
                ) from exc
        doc.update({rid: dict(r) for rid, r in runs.items()})
        return {commit: repo.write_blob(codec.encode_doc(doc))}

    update(repo, ref, change, message)


Brief = tuple[str, str, str, str, int, dict[str, float]]
"""What `git mlm log` shows of a run: (id, name, status, host, pid, metrics)."""


def briefs(repo: Repo, snap: Snapshot, commits: list[str]) -> dict[str, list[Brief]]:
    """The runs on `commits`, briefly, from one pack file keyed by note blob id.

    `git mlm log` would otherwise open one cache file per commit; the pack makes it one read.
    Entries are keyed by blob id, so the pack is never stale; it is rewritten (atomically)
    only when a note it lacks is asked for, keeping only notes the ref still has.
    """
    path = os.path.join(repo.mlm_dir, "cache", "briefs.json")
    try:
        with open(path, encoding="utf-8") as fh:
            pack: dict[str, list[Brief]] = json.load(fh)
    except (OSError, ValueError):
        pack = {}
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
                )
                for rid, t in sorted(doc.items())
            ]
            pack[blob] = rows
            added = True
        out[commit] = rows
    if added:
        live = set(snap.entries.values())
        pack = {b: rows for b, rows in pack.items() if b in live}
        try:
            tmp = f"{path}.{os.getpid()}.tmp"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(pack, fh)
            os.replace(tmp, path)
        except OSError:
            pass
    return out
