"""What `git mlm log` reads, cached under .git/mlm/cache without pygit2, so the fast path of
`git mlm log` (tracking/fastlog.py) reads them without loading git bindings. All three are in
Python's `marshal` format, which Python reads about three times faster than JSON (and needs no
`json` import):

- `briefs-3.marshal`: note blob id -> the runs of that note, briefly (never stale: keyed by
  blob; "-3" since rows end with the metrics text the log shows by default, and a tombstone's
  status reads "deleted", so packs written before are not read): the pack holds every run of
  the repository;
- `loglines-1.marshal`: note blob id -> the text of its runs' log lines (plain, and colored for
  a terminal) when no metric is named, for notes none of whose runs is running (never stale:
  keyed by blob). What a sweep's log is made of, read as a thousand strings instead of the
  hundred thousand objects of the briefs;
- `logview-1.marshal`: the notes tip it describes, annotated commit -> note blob for that tip,
  and the checkpoint refs with their base commits (stale as soon as either moved: then unused).
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Sequence
from typing import Any

Dir = str | os.PathLike[str]

Brief = tuple[str, str, str, str, int, dict[str, float], str]
"""What `git mlm log` shows of a run: (id, name, status, host, pid, metrics, and the text of
its metrics as the log shows them by default), so printing a sweep formats nothing."""

DEFAULT_METRICS = 4
"""Metrics a log line shows when none are named: the first by name."""


def metrics_text(values: dict[str, float], names: Sequence[str] = ()) -> str:
    """`name=value` of the `names` a run has (default: its first DEFAULT_METRICS by name)."""
    shown = names or sorted(values)[:DEFAULT_METRICS]
    return "  ".join([f"{m}={values[m]:.6g}" for m in shown if m in values])


# os.path, not pathlib: the log's fast path then need not import pathlib.


def _load(mlm_dir: Dir, name: str) -> Any:
    try:
        with open(os.path.join(mlm_dir, "cache", name), "rb") as fh:
            return marshal.loads(fh.read())  # one read: marshal.load(fh) reads piecemeal
    except (OSError, ValueError, EOFError, TypeError):
        return None  # missing, or written by an incompatible Python: rebuilt by the full path


def _save(mlm_dir: Dir, name: str, value: Any) -> None:
    """Atomically; a read-only .git just goes without the cache."""
    folder = os.path.join(mlm_dir, "cache")
    path = os.path.join(folder, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(marshal.dumps(value))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


PACK = "briefs-3.marshal"


def load_pack(mlm_dir: Dir) -> dict[str, list[Brief]]:
    pack = _load(mlm_dir, PACK)
    return pack if isinstance(pack, dict) else {}


def save_pack(mlm_dir: Dir, pack: dict[str, list[Brief]]) -> None:
    _save(mlm_dir, PACK, pack)


LINES = "loglines-1.marshal"

Lines = tuple[str, str]
"""A note's runs as log lines (each indented, joined by newlines; "" when none shows): plain,
and colored for a terminal."""


def load_lines(mlm_dir: Dir) -> dict[str, Lines]:
    lines = _load(mlm_dir, LINES)
    return lines if isinstance(lines, dict) else {}


def save_lines(mlm_dir: Dir, lines: dict[str, Lines]) -> None:
    _save(mlm_dir, LINES, lines)


VIEW = "logview-1.marshal"


def load_view(mlm_dir: Dir) -> dict[str, Any]:
    view = _load(mlm_dir, VIEW)
    return view if isinstance(view, dict) else {}


def save_view(
    mlm_dir: Dir,
    tip: str | None,
    entries: dict[str, str],
    checkpoints: dict[str, str],
    bases: dict[str, list[str]],
) -> None:
    """The notes of `tip` by commit, and checkpoint refs -> commit with their bases."""
    value = {"tip": tip, "entries": entries, "checkpoints": checkpoints, "bases": bases}
    _save(mlm_dir, VIEW, value)
