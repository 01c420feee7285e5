"""Runs: start, log, finish, list, resolve and recover. Domain code: returns data, never prints."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
from gitmlm.tracking import envinfo, heartbeat, journal, listing, liveness, logged, sysmetrics

# Reading runs lives in tracking.listing (light: hooks and `git mlm models` load it without the
# data and checkpoint machinery); these names stay here for the callers that record and read.
from gitmlm.tracking.listing import Listing as Listing
from gitmlm.tracking.listing import effective_status as effective_status
from gitmlm.tracking.listing import fetch_hint as fetch_hint
from gitmlm.tracking.listing import get_run as get_run
from gitmlm.tracking.listing import list_runs as list_runs
from gitmlm.tracking.listing import load_steps as load_steps
from gitmlm.tracking.listing import resolve as resolve

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.stats.profile import Profile
    from gitmlm.tracking.profiles import Options

RUN_ENV = "GITMLM_RUN_ID"
"""Set by `git mlm run` for its child, whose own start_run() then attaches to that run."""
NAMED_ENV = "GITMLM_RUN_NAMED"
"""Set by `git mlm run --name`: the command line named the run, so the script's name does not."""
HOST = liveness.HOST
PARENT = "parent"
"""Record field: the id of the run this one ran under (a second start_run under `git mlm run`)."""
OVERRIDDEN = "overridden"
"""Record field: the params (dotted keys) where `git mlm run -p` replaced the script's value."""
HEARTBEAT = listing.HEARTBEAT
"""Record field: how often (seconds) the live run refreshes `updated`, its heartbeat."""


class ActiveRun:
    """A live run. Every logging call is written to the journal before it returns."""

    def __init__(self, repo: Repo, record: Run, *, owner: bool) -> None:
        self.repo = repo
        self.record = record
        self.owner = owner
        self.named = False
        """The run was given a name at its start (`git mlm run --name`)."""
        self._journal = journal.Appender(journal.path(repo.mlm_dir, record.id))
        self._steps: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._beating = False
        self._sampler: sysmetrics.Sampler | None = None

    def sample_system_metrics(self, every: float | None = None) -> None:
        """Log CPU, memory and GPU use as step series until the run ends (tracking.md)."""
        if self._sampler is None:
            every = sysmetrics.interval() if every is None else every
            self._sampler = sysmetrics.Sampler(self.log_metrics, every).start()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def params(self) -> dict[str, Any]:
        """Params so far, including those given to `git mlm run -p`."""
        return self.record.params

    def _write(self, event: dict[str, Any]) -> None:
        # Written before the call returns: a SIGKILL right after loses nothing logged.
        self._journal.append([event])

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        checked = {k: codec.check_value("param", k, v) for k, v in params.items()}
        with self._lock:
            journal._merge(self.record.params, checked)
            self._write({"k": "params", "v": checked})

    def log_metric(self, name: str, value: Any, step: int | None = None) -> None:
        self.log_metrics({name: value}, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        checked_step = codec.check_step(step)
        values = {name: codec.check_metric(name, v) for name, v in metrics.items()}
        if not values:
            return
        with self._lock:
            for name, v in values.items():
                if name not in self.record.metrics or journal.summary_wins(
                    self._steps.get(name), checked_step
                ):
                    self.record.metrics[name] = v
                    self._steps[name] = checked_step
            self._write({"k": "metrics", "v": [[n, v, checked_step] for n, v in values.items()]})

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        checked = {k: str(codec.check_value("tag", k, v)) for k, v in tags.items()}
        with self._lock:
            self.record.tags.update(checked)
            self._write({"k": "tags", "v": checked})

    def log_artifact(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Record an output file or folder by content digest and keep its bytes in the object
        cache (`git mlm artifacts get` brings them back; a commit of it traces to this run)."""
        rel, info = artifact_info(self.repo, Path(path))
        self._add_artifacts({rel: info})
        return info

    def log_artifacts(self, folder: str | os.PathLike[str]) -> dict[str, Any]:
        """A folder and every file under it (as MLflow's log_artifacts), stored as one entry."""
        return self.log_artifact(folder)

    def log_text(self, text: str, name: str) -> dict[str, Any]:
        """Keep `text` as the run's artifact `name` (e.g. "notes/summary.txt")."""
        if not isinstance(text, str):
            raise MlmError(f"log_text: expected a str, got {type(text).__name__}")
        return self.log_bytes(text.encode(), name)

    def log_dict(self, value: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Keep a dict as JSON (or YAML for a .yaml/.yml `name`)."""
        return self.log_bytes(logged.dict_bytes(value, name), name)

    def log_figure(self, figure: Any, name: str) -> dict[str, Any]:
        """Keep a matplotlib figure as PNG (or the format `name` ends with)."""
        return self.log_bytes(logged.figure_bytes(figure, name), name)

    def log_table(self, table: Any, name: str) -> dict[str, Any]:
        """Keep a DataFrame (or dict of columns) as JSON (MLflow's layout) or CSV (.csv)."""
        return self.log_bytes(logged.table_bytes(table, name), name)

    def log_bytes(self, data: bytes, name: str) -> dict[str, Any]:
        """Keep bytes made in memory as the run's artifact `name`, in the object store like
        log_artifact's (docs/tracking.md)."""
        info = logged.keep(self.repo, self.id, name, data)
        self._add_artifacts({logged.check_name(name): info})
        return info

    def log_file(self, path: str | os.PathLike[str], name: str) -> dict[str, Any]:
        """Keep a file or folder from outside the work tree (what a framework saved) as the
        run's artifact `name`, streamed into the object store like log_artifact's."""
        info = logged.keep_path(self.repo, self.id, name, Path(path))
        self._add_artifacts({logged.check_name(name): info})
        return info

    def _add_artifacts(self, files: Mapping[str, dict[str, Any]]) -> None:
        with self._lock:
            for rel, info in files.items():
                self.record.artifacts[rel] = info
                self._write({"k": "artifact", "path": rel, "v": info})

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
            declared = self.record.datasets.get(name)
            if declared and declared.get("source") != "frame":
                # The declared files stay the dataset's identity (filters, diffs, gates and
                # reproduce compare it with the lock); the frame read from them is kept beside.
                info = {
                    **declared,
                    "frame_digest": info["digest"],
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
            self._write({"k": "dataset", "name": name, "v": info})
        return info

    def flush(self) -> None:
        """Nothing to do: every call is journalled before it returns (kept for callers)."""

    def start_heartbeat(self) -> None:
        """Refresh the record's `updated` stamp while the run lives (see liveness.py)."""
        every = float(self.record.extra.get(HEARTBEAT) or liveness.beat_every())

        def beat() -> None:
            attachments.touch_running(
                self.repo, self.record.commit, self.id, {"updated": codec.now()}
            )

        heartbeat.start(self.id, every, beat)
        self._beating = True

    def stop_heartbeat(self) -> None:
        if self._beating:
            heartbeat.stop(self.id)
            self._beating = False

    def close(self) -> None:
        """The run's logging is over: stop sampling and the heartbeat, close the journal."""
        if self._sampler is not None:
            self._sampler.stop()
        self.stop_heartbeat()
        self._journal.close()


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
    """Store a file's or a folder's bytes in the object cache now (a later overwrite loses
    nothing) and return its repo-relative path and record: digest, size (and files for a
    folder, whose digest is that of its listing: docs/storage.md)."""
    from gitmlm import storage

    root = repo.workdir.resolve()
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not full.is_relative_to(root):
        raise MlmError(f"artifact {path} is outside the repository {root}")
    if not full.exists():
        raise MlmError(f"artifact {path} does not exist")
    if not full.is_file() and not full.is_dir():
        raise MlmError(f"artifact {path} is not a file or a folder")
    stored, size, files = storage.store_path(repo, full)
    info: dict[str, Any] = {"digest": stored, "size": size}
    if full.is_dir():
        info |= {"files": files, "kind": "dir"}
    elif size <= digest.LFS_POINTER_MAX:
        # An unsmudged Git LFS pointer stands for its object (core/digest.py): the run names
        # the oid, whose bytes live in LFS, not the pointer's.
        info["digest"] = digest.lfs_oid(full.read_bytes()) or stored
    return full.relative_to(root).as_posix(), info


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
    parent: str | None = None,
) -> ActiveRun:
    """Create a run: its record goes into the notes at once (status running), then its journal.

    `code` is captured from the work tree unless given (a reproduction runs known code);
    `extra` adds record fields (`reproduces`, `parent`). A start refused for bad input (an
    invalid mlm.lock, a bad param) leaves nothing behind: no note, journal or checkpoint ref.
    """
    repo.workdir  # noqa: B018 - runs need a work tree; this raises the clear error for bare repos
    head = repo.head()
    if head.commit is None:
        repo.head_commit()  # raises the clear "no commits yet" error
    checked_params = {k: codec.check_value("param", k, v) for k, v in (params or {}).items()}
    checked_tags = {k: str(codec.check_value("tag", k, v)) for k, v in (tags or {}).items()}
    # Read before the code is captured: a broken mlm.lock must refuse before a checkpoint exists.
    run_data = dict(datasets) if datasets is not None else data.run_datasets(repo, clean=True)
    run_id = ids.new_run_id()
    captured = code is None
    code = code or checkpoint.capture(repo, run_id)
    file = journal.path(repo.mlm_dir, run_id)
    try:
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
            params=checked_params,
            tags=checked_tags,
            datasets=run_data,
            env=envinfo.capture(),
        )
        record.extra.update(code.extra)
        record.extra.update(extra or {})
        if parent:
            record.extra[PARENT] = parent
        if liveness.PID_NS:
            record.extra["pid_ns"] = liveness.PID_NS
        record.extra[HEARTBEAT] = liveness.beat_every()
        if head.branch is None:
            record.extra["detached"] = True
        # The note first: a start killed before it leaves no journal without a record, and one
        # killed after it leaves a running record whose heartbeat stops (`--recover` ends it).
        store.put_runs(
            repo,
            refs.RUNS,
            record.commit,
            {run_id: codec.run_to_dict(record)},
            f"gitmlm: start run {run_id}",
        )
        file.parent.mkdir(parents=True, exist_ok=True)
        start = {"k": "start", "record": codec.run_to_dict(record) | {"id": run_id}}
        journal.append(file, [start | {"named": True} if name else start])
    except BaseException:
        file.unlink(missing_ok=True)
        if captured and code.checkpoint != "clean":
            with contextlib.suppress(MlmError):
                repo.delete_ref(refs.checkpoint(run_id))
        raise
    run = ActiveRun(repo, record, owner=True)
    run.named = bool(name)
    return run


def attach(repo: Repo, run_id: str) -> ActiveRun:
    """Join a run another process owns (the child of `git mlm run`)."""
    folded = journal.fold(journal.path(repo.mlm_dir, run_id))
    if not folded.record:
        raise MlmError(f"{RUN_ENV}={run_id} names no live run in {repo.common_dir}")
    record = codec.run_from_dict(run_id, folded.record)
    journal._merge(record.params, folded.params)
    if folded.name:
        record.name = folded.name
    return ActiveRun(repo, record, owner=False)


def _dotted(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _under_command_line(run: ActiveRun, defaults: Mapping[str, Any]) -> None:
    """The script's start_run params are defaults: `git mlm run -p` keys win, as argparse and
    Hydra users expect, and the record names the keys the command line replaced."""
    checked = {k: codec.check_value("param", k, v) for k, v in defaults.items()}
    given = _dotted(run.record.params)
    overridden = sorted(
        k
        for k in _dotted(checked)
        if any(k == g or k.startswith(g + ".") or g.startswith(k + ".") for g in given)
    )
    merged = dict(checked)
    journal._merge(merged, run.record.params)
    run.record.params.clear()
    run.record.params.update(merged)
    with run._lock:
        run._write({"k": "params", "v": merged})
        if overridden:
            run.record.extra[OVERRIDDEN] = overridden
            run._write({"k": "extra", "v": {OVERRIDDEN: overridden}})


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
    record.extra.update(folded.extra)
    if folded.name and not folded.named:
        record.name = folded.name
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


TRACEBACK_CAP = 20_000
"""Characters of a failed run's traceback kept in its record (the end: where it failed)."""


def error_info(exc: BaseException) -> dict[str, str]:
    """What a failed run keeps of its exception: type, message, traceback (capped)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    if len(text) > TRACEBACK_CAP:
        text = "...\n" + text[-TRACEBACK_CAP:]
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {"type": name, "message": str(exc), "traceback": text}


def _parent_id(repo: Repo, parent: str | ActiveRun | None) -> str | None:
    if parent is None:
        return None
    if isinstance(parent, ActiveRun):
        return parent.id
    if isinstance(parent, str) and len(parent) == 26 and ids.is_run_id_prefix(parent):
        return parent.lower()
    if not isinstance(parent, str):
        raise MlmError(f"parent must be a run or a run id, not {type(parent).__name__}")
    return resolve(list_runs(repo), parent).id


def open_run(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    parent: str | ActiveRun | None = None,
    path: str | os.PathLike[str] | None = None,
    log_system_metrics: bool = False,
) -> ActiveRun:
    """Start (or, under `git mlm run`, join) a run; `close_run` ends it. `start_run` is both."""
    repo = Repo.open(path)
    parent_id = _parent_id(repo, parent)
    every = sysmetrics.interval() if log_system_metrics else None  # bad input: before writing
    outer = os.environ.get(RUN_ENV)
    if outer and outer not in _attached and parent_id is None:
        _attached.add(outer)
        run = attach(repo, outer)
        if name:
            if os.environ.get(NAMED_ENV):
                run.set_tag("mlm.name", name)  # the command line named it; keep the script's
            else:
                run.record.name = name
                with run._lock:
                    run._write({"k": "name", "v": name})
        if params:
            _under_command_line(run, params)
        if tags:
            run.set_tags(tags)
        with run._lock:
            run._write({"k": "env", "v": envinfo.capture()})
    else:
        run = begin(repo, name, params, tags, parent=parent_id or outer)
    if run.owner:
        run.start_heartbeat()
    if every is not None and run.owner:  # a joined run: `git mlm run` samples already
        run.sample_system_metrics(every)
    with _active_lock:
        _active.append(run)
    return run


_active: list[ActiveRun] = []
_active_lock = threading.Lock()


def current() -> ActiveRun | None:
    """The innermost run this process has open (what autologging records into), or None."""
    with _active_lock:
        return _active[-1] if _active else None


def close_run(
    run: ActiveRun, error: BaseException | None = None, status: str | None = None
) -> None:
    """End a run: `failed` with the exception's type, message and traceback when `error` is
    given, else `status` (default `finished`). A joined run is ended by its owner."""
    with _active_lock:
        if run in _active:
            _active.remove(run)
    if error is not None:
        info = error_info(error)
        with run._lock:
            run._write({"k": "extra", "v": {"error": info}})
        run.record.extra["error"] = info
        status = "failed"
    run.close()
    if run.owner:
        finish(run.repo, run.record, status or "finished")


@contextlib.contextmanager
def start_run(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    parent: str | ActiveRun | None = None,
    path: str | os.PathLike[str] | None = None,
    log_system_metrics: bool = False,
) -> Iterator[ActiveRun]:
    """Track a run: `with gitmlm.start_run(name="base", params={"lr": 0.1}) as run: ...`.

    Under `git mlm run` the first start_run of the process attaches to that run: its name
    names the run unless the command line gave `--name`, and its params are defaults that
    `-p KEY=VALUE` overrides. Each later start_run starts a child run of its own, whose
    `parent` is the `git mlm run` run; `parent` (a run or its id) nests a run under another
    (a sweep's trials under the sweep). An exception in the block marks the run failed,
    records the exception (`error`: type, message, traceback) and propagates.
    `log_system_metrics` samples CPU, memory and GPU use as step series (`system/...`).
    """
    run = open_run(
        name, params, tags, parent=parent, path=path, log_system_metrics=log_system_metrics
    )
    try:
        yield run
    except BaseException as exc:
        close_run(run, exc)
        raise
    close_run(run)


# --- reading ---------------------------------------------------------------------------------


def recover(repo: Repo) -> list[Run]:
    """Finalise crashed runs (a stopped heartbeat, on any host) as `crashed`, keeping what the
    journal here holds, then delete their journals and those no record names (a start killed
    between the two writes)."""
    done = []
    listing = list_runs(repo)
    for run in listing.runs:
        if run.status != "crashed" or run.ended:
            continue
        file = journal.path(repo.mlm_dir, run.id)
        ended = run.updated  # its last heartbeat
        if file.exists():
            from datetime import UTC, datetime

            ended = (
                datetime.fromtimestamp(file.stat().st_mtime, UTC).isoformat().replace("+00:00", "Z")
            )
        done.append(finish(repo, run, "crashed", None, ended))
    known = {r.id for r in listing.runs}
    folder = journal.path(repo.mlm_dir, "x").parent
    limit = liveness.timeout()
    for file in folder.glob("*.jsonl") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if file.stem not in known and time.time() - file.stat().st_mtime > limit:
                file.unlink()
    return done


@dataclass
class Recorded:
    run: Run
    name: str
    profile: Profile
    files: list[str]


def record_for_run(
    repo: Repo,
    run_id: str,
    path: str,
    name: str | None = None,
    options: Options | None = None,
    *,
    engine: str = "local",
    master: str | None = None,
) -> Recorded:
    """Profile PATH and store it with an existing run (live or finished).

    The run's `datasets.<name>` table gains `profile = true`, `rows` and `columns` (and the
    data's fingerprint if the run did not record one); a live run
    gets it through its journal (its owner folds it in at the end), a finished one by a rewrite
    of its record. Without `name`, a dataset the run already recorded with this path keeps its
    name; otherwise the path (relative to the repository) is the name, as `log_dataset` does.
    """
    from gitmlm.partitions import profiling, source
    from gitmlm.tracking import profiles

    profiling.check_engine(engine)
    listing = list_runs(repo)
    run = resolve(listing, run_id)
    data = source.resolve(repo, path)
    how = options or profiles.Options()
    profile = profiling.profile(
        data,
        engine=engine,
        master=master,
        top_k=how.top_k,
        hash_values=how.hash_values,
        min_count=how.min_count,
    )
    rel = path if source.is_url(path) else profiles.relative(repo, Path(path))
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
    return Recorded(run, name, profile, list(data.files))


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
