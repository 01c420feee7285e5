"""Keeping a recorded dataset version's bytes in the object cache (docs/storage.md), so the
version can be checked out after its files change."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gitmlm.core.git import Repo
from gitmlm.storage import objects, settings


def cache(repo: Repo) -> objects.Store:
    """The object cache recorded versions are kept in."""
    return settings.cache(repo)


def store_files(
    repo: Repo, root: Path, files: Mapping[str, tuple[int, str]], algorithm: str
) -> int:
    """Copy files (path below `root` -> (size, hex)) into the cache under their recorded
    digests; returns how many were new. A file that changed since it was hashed is an error."""
    store = settings.cache(repo)
    new = 0
    try:
        for path, (_, hex_) in files.items():
            digest = f"{algorithm}:{hex_}"
            if not store.has(digest):
                store.add_file(root / path, digest)
                new += 1
    finally:
        store.flush()  # small files went into a pack: it becomes visible
    return new
