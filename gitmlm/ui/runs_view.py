"""What the Runs, Run and Compare pages show, read through gitmlm.tracking. Plain data."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gitmlm import storage
from gitmlm.core import codec, fmt, refs, where
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES, Run, flat_row
from gitmlm.errors import MlmError
from gitmlm.tracking import query
from gitmlm.tracking import record as runs

PER_PAGE = 100
MAX_COMPARE = 20
GROUPS = ("", "commit", "branch")
_DEFAULT_ATTRS = ["name", "status", "commit", "started"]
_KEEP_SELECTIONS = 8
MAX_POINTS = 1000
"""Points sent per drawn series: a chart is about 600 pixels wide, so a longer series is sent as
the lowest and highest point of each of 500 buckets (a spike always shows; nothing is averaged
away)."""
_DEFAULT_EACH = 6
"""Default columns: the attributes above and up to this many metrics and params (the most used)."""


@dataclass
class Listed:
    """A listing and its flat rows, read once per state of the runs notes ref."""

    tip: str | None
    listing: runs.Listing
    rows: list[dict[str, Any]]
    columns: list[str]
    """Every column any run has, attributes first, then by use (most used first)."""
    by_id: dict[str, Run] = field(default_factory=dict)
    selected: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """The last few (where, order) selections, so paging through one never filters again."""

    def select(self, where_text: str, order: str) -> list[dict[str, Any]]:
        key = (where_text, order)
        found = self.selected.get(key)
        if found is None:
            found = query.select_rows(self.rows, where_text or None, order or None)
            if len(self.selected) >= _KEEP_SELECTIONS:
                self.selected.pop(next(iter(self.selected)))
            self.selected[key] = found
        return found


class Listings:
    """The runs listing, re-read only when `refs/notes/mlm` moves, so a warm page never parses
    a note; safe to share between the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: Listed | None = None

    def get(self, repo: Repo) -> Listed:
        tip = repo.ref(refs.RUNS)
        with self._lock:
            if self._cached is not None and self._cached.tip == tip:
                return self._cached
            listing = runs.list_runs(repo, placed_only=True)
            # Archived runs are hidden as in `git mlm runs` (still reachable by id).
            rows = [flat_row(r) for r in listing.runs if not r.archived]
            by_id = {r.id: r for r in listing.runs}
            self._cached = Listed(tip, listing, rows, _columns(rows), by_id)
            return self._cached


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    use: dict[str, int] = {}
    for row in rows:
        for key in row:
            use[key] = use.get(key, 0) + 1
    attrs = [a for a in ATTRIBUTES if a in use]
    order = {"metrics": 0, "params": 1, "tags": 2, "datasets": 3}
    rest = sorted(
        (k for k in use if k not in attrs),
        key=lambda k: (order.get(k.split(".", 1)[0], 9), -use[k], k),
    )
    return attrs + rest


def default_columns(all_columns: list[str]) -> list[str]:
    out = [c for c in _DEFAULT_ATTRS if c in all_columns]
    for kind in ("metrics.", "params."):
        out += [c for c in all_columns if c.startswith(kind)][:_DEFAULT_EACH]
    return out


@dataclass
class RunsPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    columns: list[str]
    all_columns: list[str]
    where: str = ""
    order: str = ""
    group: str = ""
    error: str = ""
    groups: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def cells(self, row: dict[str, Any]) -> list[tuple[str, bool]]:
        """The row's shown columns as (text, is a number), ready for the template."""
        out = []
        for c in self.columns:
            value = row.get(c)
            if c == "commit":
                out.append(((value or "")[:10], False))
            elif c in ("started", "ended"):
                out.append(((value or "")[:19].replace("T", " "), False))
            else:
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                out.append((fmt.cell(value), number))
        return out


def runs_page(
    listed: Listed,
    where_text: str = "",
    order: str = "",
    page: int = 1,
    columns: list[str] | None = None,
    group: str = "",
    per_page: int = PER_PAGE,
) -> RunsPage:
    """One page of the runs that match `where_text` (the --where language), in `order`.

    A bad filter, order or column is shown as `error` over an empty table, never ignored.
    """
    known = listed.columns
    error = ""
    rows: list[dict[str, Any]] = []
    try:
        if group not in GROUPS:
            raise MlmError(f"group by {group!r}: choose commit or branch")
        chosen = [c for c in (columns or []) if c]
        for c in chosen:
            where.check_column(c, known, (), "columns")
        # Unknown names in the filter or the order are the query's own errors (tracking.query).
        rows = listed.select(where_text.strip(), order.strip())
    except MlmError as exc:
        error = str(exc)
        chosen = []
    shown = chosen or default_columns(known)
    total = len(rows)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    if group:
        # Grouping keeps the order inside each group; groups come in order of first appearance.
        rows = sorted(rows, key=_first_seen(rows, group))
    window = rows[(page - 1) * per_page : page * per_page]
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    if group:
        for row in window:
            key = str(row.get(group) or "(none)")
            if not groups or groups[-1][0] != key:
                groups.append((key, []))
            groups[-1][1].append(row)
    problems = [f"skipped the note on {c[:12]}: {p}" for c, p in listed.listing.errors]
    return RunsPage(
        window, total, page, pages, shown, known, where_text, order, group, error, groups, problems
    )


def static_filter(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the static report's Runs page needs to filter `rows` with the --where language in
    the browser (static/where.js): the grammar's tables (from gitmlm.core.where, its one home),
    the columns a query may name, and every row's values (column index -> value). A float that
    JavaScript would print otherwise than Python travels as Python's text (`{"n": "1.0"}`:
    `like` matches that text, and JSON has no NaN), as do integers beyond JavaScript's exact
    range; lists and tables as `{"o": 1}`, which no comparison matches."""
    known, open_prefixes = query.known_columns(rows)
    columns = sorted(known)
    index = {c: str(i) for i, c in enumerate(columns)}
    encoded = []
    for row in rows:
        cells = {index[k]: _js_value(v) for k, v in query.with_times(row).items() if v is not None}
        encoded.append([row["run_id"], cells])
    return {
        "grammar": where.grammar(),
        "known": columns,
        "open": list(open_prefixes),
        "columns": columns,
        "rows": encoded,
    }


_JS_EXACT = 2**53


def _js_value(value: Any) -> Any:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_JS_EXACT < value < _JS_EXACT else {"n": str(value)}
    if isinstance(value, float):
        # Both languages print the shortest round-trip digits; they differ only in when they
        # switch to exponents (Python below 1e-4 and from 1e16) and in "1.0" (JavaScript: "1").
        if 1e-4 <= abs(value) < 1e16 and not value.is_integer():
            return value
        return {"n": repr(value)}
    return {"o": 1}


def _first_seen(rows: list[dict[str, Any]], group: str) -> Any:
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        first.setdefault(str(row.get(group) or ""), i)
    return lambda row: first[str(row.get(group) or "")]


def cell(value: Any) -> str:
    return fmt.cell(value)


# --- one run, and several --------------------------------------------------------------------


def run_of(repo: Repo, listed: Listed, run_id: str, problems: list[str]) -> Run:
    """A run with its series; a series that cannot be read is a line in `problems`, shown on
    the page (the run is never drawn as if it had no curves)."""
    run = listed.by_id.get(run_id) or runs.resolve(listed.listing, run_id)
    if run.series and not run.steps:
        run.steps = runs.load_steps(repo, listed.listing, run, problems)
    return run


def run_detail(repo: Repo, listed: Listed, run_id: str) -> dict[str, Any]:
    """Everything the Run page shows: the record, its series, and the code it ran."""
    problems: list[str] = []
    run = run_of(repo, listed, run_id, problems)
    code: dict[str, Any] = {"commit": run.commit, "checkpoint": run.checkpoint}
    if run.base and run.base != run.commit and repo.has_object(run.base):
        # A checkpoint run: its code is a snapshot commit; show what it changed on its base.
        code["base"] = run.base
        if repo.has_object(run.commit):
            code["diffstat"] = repo.diffstat(run.base, run.commit)
    if repo.has_object(run.commit):
        code["message"] = repo.commit(run.commit).message.strip()
    return {
        "run": run,
        "doc": codec.run_to_dict(run),
        "flat_params": {k[7:]: v for k, v in flat_row(run).items() if k.startswith("params.")},
        "code": code,
        "chart": chart_runs([run]),
        "problems": problems,
    }


@dataclass(frozen=True)
class Download:
    """What an artifact link sends: a file object's verified path, or (for a folder) the
    folder's digest, to be zipped from the object store; and a safe file name."""

    name: str
    path: Path | None = None
    folder: str = ""


def artifact_download(repo: Repo, listed: Listed, run_id: str, name: str) -> Download:
    """An artifact of a run. The URL's path is only a key into the run's `artifacts` table,
    never a path on disk: the bytes come from the object store by the recorded digest."""
    run = listed.by_id.get(run_id) or runs.resolve(listed.listing, run_id)
    parts = name.split("/")
    info = run.artifacts.get(name) if ".." not in parts else None
    if info is None:
        raise MlmError(f"run {run.id[:12]} has no artifact {name!r}")
    digest = str(info.get("digest", ""))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", PurePosixPath(name).name).lstrip(".") or "artifact"
    if info.get("kind") == "dir":
        return Download(safe + ".zip", folder=digest)
    try:
        path = storage.fetch(repo, digest)
    except MlmError as exc:
        raise MlmError(f"artifact {name!r} of run {run.id[:12]}: {exc}") from None
    return Download(safe, path=path)


def zip_folder(repo: Repo, run_id: str, name: str, digest: str, out: IO[bytes]) -> None:
    """The folder artifact's files zipped into `out`, each checked against its digest; one
    clear MlmError (and nothing sent) when an object is missing or does not match."""
    try:
        storage.zip_folder(repo, digest, out)
    except MlmError as exc:
        raise MlmError(f"artifact {name!r} of run {run_id[:12]}: {exc}") from None


def chart_runs(chosen: list[Run]) -> list[dict[str, Any]]:
    """The runs as the charts read them: id, name, flat params, metrics, step series."""
    out = []
    for run in chosen:
        row = flat_row(run)
        out.append(
            {
                "id": run.id,
                "name": run.name,
                "params": {k[7:]: _json_safe(v) for k, v in row.items() if k.startswith("params.")},
                "metrics": {k: _json_safe(v) for k, v in run.metrics.items()},
                "steps": {k: thin(v["step"], v["value"]) for k, v in run.steps.items()},
            }
        )
    return out


def thin(steps: list[float], values: list[float]) -> dict[str, list[Any]]:
    """A series cut to at most MAX_POINTS: per bucket its lowest and highest point, in step
    order; non-finite values read as gaps (JSON has no NaN)."""
    n = len(steps)
    if n > MAX_POINTS:
        buckets = MAX_POINTS // 2
        keep: list[int] = []
        isfinite = math.isfinite
        for b in range(buckets):
            lo, hi = n * b // buckets, n * (b + 1) // buckets
            low = high = -1
            for i in range(lo, hi):
                v = values[i]
                if not isfinite(v):
                    continue
                if low < 0 or v < values[low]:
                    low = i
                if high < 0 or v > values[high]:
                    high = i
            if low < 0:
                keep.append(lo)
            elif low == high:
                keep.append(low)
            else:
                keep.extend((low, high) if low < high else (high, low))
        steps = [steps[i] for i in keep]
        values = [values[i] for i in keep]
    return {"step": steps, "value": [v if math.isfinite(v) else None for v in values]}


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or infinity: the charts read them as missing; the tables print them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return fmt.cell(value)
    return value


def compare(
    repo: Repo, listed: Listed, run_ids: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The chosen runs as the charts read them, and any series that could not be read."""
    ids = [i for i in dict.fromkeys(x.strip() for x in run_ids) if i]
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise MlmError(f"compare 2 to {MAX_COMPARE} runs (got {len(ids)}): tick them on Runs")
    problems: list[str] = []
    chosen = [run_of(repo, listed, i, problems) for i in ids]
    return chart_runs(chosen), problems
