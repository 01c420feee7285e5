"""What a run logs besides numbers: files and folders of the work tree, and things made in
memory (text, dicts, figures, tables, the output of `git mlm run`) kept as files of the run.

A work-tree file or folder is stored by tracking/record.py (artifact_info). Something made in
memory has no path: its bytes go to the object store like any artifact (so `git mlm artifacts
get` and `git mlm push` carry them) and are also placed at `.git/mlm/artifacts/<run-id>/<name>`
(MLflow's artifact URI points there); the run records it under `<name>` with `kept = true`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

TABLE_CAP = 16 << 20
"""Largest table log_table keeps (encoded bytes): a table is a result to look at, not data."""
OUTPUT_CAP = 1 << 20
"""Bytes of stdout or stderr `git mlm run` keeps of each stream (the end, where errors are)."""


def check_name(name: str) -> str:
    """An artifact name: a relative path inside the run's artifacts, like MLflow's."""
    if not isinstance(name, str) or not name.strip():
        raise MlmError(f"an artifact needs a file name, e.g. 'config.json', not {name!r}")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise MlmError(f"artifact name {name!r} must be a relative path without '..'")
    return pure.as_posix()


def keep(repo: Repo, run_id: str, name: str, data: bytes) -> dict[str, Any]:
    """Keep bytes made in memory as the run's artifact `name`; returns its record entry."""
    from gitmlm.storage import objects, settings

    name = check_name(name)
    store = settings.cache(repo)
    stored = store.add_bytes(data)
    target = kept_dir(repo, run_id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    objects.place(store.path(stored), target, settings.links(repo))
    return {"digest": stored, "size": len(data), "kept": True}


def kept_dir(repo: Repo, run_id: str) -> Path:
    """Where a run's in-memory artifacts are placed on the machine that made them."""
    return repo.mlm_dir / "artifacts" / run_id


def kept_path(repo: Repo, run_id: str, name: str) -> Path:
    return kept_dir(repo, run_id) / check_name(name)


# --- encoders: objects to bytes -------------------------------------------------------------


def dict_bytes(value: Mapping[str, Any], name: str) -> bytes:
    if not isinstance(value, Mapping):
        raise MlmError(f"log_dict: expected a dict, got {type(value).__name__}")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise MlmError(f"log_dict: {name} needs PyYAML (pip install pyyaml)") from exc
        return str(yaml.safe_dump(dict(value), sort_keys=False)).encode()
    try:
        return json.dumps(value, indent=2, default=str).encode()
    except (TypeError, ValueError) as exc:
        raise MlmError(f"log_dict: cannot write {name} as JSON: {exc}") from exc


def figure_bytes(figure: Any, name: str) -> bytes:
    """A matplotlib figure (or an Axes' figure) as PNG, or whatever format `name` ends with."""
    fig = getattr(figure, "figure", None) if not hasattr(figure, "savefig") else figure
    module = type(fig).__module__ if fig is not None else ""
    if fig is None or not module.startswith("matplotlib") or not hasattr(fig, "savefig"):
        raise MlmError(
            f"log_figure: expected a matplotlib Figure, got {type(figure).__name__} "
            "(plotly figures: save with fig.write_html and log_artifact the file)"
        )
    suffix = PurePosixPath(name).suffix.lower().lstrip(".") or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix)
    return buf.getvalue()


def table_bytes(table: Any, name: str) -> bytes:
    """A DataFrame (or a dict of columns) as MLflow's table JSON, or CSV for `.csv` names."""
    import pandas as pd

    if isinstance(table, Mapping):
        try:
            table = pd.DataFrame(dict(table))
        except ValueError as exc:
            raise MlmError(f"log_table: the columns do not make a table: {exc}") from exc
    if not isinstance(table, pd.DataFrame):
        raise MlmError(
            f"log_table: expected a pandas DataFrame or dict, got {type(table).__name__}"
        )
    if PurePosixPath(name).suffix.lower() == ".csv":
        data = table.to_csv(index=False).encode()
    else:
        data = table.to_json(orient="split", index=False, default_handler=str).encode()
    if len(data) > TABLE_CAP:
        raise MlmError(
            f"log_table: {name} is {len(data) >> 20} MB encoded, over the {TABLE_CAP >> 20} MB "
            "cap; log a sample, or write the file and log_artifact it"
        )
    return data


class Tail:
    """The last `cap` bytes of a stream, and how many bytes went by."""

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > 2 * self.cap:
            del self.buf[: len(self.buf) - self.cap]

    def value(self) -> bytes:
        data = bytes(self.buf[-self.cap :])
        cut = self.total - len(data)
        if cut:
            return (
                f"[gitmlm: the first {cut} bytes were cut; kept the last {len(data)}]\n".encode()
                + data
            )
        return data
