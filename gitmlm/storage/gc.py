"""Dropping objects nothing names: from the cache always, from a remote only when asked."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Set
from dataclasses import dataclass, field

from gitmlm.core.git import Repo
from gitmlm.storage import settings, transfer

GRACE_SECONDS = 3600
"""Objects younger than this stay: a run may have stored them before its record was written."""


@dataclass
class Swept:
    deleted: list[str] = field(default_factory=list)
    kept: int = 0
    bytes: int = 0
    remote: str = ""


def sweep_cache(
    repo: Repo, live: set[str], *, dry_run: bool = False, named_dead: Set[str] = frozenset()
) -> Swept:
    """Delete cached objects not in `live`, loose or packed. Those in `named_dead` (named by
    records that are gone, such as deleted runs) go at once; any other goes only once every
    copy of it is older than the grace (a packed object's age is its pack's)."""
    store = settings.cache(repo)
    store.flush()
    out = Swept()
    now = time.time()
    newest: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for digest in store.loose_digests():
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(store.loose(digest))
            newest[digest] = st.st_mtime
            sizes[digest] = st.st_size
    for index, _, entries in store.packs.indexes():
        try:
            made = os.stat(index).st_mtime
        except FileNotFoundError:
            continue
        for digest, entry in entries.items():
            newest[digest] = max(newest.get(digest, 0.0), made)
            sizes[digest] = sizes.get(digest, 0) + entry.length
    for digest in sorted(newest):
        if digest in live or (digest not in named_dead and now - newest[digest] < GRACE_SECONDS):
            out.kept += 1
            continue
        out.deleted.append(digest)
        out.bytes += sizes[digest]
    if dry_run:
        return out
    store.delete(set(out.deleted))
    old = [*store.packs.orphans()]  # packs of writers that stopped before indexing them
    tmp = store.root / "tmp"
    if tmp.is_dir():
        old.extend(entry.path for entry in os.scandir(tmp))  # leftovers of interrupted writes
    for path in old:
        with contextlib.suppress(FileNotFoundError):
            if now - os.stat(path).st_mtime > GRACE_SECONDS:
                os.unlink(path)
    return out


def sweep_remote(repo: Repo, live: set[str], remote: str | None, *, dry_run: bool) -> Swept:
    target = settings.pick(repo, remote)
    conn = transfer.connect(repo, target)
    there = transfer.present(conn)
    out = Swept(remote=target.name)
    out.deleted = sorted(d for d in there if d not in live)
    out.kept = len(there) - len(out.deleted)
    if conn.local:  # a folder's listing carries no sizes
        out.bytes = sum(os.stat(conn.path(d)).st_size for d in out.deleted)
    else:
        out.bytes = sum(there[d] for d in out.deleted)
    if not dry_run:
        transfer.delete(conn, out.deleted)
    return out
