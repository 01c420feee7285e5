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
    """Delete cached objects not in `live`. Those in `named_dead` (named by records that are
    gone, such as deleted runs) go at once; any other goes only once older than the grace."""
    store = settings.cache(repo)
    out = Swept()
    now = time.time()
    for digest in sorted(store.digests()):
        path = store.path(digest)
        if digest in live:
            out.kept += 1
            continue
        st = path.stat()
        if digest not in named_dead and now - st.st_mtime < GRACE_SECONDS:
            out.kept += 1
            continue
        out.deleted.append(digest)
        out.bytes += st.st_size
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    tmp = store.root / "tmp"
    if not dry_run and tmp.is_dir():
        for entry in os.scandir(tmp):  # leftovers of interrupted writes
            if now - entry.stat().st_mtime > GRACE_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
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
