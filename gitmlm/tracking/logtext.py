"""`git mlm log`'s entries and text: each commit as git log shows it, its runs beneath.

No click and no pygit2 here: the full path (logview.py, through the CLI) and the fast path
(fastlog.py, plumbing and caches) build the same entries and print the same text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from gitmlm.core import ids
from gitmlm.core.briefcache import Brief as Row
from gitmlm.core.briefcache import metrics_text


class Commit(Protocol):
    @property
    def oid(self) -> str: ...
    @property
    def parents(self) -> tuple[str, ...]: ...
    @property
    def author(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def time(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def message(self) -> str: ...


class Brief(NamedTuple):
    """A run as the log shows it (a named tuple: a sweep's log makes thousands)."""

    id: str
    name: str
    status: str
    metrics: dict[str, float]
    committed: str | None = None
    """For a snapshot run: the commit its code was committed as (it shows there too)."""
    shown: str | None = None
    """Its metrics as shown when none are named (briefcache.metrics_text), made when cached."""


TableOf = Callable[[str, str], dict[str, Any]]
"""(commit, run id) -> the run's whole table in that commit's note ({} if unreadable)."""


class Entry:
    """A commit and its runs; `snapshots` are runs made on a dirty tree based on it (their
    code is a checkpoint). `lines`, when set, is its runs' text already made (note_lines)."""

    __slots__ = ("commit", "lines", "runs", "snapshots")

    def __init__(
        self, commit: Commit, runs: list[Brief] | None = None, lines: str | None = None
    ) -> None:
        self.commit = commit
        self.runs: list[Brief] = runs if runs is not None else []
        self.snapshots: list[Brief] = []
        self.lines = lines


def wanted(
    commits: Sequence[Commit], noted: Mapping[str, str], bases: Mapping[str, list[str]]
) -> list[str]:
    """The commits whose briefs the log needs: those with a note, and checkpoints on them."""
    out = [c.oid for c in commits if c.oid in noted]
    out += [cp for c in commits for cp in bases.get(c.oid, [])]
    return out


def assemble(
    commits: Sequence[Commit],
    bases: Mapping[str, list[str]],
    found: Mapping[str, list[Row]],
    table_of: TableOf | None,
) -> list[Entry] | None:
    """The log's entries. A live run (its heartbeat) and a checkpoint run (whether its code was
    committed since) need their whole table: without `table_of` (the fast path), None."""
    # A snapshot run whose code was committed (checkpoints/placement.py) shows on that commit;
    # when the commit is in view, it is not shown again on its base as uncommitted.
    committed = {row[0] for c in commits for row in found.get(c.oid, [])}
    out = []
    for commit in commits:
        runs = _briefs(found.get(commit.oid, []), commit.oid, table_of, snapshot=False)
        if runs is None:
            return None
        entry = Entry(commit, runs)
        for cp in bases.get(commit.oid, []):
            rows = [row for row in found.get(cp, []) if row[0] not in committed]
            snaps = _briefs(rows, cp, table_of, snapshot=True)
            if snaps is None:
                return None
            entry.snapshots.extend(snaps)
        out.append(entry)
    return out


def note_lines(rows: Iterable[Row]) -> tuple[str, str] | None:
    """The log lines of a note's runs when no metric is named (plain, colored), as `render`
    prints them; None when a run is running (its status is decided when shown)."""
    runs = _briefs(rows, "", None, snapshot=False)
    if runs is None:
        return None
    plain = "\n".join(["    " + run_line(r, (), False) for r in runs])
    return plain, "\n".join(["    " + run_line(r, (), True) for r in runs])


def _briefs(
    rows: Iterable[Row], commit: str, table_of: TableOf | None, *, snapshot: bool
) -> list[Brief] | None:
    out = []
    for rid, name, status, host, pid, metrics, shown_metrics in rows:
        if status == "deleted":  # a tombstone (`git mlm runs rm`): notes.briefs says so
            continue
        if status != "running" and not snapshot:  # what a sweep's log is made of: as stored
            out.append(Brief(rid, name, status, metrics, None, shown_metrics))
            continue
        if table_of is None:
            return None
        # Here only (a live or snapshot run): a sweep's log need not load datetime.
        from gitmlm.tracking import liveness

        table = table_of(commit, rid)
        attached = [c for c in table.get("attached", []) if isinstance(c, str)]
        every = table.get("heartbeat_every")
        shown = liveness.status(
            status,
            host,
            pid,
            table.get("updated"),
            table.get("pid_ns"),
            float(every) if isinstance(every, (int, float)) else None,
        )
        committed = attached[0] if attached else None
        out.append(Brief(rid, name, shown, metrics, committed, shown_metrics))
    return out


# click.style's codes, so the full and the fast path color alike.
_RESET = "\x1b[0m"
_COLORS = {"yellow": 33, "green": 32, "red": 31, "cyan": 36}
_STATUS_COLORS = {"finished": "green", "failed": "red", "crashed": "red", "running": "cyan"}


def _style(text: str, fg: str | None) -> str:
    start = f"\x1b[{_COLORS[fg]}m" if fg else ""
    return f"{start}{text}{_RESET}"


def run_line(r: Brief, metrics: Sequence[str], color: bool) -> str:
    shown = r.shown if r.shown is not None and not metrics else metrics_text(r.metrics, metrics)
    status = f"{r.status:<8}"
    if color:
        status = _style(status, _STATUS_COLORS.get(r.status))
    return f"run {r.id[: ids.SHORT]}  {r.name}  {status}  {shown}".rstrip()


def render(
    entries: Iterable[Entry],
    decorations: Mapping[str, list[str]],
    head: tuple[str | None, str | None],
    metrics: Sequence[str],
    oneline: bool,
    color: bool,
) -> str:
    """The log's text; `head` is (HEAD's commit, its branch or None when detached)."""
    head_commit, head_branch = head
    out: list[str] = []
    for entry in entries:
        c = entry.commit
        names = decorations.get(c.oid, [])
        if c.oid == head_commit:
            names = [f"HEAD -> {n}" if n == head_branch else n for n in names] or ["HEAD"]
        deco = f" ({', '.join(names)})" if names else ""
        subject = c.message.split("\n", 1)[0]
        if oneline:
            out.append(_yellow(c.oid[:7], color) + deco + " " + subject)
        else:
            when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(c.time + c.offset * 60))
            sign = "+" if c.offset >= 0 else "-"
            tz = f"{sign}{abs(c.offset) // 60:02d}{abs(c.offset) % 60:02d}"
            out += [
                _yellow(f"commit {c.oid}", color) + deco,
                f"Author: {c.author} <{c.email}>",
                f"Date:   {when} {tz}",
                "",
            ]
            out += ["    " + line for line in c.message.rstrip("\n").split("\n")]
            if entry.runs or entry.snapshots or entry.lines:
                out.append("")
        if entry.lines:
            out.append(entry.lines)
        for r in entry.runs:
            out.append("    " + run_line(r, metrics, color))
        for r in entry.snapshots:
            mark = f"[code committed as {r.committed[:7]}]" if r.committed else "[uncommitted code]"
            out.append("    " + run_line(r, metrics, color) + "  " + mark)
        if not oneline:
            out.append("")
    return "\n".join(out).rstrip("\n")


def _yellow(text: str, color: bool) -> str:
    return _style(text, "yellow") if color else text
