"""MLflow's fluent tracking API over gitmlm: `import gitmlm.mlflow as mlflow`, and a script
written for MLflow records its runs into the git repository instead.

What MLflow stores as strings is given back as strings (params, tags), statuses are upper case,
times are milliseconds, and `search_runs` filters and orders on MLflow's column names and
values. An experiment is a tag of the run (`mlflow.experimentName`); its id is its name
("0" for MLflow's "Default"). What has no meaning here (a tracking server URI) is an error
naming what to do instead, never silently ignored.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gitmlm.core import where
from gitmlm.core.git import Repo
from gitmlm.core.records import Run as Record
from gitmlm.errors import MlmError
from gitmlm.tracking import logged, query
from gitmlm.tracking import record as tracking

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT_TAG = "mlflow.experimentName"
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
DEFAULT_EXPERIMENT = "Default"
_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED"}
_FROM_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "crashed"}


class RunStatus:
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class ViewType:
    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3


@dataclass
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"
    artifact_location: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str = "active"
    user_id: str = ""

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class RunData:
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass
class Run:
    info: RunInfo
    data: RunData


class ActiveRun:
    """What `start_run` returns: a context manager, and `.info`/`.data` like MLflow's."""

    def __init__(self, run: tracking.ActiveRun, experiment: str) -> None:
        self._run = run
        self._experiment = experiment

    @property
    def gitmlm_run(self) -> tracking.ActiveRun:
        return self._run

    @property
    def info(self) -> RunInfo:
        return _info(self._run.record, self._experiment, self._run.repo)

    @property
    def data(self) -> RunData:
        return _data(self._run.record)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _end(self, exc, RunStatus.FINISHED)


_lock = threading.RLock()
_stack: list[ActiveRun] = []
_last: ActiveRun | None = None
_experiment: str | None = None
_path: str | None = None


# --- where runs go --------------------------------------------------------------------------


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """A path (or file: URI) inside a git repository; servers and databases are refused."""
    global _path
    text = os.fspath(uri)
    if text.startswith("file:"):
        text = text[5:].removeprefix("//")
    elif "://" in text or text.startswith(("databricks", "sqlite:")):
        raise MlmError(
            f"set_tracking_uri({text!r}): gitmlm records runs in the git repository; give a "
            "path inside one (or import an MLflow store with `git mlm import mlflow URI`)"
        )
    Repo.open(text)  # the clear error when it is not a repository
    _path = text


def get_tracking_uri() -> str:
    return f"file://{_repo().workdir}"


def _repo() -> Repo:
    return Repo.open(_path)


def _experiment_id(name: str) -> str:
    return "0" if name == DEFAULT_EXPERIMENT else name


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    global _experiment
    name = experiment_name or (DEFAULT_EXPERIMENT if experiment_id == "0" else experiment_id)
    if not name:
        raise MlmError("set_experiment: give experiment_name or experiment_id")
    _experiment = name
    return Experiment(_experiment_id(name), name)


def get_experiment_by_name(name: str) -> Experiment | None:
    if name in (DEFAULT_EXPERIMENT, _experiment):
        return Experiment(_experiment_id(name), name)
    for run in tracking.list_runs(_repo()).runs:
        if run.tags.get(EXPERIMENT_TAG) == name:
            return Experiment(_experiment_id(name), name)
    return None


def create_experiment(name: str, **_ignored: Any) -> str:
    return _experiment_id(name)


# --- a run's life ---------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    if run_id is not None:
        raise MlmError(
            "start_run(run_id=...): resuming a finished run is not supported; "
            "start a new run (its parent_run_id can name the old one)"
        )
    with _lock:
        if _stack and not nested and parent_run_id is None:
            raise MlmError(
                f"Run with UUID {_stack[-1].info.run_id} is already active. To start a nested "
                "run, call start_run with nested=True"
            )
        parent: str | tracking.ActiveRun | None = parent_run_id
        if parent is None and nested and _stack:
            parent = _stack[-1].gitmlm_run
        experiment = (
            (DEFAULT_EXPERIMENT if experiment_id == "0" else experiment_id)
            or _experiment
            or DEFAULT_EXPERIMENT
        )
        all_tags = {str(k): _text(v) for k, v in (tags or {}).items()}
        all_tags[EXPERIMENT_TAG] = experiment
        run = tracking.open_run(
            run_name,
            None,
            all_tags,
            parent=parent,
            path=_path,
            log_system_metrics=bool(log_system_metrics),
        )
        if description:
            run.record.extra["note"] = description
            with run._lock:
                run._write({"k": "extra", "v": {"note": description}})
        active = ActiveRun(run, experiment)
        _stack.append(active)
        return active


def _end(active: ActiveRun, error: BaseException | None, status: str) -> None:
    global _last
    with _lock:
        if active not in _stack:
            return
        while _stack:  # ending an outer run ends the runs nested in it, as MLflow does
            top = _stack.pop()
            if error is not None and top is active:
                tracking.close_run(top.gitmlm_run, error)
            else:
                tracking.close_run(top.gitmlm_run, status=_FROM_STATUS.get(status, "finished"))
            if top is active:
                break
        _last = active


def end_run(status: str = RunStatus.FINISHED) -> None:
    if status not in _FROM_STATUS:
        raise MlmError(f"end_run: status must be one of {', '.join(_FROM_STATUS)}, not {status!r}")
    with _lock:
        if _stack:
            _end(_stack[-1], None, status)


def active_run() -> ActiveRun | None:
    return _stack[-1] if _stack else None


def last_active_run() -> Run | None:
    if _stack:
        return get_run(_stack[-1].info.run_id)
    return get_run(_last.info.run_id) if _last is not None else None


def _current() -> tracking.ActiveRun:
    """The active run, started on first use as MLflow does."""
    with _lock:
        if not _stack:
            start_run()
        return _stack[-1].gitmlm_run


# --- logging --------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _param(value: Any) -> Any:
    """A value TOML holds as it is (numbers stay numbers for --where); anything else, None
    included, as MLflow stores it: its str()."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _param(value.item())
    return str(value)


def log_param(key: str, value: Any) -> Any:
    _current().log_params({key: _param(value)})
    return value


def log_params(params: Mapping[str, Any], synchronous: bool | None = None) -> None:
    _current().log_params({k: _param(v) for k, v in params.items()})


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    **_ignored: Any,
) -> None:
    _current().log_metric(key, value, step)


def log_metrics(
    metrics: Mapping[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    **_ignored: Any,
) -> None:
    _current().log_metrics(metrics, step)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _current().set_tags({key: _text(value)})


def set_tags(tags: Mapping[str, Any], synchronous: bool | None = None) -> None:
    _current().set_tags({k: _text(v) for k, v in tags.items()})


def _under(artifact_path: str | None, name: str) -> str:
    return f"{artifact_path.strip('/')}/{name}" if artifact_path else name


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """A file of the work tree is recorded where it is; any other file is kept by the run."""
    run = _current()
    path = Path(local_path).resolve()
    inside = path.is_relative_to(run.repo.workdir.resolve())
    if inside and artifact_path is None:
        run.log_artifact(path)
        return
    if not path.is_file():
        raise MlmError(f"log_artifact: {local_path} is not a file")
    run.log_bytes(path.read_bytes(), _under(artifact_path, path.name))


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    run = _current()
    folder = Path(local_dir).resolve()
    if folder.is_relative_to(run.repo.workdir.resolve()) and artifact_path is None:
        run.log_artifact(folder)
        return
    if not folder.is_dir():
        raise MlmError(f"log_artifacts: {local_dir} is not a folder")
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        run.log_bytes(file.read_bytes(), _under(artifact_path, file.relative_to(folder).as_posix()))


def log_dict(dictionary: Mapping[str, Any], artifact_file: str) -> None:
    _current().log_dict(dictionary, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    _current().log_text(text, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: Any = None) -> None:
    _current().log_figure(figure, artifact_file)


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    _current().log_table(data, artifact_file)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    run = _current()
    base = logged.kept_dir(run.repo, run.id)
    return f"file://{base / artifact_path if artifact_path else base}"


# --- reading --------------------------------------------------------------------------------


def _ms(stamp: str | None) -> int | None:
    if not stamp:
        return None
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _info(r: Record, experiment: str | None, repo: Repo) -> RunInfo:
    exp = experiment or r.tags.get(EXPERIMENT_TAG, DEFAULT_EXPERIMENT)
    return RunInfo(
        run_id=r.id,
        run_name=r.name,
        experiment_id=_experiment_id(exp),
        status=_STATUS.get(r.status, r.status.upper()),
        start_time=_ms(r.started),
        end_time=_ms(r.ended),
        artifact_uri=f"file://{repo.mlm_dir / 'artifacts' / r.id}",
        lifecycle_stage="deleted" if r.deleted else "active",
        user_id=r.user,
    )


def _tags(r: Record) -> dict[str, str]:
    tags = {k: _text(v) for k, v in r.tags.items()}
    tags.setdefault(RUN_NAME_TAG, r.name)
    if r.parent:
        tags.setdefault(PARENT_TAG, r.parent)
    if isinstance(r.extra.get("note"), str):
        tags.setdefault(NOTE_TAG, r.extra["note"])
    tags.setdefault("mlflow.user", r.user)
    tags.setdefault("mlflow.source.git.commit", r.commit)
    return tags


def _data(r: Record) -> RunData:
    params: dict[str, Any] = {}
    from gitmlm.core.records import flatten

    flatten("", r.params, params)
    return RunData({k: _text(v) for k, v in params.items()}, dict(r.metrics), _tags(r))


def get_run(run_id: str) -> Run:
    repo = _repo()
    r = tracking.resolve(tracking.list_runs(repo), run_id)
    return Run(_info(r, None, repo), _data(r))


def _row(r: Record, repo: Repo) -> dict[str, Any]:
    """A run as MLflow's search_runs row, plus `attributes.*` spellings for filters."""
    info = _info(r, None, repo)
    data = _data(r)
    row: dict[str, Any] = {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "artifact_uri": info.artifact_uri,
        "start_time": info.start_time,
        "end_time": info.end_time,
    }
    for k, v in data.metrics.items():
        row[f"metrics.{k}"] = v
    for k, text in data.params.items():
        row[f"params.{k}"] = text
    for k, text in data.tags.items():
        row[f"tags.{k}"] = text
    return row


_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "tags.mlflow.runName",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "artifact_uri": "artifact_uri",
}


def _row_template() -> dict[str, Any]:
    """The attribute columns every row has (for checking names when there are no runs)."""
    keys = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")
    return {**dict.fromkeys(keys), "tags.mlflow.runName": None}


def _filterable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name, column in _ATTRIBUTES.items():
        for prefix in ("attributes.", "attribute.", "attr.", "run."):
            out[prefix + name] = row.get(column)
    for key in row:
        if key.startswith("params."):
            out["param." + key[7:]] = row[key]
        elif key.startswith("metrics."):
            out["metric." + key[8:]] = row[key]
        elif key.startswith("tags."):
            out["tag." + key[5:]] = row[key]
    return out


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100000,
    order_by: Sequence[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """MLflow's search_runs: its filter strings, order_by and column names, over this repo's
    runs. Filtering sees MLflow's values (params and tags are strings, statuses upper case)."""
    import pandas as pd

    repo = _repo()
    listing = tracking.list_runs(repo, deleted=run_view_type != ViewType.ACTIVE_ONLY)
    chosen = [
        r
        for r in listing.runs
        if run_view_type == ViewType.ALL or (run_view_type == ViewType.DELETED_ONLY) == r.deleted
    ]
    wanted: set[str] | None = None
    if experiment_ids or experiment_names:
        wanted = {_experiment_id(n) for n in experiment_names or []} | set(experiment_ids or [])
    elif not search_all_experiments and _experiment is not None:
        wanted = {_experiment_id(_experiment)}
    by_id = {r.id: r for r in chosen}
    rows = [_row(r, repo) for r in chosen]
    if wanted is not None:
        rows = [row for row in rows if row["experiment_id"] in wanted]
    if filter_string and filter_string.strip():
        # The rows are MLflow's, so names are kept as MLflow spells them (known), and a data
        # column no run has matches nothing, as in MLflow.
        wide = [_filterable(row) for row in rows]
        known = set(_filterable(_row_template())).union(*wide)
        keep = where.compile_where(filter_string, known, where.DATA_PREFIXES)
        rows = [row for row, full in zip(rows, wide, strict=True) if keep(full)]
    order = [_order_term(t) for t in order_by or []] or ["start_time desc"]
    rows = query.order_rows(rows, order)[:max_results]
    if output_format == "list":
        return [
            Run(_info(by_id[row["run_id"]], None, repo), _data(by_id[row["run_id"]]))
            for row in rows
        ]
    if output_format != "pandas":
        raise MlmError(
            f"search_runs: output_format must be 'pandas' or 'list', not {output_format!r}"
        )
    frame = pd.DataFrame.from_records(rows)
    first = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    if frame.empty:
        return pd.DataFrame(columns=first)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    rest = sorted(c for c in frame.columns if c not in first)
    ordered = [c for c in rest if c.startswith("metrics.")]
    ordered += [c for c in rest if c.startswith("params.")]
    ordered += [c for c in rest if c.startswith("tags.")]
    return frame[first + ordered]


def _order_term(term: str) -> str:
    words = term.split()
    column = words[0] if words else term
    for prefix in ("attributes.", "attribute.", "attr.", "run."):
        if column.startswith(prefix):
            column = _ATTRIBUTES.get(column[len(prefix) :], column[len(prefix) :])
    return " ".join([column, *words[1:]])


def autolog(log_models: bool = True, disable: bool = False, **_options: Any) -> None:
    """Autologging for every supported framework installed (gitmlm.autolog)."""
    from gitmlm import autolog as frameworks

    frameworks.autolog(log_models=log_models, disable=disable)


class _Flavor:
    """`mlflow.sklearn.autolog()`: one framework's autologging."""

    def __init__(self, module: str) -> None:
        self._module = module

    def autolog(self, log_models: bool = True, disable: bool = False, **_options: Any) -> None:
        import importlib

        importlib.import_module(self._module).autolog(log_models=log_models, disable=disable)


sklearn = _Flavor("gitmlm.autolog.sklearn")
xgboost = _Flavor("gitmlm.autolog.xgboost")
lightgbm = _Flavor("gitmlm.autolog.lightgbm")


def delete_run(run_id: str) -> None:
    from gitmlm.tracking import manage

    manage.remove(_repo(), [run_id])


__all__ = [
    "ActiveRun",
    "Experiment",
    "Run",
    "RunStatus",
    "ViewType",
    "active_run",
    "autolog",
    "create_experiment",
    "delete_run",
    "end_run",
    "get_artifact_uri",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "lightgbm",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "sklearn",
    "start_run",
    "xgboost",
]
