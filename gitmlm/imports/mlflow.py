"""Reading an MLflow tracking store — a file store (`mlruns/`) or a SQL database (sqlite) — as
runs to import. MLflow itself is never imported: the file store is read as files, the database
with sqlite3.

What is taken: each active run's name, status, times, user, params, metrics (the latest value,
and the series of a metric logged more than once), tags, parent, note, experiment, and its
artifacts (on this disk or on S3: imports/locations.py). `mlflow.source.git.commit` places the
run on that commit when this repository has it. Also every registered model version, with its
stage, aliases and where its files are (imports/registry.py makes registry tags of them).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gitmlm.errors import MlmError
from gitmlm.imports.locations import Locations
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
    "model_versions": {"name", "version", "current_stage", "source", "run_id", "status"}
    | {"creation_time", "description"},
}
_OPTIONAL = {"model_versions"}
"""Tables an older store may lack altogether (the model registry came in MLflow 1.2)."""


@dataclass
class Store:
    """What an MLflow store holds: its active runs and its registered model versions."""

    runs: list[Source]
    versions: list[ModelVersion] = field(default_factory=list)


@dataclass
class ModelVersion:
    """One version of an MLflow registered model, as MLflow recorded it."""

    model: str
    version: int
    run: str | None
    """The MLflow id of the run that made it."""
    status: str
    stage: str
    """MLflow's stage: None, Staging, Production or Archived."""
    aliases: list[str]
    created_ms: int
    location: str | None
    """Where its artifact files are (a folder URI), resolved from MLflow's source."""
    description: str = ""


def read(uri: str, loc: Locations | None = None) -> list[Source]:
    """Every active run of the store at `uri` (see `read_store`)."""
    return read_store(uri, loc).runs


def read_store(uri: str, loc: Locations | None = None) -> Store:
    """Every active run and registered model version of the store at `uri`: a path or file:
    URI of a file store or a sqlite database, or `sqlite:///PATH`. Anything else is one clear
    error. `loc` reads the artifacts (None: no artifacts)."""
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
        return _read_sqlite(path, loc)
    if (path / "mlruns").is_dir() and not (path / "meta.yaml").exists():
        path = path / "mlruns"
    return _read_files(path, uri, loc)


# --- sqlite -----------------------------------------------------------------------------------


def _read_sqlite(path: Path, loc: Locations | None) -> Store:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise MlmError(f"{path}: cannot open the database: {exc}") from exc
    try:
        runs, uris = _sqlite_runs(db, path, loc)
        return Store(runs, _sqlite_versions(db, uris))
    except sqlite3.DatabaseError as exc:
        raise MlmError(f"{path}: cannot read the MLflow database: {exc}") from exc
    finally:
        db.close()


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _sqlite_runs(
    db: sqlite3.Connection, path: Path, loc: Locations | None
) -> tuple[list[Source], dict[str, str]]:
    """The active runs, and every run's artifact URI by MLflow id."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "runs" not in tables or "alembic_version" not in tables:
        raise MlmError(f"{path}: a database, but not an MLflow tracking store (no runs table)")
    version = ",".join(r[0] for r in db.execute("SELECT version_num FROM alembic_version"))
    for table, needed in _NEEDED.items():
        if table in _OPTIONAL and table not in tables:
            continue  # a store from before the model registry
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
    uris: dict[str, str] = {}
    rows = db.execute(
        "SELECT run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage, "
        "artifact_uri, experiment_id FROM runs ORDER BY start_time"
    )
    for rid, name, user, status, start, end, stage, artifact_uri, exp in rows:
        if artifact_uri:
            uris[str(rid)] = str(artifact_uri)
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
                loc,
            )
        )
    return out, uris


def _sqlite_versions(db: sqlite3.Connection, uris: dict[str, str]) -> list[ModelVersion]:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "model_versions" not in tables:
        return []
    aliases: dict[tuple[str, int], list[str]] = {}
    if "registered_model_aliases" in tables:
        for alias, version, name in db.execute(
            "SELECT alias, version, name FROM registered_model_aliases ORDER BY alias"
        ):
            aliases.setdefault((str(name), int(version)), []).append(str(alias))
    logged: dict[str, str] = {}
    if "logged_models" in tables:
        for mid, where in db.execute("SELECT model_id, artifact_location FROM logged_models"):
            logged[str(mid)] = str(where)
    has_location = "storage_location" in _columns(db, "model_versions")
    where = ", storage_location" if has_location else ", NULL"
    out = []
    for name, version, stage, source, rid, status, created, desc, stored in db.execute(
        "SELECT name, version, current_stage, source, run_id, status, creation_time, "
        f"description{where} FROM model_versions ORDER BY name, version"
    ):
        out.append(
            ModelVersion(
                str(name),
                int(version),
                str(rid) if rid else None,
                str(status or "READY"),
                str(stage or "None"),
                aliases.get((str(name), int(version)), []),
                int(created or 0),
                _location(source, stored, uris, logged),
                str(desc or ""),
            )
        )
    return out


def _location(source: Any, stored: Any, uris: dict[str, str], logged: dict[str, str]) -> str | None:
    """Where a version's files are: MLflow's storage_location when it is a place, else its
    source resolved (`runs:/ID/PATH` in the run's artifacts, `models:/m-ID` a logged model)."""
    for uri in (stored, source):
        if not isinstance(uri, str) or not uri:
            continue
        if uri.startswith("runs:/"):
            rid, _, rel = uri[len("runs:/") :].partition("/")
            base = uris.get(rid)
            if base:
                return f"{base.rstrip('/')}/{rel}" if rel else base
        elif uri.startswith("models:/"):
            found = logged.get(uri[len("models:/") :].strip("/"))
            if found:
                return found
        else:
            return uri
    return None


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


def _read_files(root: Path, uri: str, loc: Locations | None) -> Store:
    experiments = [d for d in sorted(root.iterdir()) if (d / "meta.yaml").is_file()]
    if not experiments:
        raise MlmError(f"{uri}: not an MLflow store (no experiment folders with a meta.yaml)")
    out = []
    uris: dict[str, str] = {}
    logged: dict[str, str] = {}
    for exp_dir in experiments:
        for found in sorted(exp_dir.glob("models/*/meta.yaml")):
            where = _meta(found).get("artifact_location")
            if isinstance(where, str):
                logged[found.parent.name] = where
        exp = _meta(exp_dir / "meta.yaml")
        if exp.get("lifecycle_stage") == "deleted" or "name" not in exp:
            continue
        for run_dir in sorted(exp_dir.iterdir()):
            meta_file = run_dir / "meta.yaml"
            if not meta_file.is_file():
                continue
            meta = _meta(meta_file)
            if isinstance(meta.get("artifact_uri"), str):
                uris[str(meta.get("run_id") or run_dir.name)] = meta["artifact_uri"]
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
                    loc,
                )
            )
    return Store(out, _file_versions(root, uris, logged))


def _file_versions(root: Path, uris: dict[str, str], logged: dict[str, str]) -> list[ModelVersion]:
    """`models/<name>/version-<n>/meta.yaml`, and the aliases as `models/<name>/aliases/<alias>`
    files holding the version number."""
    out = []
    for model_dir in sorted((root / "models").glob("*")):
        aliases: dict[int, list[str]] = {}
        for file in sorted((model_dir / "aliases").glob("*")):
            try:
                aliases.setdefault(int(file.read_text().strip()), []).append(file.name)
            except ValueError:
                continue
        found = []
        for meta_file in model_dir.glob("version-*/meta.yaml"):
            meta = _meta(meta_file)
            if not isinstance(meta.get("version"), int):
                continue
            found.append(meta)
        for meta in sorted(found, key=lambda m: int(m["version"])):
            version = int(meta["version"])
            rid = meta.get("run_id")
            out.append(
                ModelVersion(
                    str(meta.get("name") or model_dir.name),
                    version,
                    str(rid) if rid else None,
                    str(meta.get("status") or "READY"),
                    str(meta.get("current_stage") or "None"),
                    aliases.get(version, []),
                    int(meta.get("creation_timestamp") or 0),
                    _location(meta.get("source"), meta.get("storage_location"), uris, logged),
                    str(meta.get("description") or ""),
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
    loc: Locations | None,
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
        files=loc.files(artifact_uri, f"run {rid}") if loc and artifact_uri else {},
        extra={"experiment": experiment, "store": store},
    )
