"""Reading an MLflow tracking store — a file store (`mlruns/`) or a SQL database (sqlite) — as
runs to import. MLflow itself is never imported: the file store is read as files, the database
with sqlite3.

What is taken: each active run's name, status, times, user, params, metrics (the latest value,
and the series of a metric logged more than once), tags, parent, note, experiment, and its
artifacts when they are on a local disk. `mlflow.source.git.commit` places the run on that
commit when this repository has it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gitmlm.errors import MlmError
from gitmlm.imports.records import Source, param_value

TOOL = "mlflow"
_STATUS = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "crashed",
}
_FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_SYSTEM_TAGS = ("mlflow.runName", "mlflow.parentRunId", "mlflow.note.content")
_RUN_COLUMNS = {"run_uuid", "name", "user_id", "status", "start_time", "end_time"}
_RUN_COLUMNS |= {"lifecycle_stage", "artifact_uri", "experiment_id"}
_NEEDED = {
    "runs": _RUN_COLUMNS,
    "experiments": {"experiment_id", "name"},
    "params": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "run_uuid", "step"},
    "tags": {"key", "value", "run_uuid"},
}


def read(uri: str) -> list[Source]:
    """Every active run of the store at `uri`: a path or file: URI of a file store or a sqlite
    database, or `sqlite:///PATH`. Anything else is one clear error."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https", "databricks", "postgresql", "mysql", "mssql"):
        raise MlmError(
            f"{uri}: only MLflow stores on this disk can be imported (a file store or a sqlite "
            "database); copy the store here, or export it with MLflow first"
        )
    if parsed.scheme == "sqlite":
        # SQLAlchemy's spelling, as MLflow takes it: sqlite:///relative, sqlite:////absolute
        path = Path(unquote(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else "")
    elif parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    else:
        path = Path(uri)
    if not path.exists():
        raise MlmError(f"{uri}: no such file or folder")
    if path.is_file():
        with open(path, "rb") as fh:
            magic = fh.read(16)
        if magic != b"SQLite format 3\x00":
            raise MlmError(f"{uri}: not an MLflow store (neither an mlruns folder nor a database)")
        return _read_sqlite(path)
    if (path / "mlruns").is_dir() and not (path / "meta.yaml").exists():
        path = path / "mlruns"
    return _read_files(path, uri)


# --- sqlite -----------------------------------------------------------------------------------


def _read_sqlite(path: Path) -> list[Source]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise MlmError(f"{path}: cannot open the database: {exc}") from exc
    try:
        return _sqlite_runs(db, path)
    except sqlite3.DatabaseError as exc:
        raise MlmError(f"{path}: cannot read the MLflow database: {exc}") from exc
    finally:
        db.close()


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _sqlite_runs(db: sqlite3.Connection, path: Path) -> list[Source]:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "runs" not in tables or "alembic_version" not in tables:
        raise MlmError(f"{path}: a database, but not an MLflow tracking store (no runs table)")
    version = ",".join(r[0] for r in db.execute("SELECT version_num FROM alembic_version"))
    for table, needed in _NEEDED.items():
        missing = needed - (_columns(db, table) if table in tables else set())
        if missing:
            raise MlmError(
                f"{path}: MLflow schema version {version or '?'} is not supported "
                f"(table {table} lacks {', '.join(sorted(missing))}); upgrade it with "
                "`mlflow db upgrade` or import with a newer gitmlm"
            )
    experiments = {
        str(e): str(n) for e, n in db.execute("SELECT experiment_id, name FROM experiments")
    }
    has_nan = "is_nan" in _columns(db, "metrics")
    params: dict[str, dict[str, Any]] = {}
    for key, value, rid in db.execute("SELECT key, value, run_uuid FROM params"):
        params.setdefault(rid, {})[key] = param_value(str(value))
    tags: dict[str, dict[str, str]] = {}
    for key, value, rid in db.execute("SELECT key, value, run_uuid FROM tags"):
        tags.setdefault(rid, {})[key] = str(value)
    points: dict[str, dict[str, list[tuple[int, int, float]]]] = {}
    nan = ", is_nan" if has_nan else ", 0"
    query = f"SELECT key, value, timestamp, run_uuid, step{nan} FROM metrics"
    for key, value, stamp, rid, step, is_nan in db.execute(query):
        v = math.nan if is_nan else float(value)
        points.setdefault(rid, {}).setdefault(key, []).append((int(step or 0), int(stamp), v))
    out = []
    rows = db.execute(
        "SELECT run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage, "
        "artifact_uri, experiment_id FROM runs ORDER BY start_time"
    )
    for rid, name, user, status, start, end, stage, artifact_uri, exp in rows:
        if stage == "deleted":
            continue
        out.append(
            _source(
                rid,
                name,
                user,
                str(status),
                start,
                end,
                params.get(rid, {}),
                points.get(rid, {}),
                tags.get(rid, {}),
                experiments.get(str(exp), str(exp)),
                artifact_uri,
                str(path),
            )
        )
    return out


# --- file store -------------------------------------------------------------------------------


def _meta(file: Path) -> dict[str, Any]:
    """MLflow's meta.yaml: a flat mapping of scalars (the file store writes nothing else)."""
    out: dict[str, Any] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith((" ", "-", "#")):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise MlmError(f"{file}: not an MLflow meta.yaml (line {line!r})")
        value = value.strip()
        if value in ("null", "~", ""):
            out[key] = None
        elif value.startswith("'") and value.endswith("'"):
            out[key] = value[1:-1].replace("''", "'")
        elif value.startswith('"') and value.endswith('"'):
            out[key] = value[1:-1]
        else:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
    return out


def _tree(folder: Path) -> dict[str, str]:
    """Key -> file content for params/ and tags/ (a key with '/' is a sub-folder)."""
    if not folder.is_dir():
        return {}
    return {
        f.relative_to(folder).as_posix(): f.read_text(encoding="utf-8")
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _read_files(root: Path, uri: str) -> list[Source]:
    experiments = [d for d in sorted(root.iterdir()) if (d / "meta.yaml").is_file()]
    if not experiments:
        raise MlmError(f"{uri}: not an MLflow store (no experiment folders with a meta.yaml)")
    out = []
    for exp_dir in experiments:
        exp = _meta(exp_dir / "meta.yaml")
        if exp.get("lifecycle_stage") == "deleted" or "name" not in exp:
            continue
        for run_dir in sorted(exp_dir.iterdir()):
            meta_file = run_dir / "meta.yaml"
            if not meta_file.is_file():
                continue
            meta = _meta(meta_file)
            if meta.get("lifecycle_stage") == "deleted":
                continue
            points: dict[str, list[tuple[int, int, float]]] = {}
            for key, text in _tree(run_dir / "metrics").items():
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) < 2:
                        continue
                    step = int(parts[2]) if len(parts) > 2 else 0
                    points.setdefault(key, []).append((step, int(parts[0]), float(parts[1])))
            status = meta.get("status")
            out.append(
                _source(
                    str(meta.get("run_id") or run_dir.name),
                    meta.get("run_name"),
                    meta.get("user_id"),
                    _FILE_STATUS.get(status, str(status))
                    if isinstance(status, int)
                    else str(status),
                    meta.get("start_time"),
                    meta.get("end_time"),
                    {k: param_value(v) for k, v in _tree(run_dir / "params").items()},
                    points,
                    _tree(run_dir / "tags"),
                    str(exp["name"]),
                    meta.get("artifact_uri"),
                    str(root),
                )
            )
    return out


# --- both -------------------------------------------------------------------------------------


def _source(
    rid: str,
    name: Any,
    user: Any,
    status: str,
    start: Any,
    end: Any,
    params: dict[str, Any],
    points: dict[str, list[tuple[int, int, float]]],
    tags: dict[str, str],
    experiment: str,
    artifact_uri: Any,
    store: str,
) -> Source:
    metrics: dict[str, float] = {}
    series: dict[str, dict[str, list[float]]] = {}
    for key, pts in points.items():
        pts.sort()
        metrics[key] = pts[-1][2]  # MLflow's latest: the highest step, then the latest time
        if len(pts) > 1:
            series[key] = {"step": [p[0] for p in pts], "value": [p[2] for p in pts]}
    kept_tags = {k: v for k, v in tags.items() if k not in _SYSTEM_TAGS}
    kept_tags["mlflow.experimentName"] = experiment
    return Source(
        tool=TOOL,
        source_id=rid,
        name=str(name or tags.get("mlflow.runName") or ""),
        status=_STATUS.get(status.upper(), "finished"),
        started_ms=int(start or 0),
        ended_ms=int(end) if end is not None else None,
        user=str(user or ""),
        commit=tags.get("mlflow.source.git.commit"),
        params=params,
        metrics=metrics,
        series=series,
        tags=kept_tags,
        parent=tags.get("mlflow.parentRunId"),
        note=tags.get("mlflow.note.content"),
        files=_artifacts(artifact_uri),
        extra={"experiment": experiment, "store": store},
    )


def _artifacts(uri: Any) -> dict[str, Callable[[], bytes]]:
    """The run's artifacts when they are on this disk (a remote artifact store is skipped)."""
    if not isinstance(uri, str) or not uri:
        return {}
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return {}
    folder = Path(unquote(parsed.path))
    if not folder.is_dir():
        return {}
    return {
        f.relative_to(folder).as_posix(): f.read_bytes
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }
