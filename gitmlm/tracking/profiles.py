"""Training data profiles kept with their run, in their own notes ref.

A profile is written to `refs/notes/mlm-profiles` on the run's commit as soon as it is
computed (so a crash of the training script after `log_dataset` keeps it), in the layout of the
series note::

    schema = 1
    [runs.<run-id>.<dataset>]     # Profile.to_dict(): rows, columns.<name>.…
    …

Run listings never read this ref; the run's own `datasets.<name>` table only says that a
profile exists (`profile = true`, `rows`, `columns`). pandas is imported only when a profile is
computed or read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.stats.profile import Profile


@dataclass(frozen=True)
class Options:
    """How a profile is built (see `gitmlm.stats.profile.build_profile`)."""

    top_k: int = 20
    hash_values: bool = False
    min_count: int = 0


def how_to_record(run_id: str) -> str:
    return (
        "record one in the training script with `run.log_dataset(name, df)`, or afterwards "
        f"with `git mlm profile PATH --run {run_id[:12]}`"
    )


# --- computing ---------------------------------------------------------------------------------


def of_frame(df: pd.DataFrame, options: Options = Options()) -> Profile:
    from gitmlm.stats.profile import build_profile

    return build_profile(
        df, top_k=options.top_k, hash_values=options.hash_values, min_count=options.min_count
    )


def of_files(paths: Sequence[Path], options: Options = Options()) -> Profile:
    """One profile of several files read as one table: edges frozen on the first chunk."""
    from gitmlm.partitions import profiling, source

    files = tuple(str(p) for p in paths)
    return profiling.profile(
        source.Source(files[0] if files else "", files),
        top_k=options.top_k,
        hash_values=options.hash_values,
        min_count=options.min_count,
    )


def data_files(path: Path) -> list[Path]:
    """The file itself, or the CSV/Parquet files below a directory, in path order."""
    from gitmlm.partitions.source import local_files

    return local_files(str(path))


def frame_digest(df: pd.DataFrame) -> str:
    """A content digest of a DataFrame (column names, dtypes, values; not the index)."""
    import pandas as pd

    h = hashlib.sha256()
    for name, s in df.items():
        h.update(f"{name}\0{s.dtype}\0".encode())
        try:
            hashed = pd.util.hash_pandas_object(s, index=False)
        except TypeError:  # unhashable cells (lists, dicts): hash their text
            hashed = pd.util.hash_pandas_object(s.astype(str), index=False)
        h.update(hashed.to_numpy().tobytes())
    return "sha256:" + h.hexdigest()


def summary(profile: Profile) -> dict[str, Any]:
    """What the run's `datasets.<name>` table says about its profile."""
    return {"profile": True, "rows": profile.rows, "columns": len(profile.columns)}


# --- storing and reading -----------------------------------------------------------------------


def put(repo: Repo, commit: str, run_id: str, name: str, profile: Profile) -> None:
    """Add (or replace) the profile of dataset `name` of `run_id` in the note on `commit`."""
    table = profile.to_dict()

    def change(snap: store.Snapshot) -> dict[str, str | None]:
        try:
            mine = dict(store.run_table(repo, snap, commit, run_id) or {})
            mine[name] = table
            return store.stage_runs(repo, snap, commit, {run_id: mine})
        except codec.NoteError as exc:
            raise MlmError(
                f"the note on {commit[:12]} in {refs.PROFILES} is not valid ({exc}); fix or "
                f"remove it with `git notes --ref {refs.PROFILES} edit {commit[:12]}`"
            ) from exc

    store.update(repo, refs.PROFILES, change, f"gitmlm: profile {name} of run {run_id}")


def homes(run: Run, commits: Iterable[str] = ()) -> list[str]:
    """Commits whose notes may carry the run's data: its own and those it was attached to."""
    attached = run.extra.get("attached", [])
    out = [run.commit, *commits, *(attached if isinstance(attached, list) else [])]
    return list(dict.fromkeys(c for c in out if isinstance(c, str) and c))


def stored(repo: Repo, run: Run, commits: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Dataset name -> stored profile (as a dict) of `run`, from every commit it lives on."""
    snap = store.snapshot(repo, refs.PROFILES)
    found: dict[str, dict[str, Any]] = {}
    for commit in homes(run, commits):
        blob = snap.entries.get(commit)
        if blob is None:
            continue
        try:
            doc = store.read_doc(repo, blob)
        except codec.NoteError as exc:
            raise MlmError(f"the profile note on {commit[:12]} is not valid: {exc}") from exc
        for name, table in doc.get(run.id, {}).items():
            if isinstance(table, dict):
                found.setdefault(name, table)
    return found


def load(
    repo: Repo, run: Run, commits: Iterable[str] = (), dataset: str | None = None
) -> tuple[str, Profile]:
    """(dataset name, profile) of a run; which one when it has several: `dataset`."""
    from gitmlm.stats.profile import Profile

    found = stored(repo, run, commits)
    if not found:
        raise MlmError(
            f"run {run.id[:12]} ({run.name}) has no recorded data profile; " + how_to_record(run.id)
        )
    if dataset is None:
        if len(found) > 1:
            names = ", ".join(sorted(found))
            raise MlmError(
                f"run {run.id[:12]} has profiles of {names}: pick one with --dataset NAME"
            )
        dataset = next(iter(found))
    elif dataset not in found:
        names = ", ".join(sorted(found))
        raise MlmError(f"run {run.id[:12]} has no profile of {dataset!r} (it has: {names})")
    try:
        return dataset, Profile.from_dict(found[dataset])
    except MlmError as exc:
        raise MlmError(f"the stored profile of {dataset!r} of run {run.id[:12]}: {exc}") from exc


# --- `git mlm profile PATH --run ID` -----------------------------------------------------------


def relative(repo: Repo, path: Path) -> str:
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    root = repo.workdir.resolve()
    return full.relative_to(root).as_posix() if full.is_relative_to(root) else str(full)
