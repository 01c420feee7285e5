"""Where a scan's model and training data come from: the registry or a run, and the work tree
or git, each checked against the digest that was recorded.

A model version names its artifact by path and sha256 digest (`gitmlm.models.ops.resolved`).
The artifact is read from the work tree when the file there has that digest, else from the
version's commit. The training data (for contamination and overfitting) is the run's recorded
datasets, read from the work tree only when their digest still matches the run's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gitmlm import storage
from gitmlm.core import digest as artifact_digest
from gitmlm.core import ids, tags
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.data import datasets as data
from gitmlm.errors import MlmError
from gitmlm.models import ops
from gitmlm.models import state as registry
from gitmlm.scan import loading
from gitmlm.stats import frames
from gitmlm.tracking import record as tracking

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".parq", ".csv.gz")


@dataclass
class Subject:
    """The model being scanned and where its results are kept."""

    label: str
    """`churn@v1.2.0`, `run 01hx…` or a file path: what the report and the note name."""
    path: str
    content: bytes
    digest: str
    origin: str
    commit: str | None = None
    """The note goes on this commit (the version's, else the run's); None: nothing recorded."""
    model: str | None = None
    version: str | None = None
    stage: str | None = None
    run: Run | None = None


def resolve(
    repo: Repo | None, spec: str, artifact: str | None = None, *, read: bool = True
) -> Subject:
    """MODEL as a registry reference (churn, churn@v1.2.0, churn#staging), a run id, or a file;
    with `read` False (predictions given as columns) the artifact itself is not read."""
    if repo is None or (Path(spec).is_file() and not is_model(repo, spec)):
        return _file(spec)
    if is_model(repo, spec):
        r = ops.resolved(repo, spec)
        if not r.path:
            raise MlmError(f"{r.model} {r.version} names no artifact path; declare its path")
        content, origin = (
            artifact_bytes(repo, r.path, r.digest, r.commit) if read else (b"", "not read")
        )
        run = resolve_run(repo, r.run) if r.run else None
        return Subject(
            f"{r.model}@{r.version}",
            r.path,
            content,
            r.digest,
            origin,
            r.commit,
            r.model,
            r.version,
            r.stage,
            run,
        )
    try:
        run = resolve_run(repo, spec)
    except MlmError:
        known = ", ".join(sorted(registry.load(repo).models)) or "none registered"
        raise MlmError(
            f"{spec!r} is neither a registered model (known: {known}), a run id, nor a file"
        ) from None
    if not read:
        return Subject(f"run {run.id[: ids.SHORT]}", "", b"", "", "not read", run.commit, run=run)
    path = artifact or _model_artifact(run)
    digest = str(run.artifacts.get(path, {}).get("digest", ""))
    if not digest:
        raise MlmError(f"run {run.id[: ids.SHORT]} logged no artifact {path}")
    content, origin = artifact_bytes(repo, path, digest, run.commit)
    return Subject(f"run {run.id[: ids.SHORT]}", path, content, digest, origin, run.commit, run=run)


def is_model(repo: Repo, spec: str) -> bool:
    try:
        name = tags.parse_spec(spec).model
    except MlmError:
        return False
    return name in registry.load(repo).models


def resolve_run(repo: Repo, run_id: str) -> Run:
    return tracking.resolve(tracking.list_runs(repo), run_id)


def _model_artifact(run: Run) -> str:
    found = [p for p in run.artifacts if Path(p).suffix.lower() in loading.SUFFIXES]
    if len(found) != 1:
        listed = ", ".join(sorted(run.artifacts)) or "none"
        raise MlmError(
            f"run {run.id[: ids.SHORT]} logged {len(found)} model files (artifacts: {listed}); "
            "name one with --artifact PATH"
        )
    return found[0]


def _file(spec: str) -> Subject:
    p = Path(spec)
    if not p.is_file():
        raise MlmError(f"{spec!r}: no such model file (and no repository to look it up in)")
    content = p.read_bytes()
    return Subject(str(p), str(p), content, artifact_digest.of_bytes(content), "file")


def artifact_bytes(repo: Repo, path: str, digest: str, commit: str) -> tuple[bytes, str]:
    """The artifact with `digest`: the work tree's file if it matches, else the commit's blob."""
    here = repo.workdir / path
    if here.is_file():
        content = here.read_bytes()
        if artifact_digest.lfs_oid(content) is None and artifact_digest.of_bytes(content) == digest:
            return content, "work tree"
    blob = repo.file_at(commit, path)
    # An LFS pointer has the right digest but not the content: that needs the object store.
    if (
        blob is not None
        and artifact_digest.lfs_oid(blob) is None
        and artifact_digest.of_bytes(blob) == digest
    ):
        return blob, f"commit {commit[:10]}"
    # Overwritten since, or stored only as an LFS pointer: the object store has the bytes by
    # digest (the cache, else the default storage remote), checked before they are used.
    try:
        return storage.fetch(repo, digest).read_bytes(), "object store"
    except MlmError as exc:
        raise MlmError(
            f"{path} with digest {digest[:19]}… is neither in the work tree, nor in commit "
            f"{commit[:10]}, nor in the object store ({exc})"
        ) from None


@dataclass
class Training:
    frames: list[pd.DataFrame] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Why each recorded dataset was not used, one line each."""


def training(
    repo: Repo | None, run: Run | None, extra: list[str], evaluation: Path | None = None
) -> Training:
    """The run's recorded datasets whose work-tree digest still matches, plus `--train` files.

    A run records every declared dataset, so a declared holdout is among them: the evaluation
    file itself is never taken as training data."""
    out = Training()
    for path in extra:
        out.frames.append(read_table(Path(path)))
        out.used.append(path)
    if repo is None or run is None:
        return out
    for name, info in sorted(run.datasets.items()):
        path, digest = str(info.get("path", "")), str(info.get("digest", ""))
        if not path:
            out.skipped.append(f"{name}: logged from a DataFrame, no file to read")
            continue
        try:
            now = data.current_digest(repo, name, path)
        except MlmError as exc:
            out.skipped.append(f"{name}: {exc}")
            continue
        if now != digest:
            out.skipped.append(f"{name}: {path} has changed since the run ({now[:19]}…)")
            continue
        same = evaluation.resolve() if evaluation is not None else None
        files = [f for f in _tables(repo.workdir / path) if f.resolve() != same]
        if not files:
            out.skipped.append(
                f"{name}: no CSV or Parquet file under {path} but the evaluation data"
            )
            continue
        out.frames.extend(read_table(f) for f in files)
        out.used.append(f"{name} ({path})")
    return out


def _tables(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(TABLE_SUFFIXES))
    return []


def read_table(p: Path) -> pd.DataFrame:
    parts = list(frames.read_frames(p))
    if not parts:
        raise MlmError(f"{p}: no rows")
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
