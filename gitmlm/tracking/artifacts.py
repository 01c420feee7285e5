"""A run's artifacts: what it logged, and their bytes back from the object store."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitmlm import storage
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.storage import settings
from gitmlm.storage.transfer import Progress
from gitmlm.tracking import journal, record


@dataclass(frozen=True)
class Artifact:
    path: str
    digest: str
    size: int | None
    files: int
    folder: bool
    cached: bool
    """Whether its bytes (for a folder: its listing) are in the local cache."""


def _artifact(repo: Repo, path: str, info: dict[str, Any]) -> Artifact:
    digest = str(info.get("digest", ""))
    folder = info.get("kind") == "dir"
    cached = bool(digest) and settings.cache(repo).has(digest)
    size = info.get("size")
    return Artifact(
        path,
        digest,
        int(size) if isinstance(size, int) else None,
        int(info.get("files", 1)),
        folder,
        cached,
    )


def of_run(repo: Repo, run_id: str) -> tuple[Run, list[Artifact]]:
    run = record.resolve(record.list_runs(repo), run_id)
    return run, [_artifact(repo, p, dict(i)) for p, i in sorted(run.artifacts.items())]


def pick(run: Run, found: list[Artifact], path: str) -> Artifact:
    wanted = path.strip().rstrip("/")
    for a in found:
        if a.path.rstrip("/") == wanted:
            return a
    close = difflib.get_close_matches(wanted, [a.path for a in found], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    known = ", ".join(a.path for a in found) or "none"
    raise MlmError(f"run {run.id[:12]} logged no artifact {path!r}{hint} (logged: {known})")


def get(
    repo: Repo,
    run_id: str,
    path: str | None,
    dest: Path,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write a run's artifact (or all of them) to `dest`: one artifact to `dest` itself, or
    into it under its own name when `dest` is a folder; all artifacts below `dest` at their
    recorded paths."""
    run, found = of_run(repo, run_id)
    if not found:
        raise MlmError(f"run {run.id[:12]} logged no artifacts")
    chosen = [pick(run, found, path)] if path is not None else found
    written: list[str] = []
    for a in chosen:
        if not a.digest:
            raise MlmError(f"artifact {a.path} of run {run.id[:12]} has no digest")
        if path is None:
            target = dest / a.path
        elif dest.is_dir():  # as `cp -r`: into an existing folder, under its own name
            target = dest / Path(a.path).name
        else:
            target = dest
        written += storage.export(
            repo, a.digest, target, folder=a.folder, remote=remote, progress=progress
        )
    return written


def digests(run: Run) -> list[tuple[str, bool]]:
    """(digest, is folder) of every artifact a run logged."""
    return [
        (str(i["digest"]), i.get("kind") == "dir")
        for i in run.artifacts.values()
        if isinstance(i, dict) and i.get("digest")
    ]


def _named(repo: Repo, found: list[tuple[str, bool]]) -> set[str]:
    store = settings.cache(repo)
    out: set[str] = set()
    for digest, folder in found:
        out.add(digest)
        if folder and store.has(digest):
            out.update(store.folder_files(digest).values())
    return out


def live(repo: Repo) -> set[str]:
    """Every object the runs here name, folders' files included when their listing is cached:
    the runs' records (deleted runs left out) and the journals of runs still being written
    here, whose records name their artifacts only when they end."""
    found = [d for run in record.list_runs(repo).runs for d in digests(run)]
    for file in sorted((repo.mlm_dir / "journal").glob("*.jsonl")):
        found += [
            (str(i["digest"]), i.get("kind") == "dir")
            for i in journal.artifacts(file).values()
            if isinstance(i, dict) and i.get("digest")
        ]
    return _named(repo, found)


def named_by(repo: Repo, runs: list[Run]) -> set[str]:
    """Every object these runs name (folders' files included when their listing is cached)."""
    return _named(repo, [d for run in runs for d in digests(run)])
