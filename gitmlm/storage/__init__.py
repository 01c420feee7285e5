"""storage: the bytes behind the digests (datasets, run artifacts, models), in a local cache
and on remotes reached through fsspec. Other parts use this small API (docs/storage.md)."""

from __future__ import annotations

from gitmlm.storage.api import ensure, export, fetch, folder_files, store_path, zip_folder

__all__ = ["ensure", "export", "fetch", "folder_files", "store_path", "zip_folder"]
