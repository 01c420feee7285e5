"""Runs: start, log, finish, list, resolve and recover. Domain code: returns data, never prints."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmlm.checkpoints import checkpoint
from gitmlm.checkpoints import placement as attachments
from gitmlm.core import codec, digest, ids, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.data import datasets as data
from gitmlm.errors import MlmError
from gitmlm.tracking import envinfo, journal, liveness

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.stats.profile import Profile
    from gitmlm.tracking.profiles import Options

RUN_ENV = "GITMLM_RUN_ID"
"""Set by `git mlm run` for its child, whose own start_run() then attaches to that run."""
FLUSH_SECONDS = 1.0
HOST = liveness.HOST


class ActiveRun:
    """A live run. Logging is buffered in memory and journalled at least once a second."""

    def __init__(self, repo: Repo, record: Run, *, owner: bool) -> None:
        self.repo = repo
        self.record = record
        self.owner = owner
        self._journal = journal.path(repo.mlm_dir, record.id)
        self._events: list[dict[str, Any]] = []
        self._points: list[list[Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def params(self) -> dict[str, Any]:
        """Params so far, including those given to `git mlm run -p`."""
        return self.record.params

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        checked = {k: codec.check_value("param", k, v) for k, v in params.items()}
        with self._lock:
            self.record.params.update(checked)
            self._events.append({"k": "params", "v": checked})

    def log_metric(self, name: str, value: Any, step: int | None = None) -> None:
        v = codec.check_metric(name, value)
        with self._lock:
            self.record.metrics[name] = v
            self._points.append([name, v, None if step is None else int(step)])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        checked = {k: str(codec.check_value("tag", k, v)) for k, v in tags.items()}
        with self._lock:
            self.record.tags.update(checked)
            self._events.append({"k": "tags", "v": checked})

    def log_artifact(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Record an output file by content digest, so a commit of it can be traced to this run."""
        rel, info = artifact_info(self.repo, Path(path))
        with self._lock:
            self.record.artifacts[rel] = info
            self._events.append({"k": "artifact", "path": rel, "v": info})
        return info

    def log_dataset(
        self,
        name_or_path: str,
        df: pd.DataFrame | None = None,
        *,
        profile: bool | None = None,
        top_k: int = 20,
        hash_values: bool = False,
        min_count: int = 0,
    ) -> dict[str, Any]:
        """Record a dataset the run used and, if asked, a profile of its data for monitoring.

        - `log_dataset("train")` or `log_dataset("data/x.csv")`: the fingerprint of a declared
          dataset or of a path (`profile=True` also profiles its CSV/Parquet files);
        - `log_dataset("train", df)`: the DataFrame's content digest and its profile
          (`profile=False` skips the profile).

        The profile is stored at once under refs/notes/mlm-profiles (a crash later keeps it) and
        `datasets.<name>` gains `profile = true`, `rows` and `columns`. `top_k`, `hash_values`
        (store category values as hashes) and `min_count` (fold rarer categories into `other`)
        are as for `gitmlm.stats.profile.build_profile`.
        """
        built = None
        options = None
        if df is not None or profile:
            from gitmlm.tracking import profiles as profile_store

            options = profile_store.Options(top_k, hash_values, min_count)
        if df is not None:
            import pandas as pd

            if not isinstance(df, pd.DataFrame):
                raise MlmError(
                    f"log_dataset: df must be a pandas DataFrame, not {type(df).__name__}"
                )
            if not isinstance(name_or_path, str) or not name_or_path:
                raise MlmError("log_dataset: name the DataFrame, e.g. log_dataset('train', df)")
            name = name_or_path
            info: dict[str, Any] = {
                "digest": profile_store.frame_digest(df),
                "source": "frame",
                "rows": len(df),
                "columns": len(df.columns),
            }
            if profile is None or profile:
                assert options is not None
                built = profile_store.of_frame(df, options)
        else:
            name, info = data.dataset_for_run(self.repo, name_or_path)
            if profile:
                assert options is not None
                files = _profile_files(self.repo, name_or_path, info)
                built = profile_store.of_files(files, options)
        if built is not None:
            profile_store.put(self.repo, self.record.commit, self.id, name, built)
            info = {**info, **profile_store.summary(built)}
        with self._lock:
            self.record.datasets[name] = info
            self._events.append({"k": "dataset", "name": name, "v": info})
        self.flush()  # rare and worth keeping: journal it now, not within the second
        return info

    def flush(self) -> None:
        with self._lock:
            events = self._events
            if self._points:
                events.append({"k": "metrics", "v": self._points})
            self._events, self._points = [], []
        journal.append(self._journal, events)

    def _start_flusher(self) -> None:
        def loop() -> None:
            while not self._stop.wait(FLUSH_SECONDS):
                self.flush()

        self._thread = threading.Thread(target=loop, name=f"gitmlm-{self.id}", daemon=True)
        self._thread.start()

    def _stop_flusher(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


def _profile_files(repo: Repo, name_or_path: str, info: Mapping[str, Any]) -> list[Path]:
    from gitmlm.tracking import profiles as profile_store

    given = Path(name_or_path)
    if given.exists():
        return profile_store.data_files(given)
    recorded = str(info.get("path", ""))
    if recorded:
        full = repo.workdir / recorded
        if full.exists():
            return profile_store.data_files(full)
        matched = sorted(p for p in repo.workdir.glob(recorded) if p.is_file())
        if matched:
            return matched
    raise MlmError(f"log_dataset: cannot find the files of {name_or_path!r} to profile")


def artifact_info(repo: Repo, path: Path) -> tuple[str, dict[str, Any]]:
    root = repo.workdir.resolve()
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not full.is_relative_to(root):
        raise MlmError(f"artifact {path} is outside the repository {root}")
    if not full.is_file():
        raise MlmError(f"artifact {path} is not a file")
    return full.relative_to(root).as_posix(), {
        "digest": digest.of_file(full),
        "size": full.stat().st_size,
    }


def begin(
    repo: Repo,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    command: list[str] | None = None,
    *,
    code: checkpoint.Code | None = None,
    extra: Mapping[str, Any] | None = None,
    datasets: Mapping[str, dict[str, Any]] | None = None,
) -> ActiveRun:
    """Create a run: its record goes into the notes at once (status running) and its journal.

    `code` is captured from the work tree unless given (a reproduction runs known code);
    `extra` adds record fields (`reproduces`).
    """
    repo.workdir  # noqa: B018 - runs need a work tree; this raises the clear error for bare repos
    head = repo.head()
    if head.commit is None:
        repo.head_commit()  # raises the clear "no commits yet" error
    run_id = ids.new_run_id()
    code = code or checkpoint.capture(repo, run_id)
    now = codec.now()
    record = Run(
        id=run_id,
        name=name or run_id[-6:],
        status="running",
        started=now,
        updated=now,
        commit=code.commit,
        checkpoint=code.checkpoint,
        base=code.base,
        branch=head.branch,
        user=repo.user(),
        host=HOST,
        pid=os.getpid(),
        command=list(command if command is not None else [sys.executable, *sys.argv]),
        params={k: codec.check_value("param", k, v) for k, v in (params or {}).items()},
        tags={k: str(codec.check_value("tag", k, v)) for k, v in (tags or {}).items()},
        datasets=dict(datasets)
        if datasets is not None
        else data.run_datasets(repo, clean=code.checkpoint == "clean"),
        env=envinfo.capture(),
    )
    record.extra.update(code.extra)
    record.extra.update(extra or {})
    if head.branch is None:
        record.extra["detached"] = True
    file = journal.path(repo.mlm_dir, run_id)
    file.parent.mkdir(parents=True, exist_ok=True)
    journal.append(file, [{"k": "start", "record": codec.run_to_dict(record) | {"id": run_id}}])
    store.put_runs(
        repo,
        refs.RUNS,
        record.commit,
        {run_id: codec.run_to_dict(record)},
        f"gitmlm: start run {run_id}",
    )
    return ActiveRun(repo, record, owner=True)


def attach(repo: Repo, run_id: str) -> ActiveRun:
    """Join a run another process owns (the child of `git mlm run`)."""
    folded = journal.fold(journal.path(repo.mlm_dir, run_id))
    if not folded.record:
        raise MlmError(f"{RUN_ENV}={run_id} names no live run in {repo.common_dir}")
    record = codec.run_from_dict(run_id, folded.record)
    journal._merge(record.params, folded.params)
    return ActiveRun(repo, record, owner=False)


def finish(
    repo: Repo, record: Run, status: str, exit_code: int | None = None, ended: str | None = None
) -> Run:
    """Fold the journal into the record and write it (and its series) to the notes."""
    file = journal.path(repo.mlm_dir, record.id)
    folded = journal.fold(file)
    journal._merge(record.params, folded.params)
    record.metrics.update(folded.metrics)
    record.tags.update(folded.tags)
    record.datasets.update(folded.datasets)
    record.artifacts.update(folded.artifacts)
    if folded.env:
        journal._merge(record.env, folded.env)
    record.status = status
    record.exit_code = exit_code
    record.ended = ended or codec.now()
    record.updated = codec.now()
    if folded.series:
        record.series = sorted(folded.series)
        store.put_runs(
            repo,
            refs.SERIES,
            record.commit,
            {record.id: codec.encode_series(folded.series)},
            f"gitmlm: series of run {record.id}",
        )
    # Also reaches the copies on commits the run was attached to while it ran.
    message = f"gitmlm: {status} run {record.id}"
    attachments.put_run(repo, record.commit, record.id, codec.run_to_dict(record), message)
    file.unlink(missing_ok=True)
    return record


_attached: set[str] = set()


@contextlib.contextmanager
def start_run(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Iterator[ActiveRun]:
    """Track a run: `with gitmlm.start_run(name="base", params={"lr": 0.1}) as run: ...`.

    Under `git mlm run` the first start_run of the process attaches to that run; others start
    runs of their own. An exception in the block marks the run failed and propagates.
    """
    repo = Repo.open(path)
    parent = os.environ.get(RUN_ENV)
    if parent and parent not in _attached:
        _attached.add(parent)
        run = attach(repo, parent)
        if name:
            run.set_tag("mlm.name", name)
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        run._events.append({"k": "env", "v": envinfo.capture()})
    else:
        run = begin(repo, name, params, tags)
    run._start_flusher()
    try:
        yield run
    except BaseException:
        run._stop_flusher()
        if run.owner:
            finish(repo, run.record, "failed")
        raise
    run._stop_flusher()
    if run.owner:
        finish(repo, run.record, "finished")


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Listing:
    runs: list[Run]
    commits: dict[str, list[str]] = field(default_factory=dict)
    """Run id -> every commit whose note carries it (a run re-attached after a commit has two)."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(commit, problem) for notes that could not be read; the rest still list."""
    unplaced: int = 0
    """Runs none of whose commits is here (a shallow clone): they cannot be placed."""


def effective_status(run: Run) -> str:
    """A run still `running` whose process on this host is gone has crashed."""
    return liveness.status(run.status, run.host, run.pid)


def list_runs(
    repo: Repo, commits: list[str] | None = None, *, placed_only: bool = False
) -> Listing:
    """Every run in the notes; `placed_only` leaves out runs that cannot be placed (below)."""
    snap = store.snapshot(repo, refs.RUNS)
    docs = store.read_all(repo, snap, commits)
    best: dict[str, Run] = {}
    where: dict[str, list[str]] = {}
    errors = snap.errors
    for commit, doc in docs.items():
        for rid, table in doc.items():
            try:
                run = codec.run_from_dict(rid, table)
            except codec.NoteError as exc:
                errors.append((commit, str(exc)))
                continue
            where.setdefault(rid, []).append(commit)
            old = best.get(rid)
            if old is None or (run.updated or "") > (old.updated or ""):
                best[rid] = run
    # A note on a commit this clone lacks still reads (its blob came with the notes), but the
    # run cannot be placed in history or checked out (a shallow clone): counted, and left out
    # of listings that ask for placed runs only.
    missing = {c for c in docs if not repo.has_object(c)}
    unplaced = [r for r, cs in where.items() if all(c in missing for c in cs)] if missing else []
    if placed_only:
        for rid in unplaced:
            del best[rid], where[rid]
    for run in best.values():
        run.status = effective_status(run)
    ordered = sorted(best.values(), key=lambda r: r.id, reverse=True)
    return Listing(ordered, where, errors, len(unplaced))


def resolve(listing: Listing, prefix: str) -> Run:
    """A run by id or unambiguous id prefix, like an abbreviated git hash."""
    key = prefix.strip().lower()
    if not ids.is_run_id_prefix(key):
        raise MlmError(f"{prefix!r} is not a run id (ids look like {ids.new_run_id()[:12]})")
    found = [r for r in listing.runs if r.id.startswith(key)]
    if not found:
        raise MlmError(f"no run with id {prefix!r}; `git mlm runs` lists them")
    if len(found) > 1:
        names = ", ".join(r.id for r in found[:5])
        raise MlmError(f"run id {prefix!r} is ambiguous: {names}; give more characters")
    return found[0]


def get_run(repo: Repo, run_id: str) -> Run:
    """One run, with its per-step metric series loaded."""
    listing = list_runs(repo)
    run = resolve(listing, run_id)
    snap = store.snapshot(repo, refs.SERIES)
    for commit in listing.commits.get(run.id, [run.commit]):
        docs = store.read_all(repo, snap, [commit])
        table = docs.get(commit, {}).get(run.id)
        if table:
            run.steps = {
                k: {"step": list(v["step"]), "value": list(v["value"])} for k, v in table.items()
            }
            break
    return run


def recover(repo: Repo) -> list[Run]:
    """Finalise this host's crashed runs as `crashed`, keeping what their journal holds."""
    done = []
    for run in list_runs(repo).runs:
        if run.status != "crashed" or run.ended:
            continue
        file = journal.path(repo.mlm_dir, run.id)
        ended = None
        if file.exists():
            from datetime import UTC, datetime

            ended = (
                datetime.fromtimestamp(file.stat().st_mtime, UTC).isoformat().replace("+00:00", "Z")
            )
        done.append(finish(repo, run, "crashed", None, ended))
    return done


@dataclass
class Recorded:
    run: Run
    name: str
    profile: Profile
    files: list[Path]


def record_for_run(
    repo: Repo, run_id: str, path: str, name: str | None = None, options: Options | None = None
) -> Recorded:
    """Profile PATH and store it with an existing run (live or finished).

    The run's `datasets.<name>` table gains `profile = true`, `rows` and `columns` (and the
    data's fingerprint if the run did not record one); a live run
    gets it through its journal (its owner folds it in at the end), a finished one by a rewrite
    of its record. Without `name`, a dataset the run already recorded with this path keeps its
    name; otherwise the path (relative to the repository) is the name, as `log_dataset` does.
    """
    from gitmlm.tracking import profiles

    listing = list_runs(repo)
    run = resolve(listing, run_id)
    target = Path(path)
    files = profiles.data_files(target)
    profile = profiles.of_files(files, options or profiles.Options())
    rel = profiles.relative(repo, target)
    if name is None:
        name = next(
            (n for n, info in run.datasets.items() if info.get("path") == rel),
            rel,
        )
    profiles.put(repo, run.commit, run.id, name, profile)
    info = {**_dataset_info(repo, path, run.datasets.get(name)), **profiles.summary(profile)}
    info.setdefault("path", rel)
    file = journal.path(repo.mlm_dir, run.id)
    if run.status == "running" and file.exists():
        journal.append(file, [{"k": "dataset", "name": name, "v": info}])
    else:
        run.datasets[name] = info
        run.updated = codec.now()
        message = f"gitmlm: profile {name} of run {run.id}"
        attachments.put_run(repo, run.commit, run.id, codec.run_to_dict(run), message)
    run.datasets[name] = info
    return Recorded(run, name, profile, files)


def _dataset_info(repo: Repo, path: str, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """What the run recorded of this dataset, else its fingerprint now (best effort: the profile
    is what was asked for, so a path the data module cannot fingerprint still gets one)."""
    from gitmlm.data import datasets as data

    if recorded:
        return dict(recorded)
    try:
        return dict(data.dataset_for_run(repo, path)[1])
    except MlmError:
        return {}
