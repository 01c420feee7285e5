"""`git mlm gc` and `gitmlm.gc()`: deleted runs' data first, then the objects nothing names.

Runs are collected first (tracking/collect.py: series and profile tables, pin refs, kept
copies; the tombstones stay), so their artifacts have left the live set when the object cache
and, when asked, a storage remote are swept (storage/gc.py). Objects only collected runs named
go at once; other unnamed objects wait out the grace hour. Models lives above tracking, data
and storage, which is why the whole sweep is put together here, beside `live_objects`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitmlm.core.git import Repo
from gitmlm.models import fetch
from gitmlm.storage import gc as sweep
from gitmlm.tracking import collect


@dataclass
class Report:
    runs: collect.Collected
    cache: sweep.Swept
    remote: sweep.Swept | None
    dry_run: bool


def gc(
    repo: Repo, *, dry_run: bool = False, remote: str | None = None, on_remote: bool = False
) -> Report:
    """Collect deleted runs and sweep the cache (and the storage remote `remote`, or the
    default one, when `on_remote`); `dry_run` says what would go and changes nothing."""
    runs = collect.collect(repo, dry_run=dry_run)
    live = fetch.live_objects(repo)  # deleted runs are never in it, collected or not
    cache = sweep.sweep_cache(repo, live, dry_run=dry_run, named_dead=runs.objects - live)
    far = sweep.sweep_remote(repo, live, remote, dry_run=dry_run) if on_remote else None
    return Report(runs, cache, far, dry_run)
