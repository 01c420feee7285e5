"""`git mlm reproduce` and `git mlm checkout`: a run's exact code, away from the user's tree."""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm.checkpoints import checkpoint
from gitmlm.checkpoints import rules as coderules
from gitmlm.core import config
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.data import datasets as data
from gitmlm.errors import MlmError
from gitmlm.tracking import launch
from gitmlm.tracking import record as tracking

_WILD = ("*", "?", "[")


def code_commit(repo: Repo, run: Run, homes: list[str]) -> str:
    """The commit holding the run's code: its own (a checkpoint for a snapshot run), or a
    commit it was re-attached to, which has the same code."""
    for commit in dict.fromkeys([run.commit, *homes, *run.extra.get("attached", [])]):
        if isinstance(commit, str) and repo.has_object(commit):
            return commit
    where = "its checkpoint" if run.checkpoint == "snapshot" else "its commit"
    raise MlmError(
        f"the code of run {run.id[:12]} ({where} {run.commit[:12]}) is not in this repository; "
        "fetch it with `git mlm sync` (or `git fetch origin 'refs/mlm/*:refs/mlm/*'`)"
    )


def find(repo: Repo, run_id: str) -> tuple[Run, str]:
    listing = tracking.list_runs(repo)
    run = tracking.resolve(listing, run_id)
    return run, code_commit(repo, run, listing.commits.get(run.id, []))


def export(repo: Repo, commit: str, dest: Path) -> None:
    """Write a commit's tree into `dest` (new or empty); the repository is not touched."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MlmError(f"{dest} exists and is not an empty folder; name a new folder")
    archive = repo.run_git_bytes("archive", "--format=tar", commit)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")  # "tar": symlinks in the code may point anywhere


@contextlib.contextmanager
def worktree(repo: Repo, commit: str, keep: bool = False) -> Iterator[Path]:
    """A temporary linked worktree at `commit` (detached); removed afterwards unless `keep`."""
    parent = Path(tempfile.mkdtemp(prefix="gitmlm-reproduce-"))
    path = parent / "code"
    repo.run_git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path
    finally:
        if not keep:
            repo.run_git("worktree", "remove", "--force", str(path), check=False)
            shutil.rmtree(parent, ignore_errors=True)
            repo.run_git("worktree", "prune", check=False)


def link_inputs(source: Path, target: Path, run: Run) -> list[str]:
    """Link what the checkpoint left out but the run may read (declared datasets, skipped
    files) from the user's work tree into the worktree; returns the linked paths."""
    wanted: list[str] = []
    for decl in coderules.dataset_globs(config.load(target)):
        if any(c in decl for c in _WILD):
            wanted += [p.relative_to(source).as_posix() for p in source.glob(decl.strip("/"))]
        else:
            wanted.append(decl.strip("/"))
    wanted += [p for p, why in run.extra.get("skipped", {}).items() if why != "repository"]
    linked = []
    for rel in dict.fromkeys(wanted):
        src, dst = source / rel, target / rel
        if not src.exists() or dst.exists() or dst.is_symlink():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src.resolve(), target_is_directory=src.is_dir())
        linked.append(rel)
    return linked


def check_datasets(run: Run, current: dict[str, dict[str, Any]]) -> None:
    """Every dataset the run recorded is here with the same digest, or a clear error."""
    for name, info in sorted(run.datasets.items()):
        then = info.get("digest")
        now = current.get(name, {}).get("digest")
        if now is None:
            raise MlmError(
                f"dataset {name!r} ({info.get('path', '?')}) that run {run.id[:12]} used is not "
                "available here; restore it, or pass --no-data-check"
            )
        if now != then:
            raise MlmError(
                f"dataset {name!r} differs from the version run {run.id[:12]} used "
                f"({str(now)[:19]}… now, {str(then)[:19]}… then); restore that version, "
                "or pass --no-data-check"
            )


def command_in(run: Run, source: Path, target: Path) -> list[str]:
    """The recorded command, with absolute paths into the user's work tree moved into the
    worktree (a Python API run records its script by absolute path)."""
    out = []
    root = str(source.resolve())
    for arg in run.command:
        if arg == root or arg.startswith(root + os.sep):
            arg = str(target) + arg[len(root) :]
        out.append(arg)
    return out


@dataclass(frozen=True)
class MetricDiff:
    name: str
    original: float | None
    reproduced: float | None
    ok: bool

    @property
    def abs_diff(self) -> float | None:
        if self.original is None or self.reproduced is None:
            return None
        return abs(self.reproduced - self.original)

    @property
    def rel_diff(self) -> float | None:
        d = self.abs_diff
        if d is None or self.original is None or self.reproduced is None:
            return None
        scale = max(abs(self.original), abs(self.reproduced))
        return 0.0 if d == 0 else (d / scale if scale else math.inf)


def compare(a: Run, b: Run, rtol: float, atol: float) -> list[MetricDiff]:
    out = []
    for name in sorted(set(a.metrics) | set(b.metrics)):
        x, y = a.metrics.get(name), b.metrics.get(name)
        if x is None or y is None:
            ok = False
        elif math.isnan(x) or math.isnan(y):
            ok = math.isnan(x) and math.isnan(y)
        else:
            ok = math.isclose(x, y, rel_tol=rtol, abs_tol=atol)
        out.append(MetricDiff(name, x, y, ok))
    return out


@dataclass
class Reproduction:
    original: Run
    run: Run
    exit_code: int
    metrics: list[MetricDiff]
    linked: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    """path -> "same" | "different" | "missing", for the outputs the original recorded."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and all(m.ok for m in self.metrics)


def reproduce(
    repo: Repo,
    run_id: str,
    rtol: float = 1e-6,
    atol: float = 0.0,
    *,
    check_data: bool = True,
    keep: bool = False,
    on_start: Any = None,
) -> Reproduction:
    """Re-run a run's command on its exact code in a temporary worktree, as a new run linked
    to it (`reproduces`), and compare the metrics."""
    original, commit = find(repo, run_id)
    if not original.command:
        raise MlmError(f"run {original.id[:12]} recorded no command to run again")
    source = repo.workdir
    # Fingerprinted in the user's tree: the worktree only links to that data, and a link out
    # of a work tree is (rightly) not a dataset there.
    current = data.run_datasets(repo, clean=False)
    if check_data:
        check_datasets(original, current)
    with worktree(repo, commit, keep) as path:
        linked = link_inputs(source, path, original)
        wt = Repo.open(path)
        same = commit == original.commit
        code = checkpoint.Code(
            commit, original.checkpoint if same else "clean", original.base if same else None
        )
        extra: dict[str, Any] = {"reproduces": original.id}
        if original.extra.get("attached"):
            extra["attached"] = list(original.extra["attached"])  # show it where the original is
        active = tracking.begin(
            wt,
            f"{original.name}-reproduced",
            original.params,
            original.tags,
            command_in(original, source, path),
            code=code,
            extra=extra,
            datasets=current,
        )
        if on_start is not None:
            on_start(active.record, path)
        cwd = path / original.extra.get("cwd", "")
        record, exit_code = launch.execute(wt, active, active.record.command, cwd)
    artifacts = {}
    for p, info in original.artifacts.items():
        new = record.artifacts.get(p)
        artifacts[p] = (
            "missing"
            if new is None
            else "same"
            if new.get("digest") == info.get("digest")
            else "different"
        )
    return Reproduction(
        original, record, exit_code, compare(original, record, rtol, atol), linked, artifacts
    )
