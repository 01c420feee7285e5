"""What `git mlm log` reads, cached under .git/mlm/cache: plain JSON files, no pygit2, so the
fast path of `git mlm log` (tracking/fastlog.py) reads them without loading git bindings.

- `briefs-3.marshal`: note blob id -> the runs of that note, briefly (never stale: keyed by
  blob; "-3" since rows end with the metrics text the log shows by default, and a tombstone's
  status reads "deleted", so packs written before are not read). In marshal's format, which
  Python reads about three times faster than JSON: the pack holds every run of the repository;
- `logview.json`: the notes tip it describes, annotated commit -> note blob for that tip, and
  the checkpoint refs with their base commits (stale as soon as either moved: then unused).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Brief = tuple[str, str, str, str, int, dict[str, float], str]
"""What `git mlm log` shows of a run: (id, name, status, host, pid, metrics, and the text of
its metrics as the log shows them by default), so printing a sweep formats nothing."""

DEFAULT_METRICS = 4
"""Metrics a log line shows when none are named: the first by name."""


def metrics_text(values: dict[str, float], names: Sequence[str] = ()) -> str:
    """`name=value` of the `names` a run has (default: its first DEFAULT_METRICS by name)."""
    shown = names or sorted(values)[:DEFAULT_METRICS]
    return "  ".join([f"{m}={values[m]:.6g}" for m in shown if m in values])


def _read(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write(path: Path, value: Any) -> None:
    """Atomically; a read-only .git just goes without the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


PACK = "briefs-3.marshal"


def load_pack(mlm_dir: Path) -> dict[str, list[Brief]]:
    import marshal

    try:
        with open(mlm_dir / "cache" / PACK, "rb") as fh:
            pack = marshal.load(fh)
    except (OSError, ValueError, EOFError, TypeError):
        return {}  # missing, or written by an incompatible Python: rebuilt by the full path
    return pack if isinstance(pack, dict) else {}


def save_pack(mlm_dir: Path, pack: dict[str, list[Brief]]) -> None:
    import marshal

    path = mlm_dir / "cache" / PACK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(pack))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass  # a read-only .git just goes without the cache


def load_view(mlm_dir: Path) -> dict[str, Any]:
    view = _read(mlm_dir / "cache" / "logview.json")
    return view if isinstance(view, dict) else {}


def save_view(
    mlm_dir: Path,
    tip: str | None,
    entries: dict[str, str],
    checkpoints: dict[str, str],
    bases: dict[str, list[str]],
) -> None:
    """The notes of `tip` by commit, and checkpoint refs -> commit with their bases."""
    value = {"tip": tip, "entries": entries, "checkpoints": checkpoints, "bases": bases}
    _write(mlm_dir / "cache" / "logview.json", value)
