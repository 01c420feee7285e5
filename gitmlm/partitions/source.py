"""Where a dataset's files are: one file, a folder (hive-style `key=value/part-*.parquet`
partitions or not), a glob, locally or below an `s3://` (any fsspec) URL.

The files are listed once, in path order, which is the order their rows are profiled in. A
`Source` is plain data (paths and the filesystem's options), so a worker on another machine can
open the same files. Hive partition keys in the path name partitions; they are not columns.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

DATA_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq", ".parq", ".gz", ".bz2"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    spec: str
    """What the user named (for messages and records)."""
    files: tuple[str, ...]
    """Local paths, or paths on the filesystem of `url` (no protocol), in path order."""
    url: str | None = None
    """The URL the files are below (its protocol picks the filesystem); None for local files."""
    options: dict[str, Any] = field(default_factory=dict)
    """The fsspec filesystem's options (endpoint, …); credentials come from the environment."""

    @property
    def remote(self) -> bool:
        return self.url is not None

    @property
    def name(self) -> str:
        """The last part of what the user named: a record's `data`."""
        return self.spec.rstrip("/").rsplit("/", 1)[-1] or self.spec

    def frames(
        self, index: int, chunk_rows: int = 200_000, columns: list[str] | None = None
    ) -> Iterator[pd.DataFrame]:
        """The rows of file `index`, in chunks (a remote file is streamed, not downloaded)."""
        from gitmlm.stats.frames import read_frames, read_parquet_file

        path = self.files[index]
        if self.url is None:
            yield from read_frames(path, chunk_rows=chunk_rows, columns=columns)
            return
        fs = filesystem(self.url, self.options)
        shown = f"{self.url.split('://', 1)[0]}://{path}"
        try:
            f = fs.open(path, "rb")
        except (OSError, ValueError) as exc:
            raise MlmError(f"{shown}: cannot open: {exc}") from exc
        with f:
            yield from read_parquet_file(f, shown, chunk_rows=chunk_rows, columns=columns)

    def all_frames(self, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
        """Every file's rows, in path order: what one process profiles."""
        for i in range(len(self.files)):
            yield from self.frames(i, chunk_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "files": list(self.files),
            "url": self.url,
            "options": self.options,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Source:
        return cls(d["spec"], tuple(d["files"]), d["url"], dict(d["options"]))


def is_url(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file://")


def resolve(repo: Repo | None, spec: str) -> Source:
    """The files `spec` names: a file, a folder of data files (recursively), a glob, or any of
    these below a URL (`s3://bucket/logs/`, `s3://bucket/logs/date=*/part-*.parquet`), reached
    with the settings of the storage remote on the same bucket (docs/storage.md)."""
    if spec.startswith("file://"):
        spec = spec[len("file://") :]
    if not is_url(spec):
        # Absolute: a Spark executor's working directory is not ours.
        return Source(spec, tuple(str(p.resolve()) for p in local_files(spec)))
    from gitmlm.storage import settings, transfer

    remote = settings.for_url(repo, spec) if repo is not None else settings.Remote("data", spec)
    options = transfer.fs_options(remote)
    fs, path = transfer.open_url(remote, options)
    protocol = spec.split("://", 1)[0]
    try:
        if GLOB_CHARS & set(path):
            found = [str(p) for p in fs.glob(path)]
        elif fs.isfile(path):
            found = [path]
        else:
            found = [str(p) for p in fs.find(path)]
    except (OSError, ValueError) as exc:
        raise MlmError(f"{spec}: cannot list: {exc}") from exc
    files = sorted(p for p in found if _is_data(PurePosixPath(p)))
    if not files:
        raise MlmError(f"{spec}: no Parquet files there")
    other = [p for p in files if PurePosixPath(p).suffix.lower() not in PARQUET_SUFFIXES]
    if other:
        raise MlmError(
            f"{protocol}://{other[0]}: data on an object store is read as Parquet only "
            "(convert it, or copy it to a local folder)"
        )
    return Source(spec, tuple(files), f"{protocol}://{path}", options)


def filesystem(url: str, options: dict[str, Any]) -> Any:
    import fsspec

    return fsspec.filesystem(url.split("://", 1)[0], **options)


def _is_data(p: PurePosixPath | Path) -> bool:
    # Spark and Hive leave _SUCCESS, _metadata and .crc files beside the parts.
    hidden = any(part.startswith((".", "_")) and "=" not in part for part in p.parts[-1:])
    return p.suffix.lower() in DATA_SUFFIXES and not hidden


def local_files(spec: str) -> list[Path]:
    if GLOB_CHARS & set(spec):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        found = [p for p in found if _is_data(p)]
        if not found:
            raise MlmError(f"{spec}: no CSV or Parquet files match")
        return found
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_data(p))
        if not found:
            raise MlmError(f"{path}: no CSV or Parquet files in this directory")
        return found
    raise MlmError(f"{path}: no such file or directory")
