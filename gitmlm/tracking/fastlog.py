"""The fast path of `git mlm log`: git plumbing and the caches the full path leaves, without
click or pygit2 (their import was most of the command's time). Anything it is not sure of
(an option it does not know, a notes ref or checkpoint that moved since the cache, a note in
neither cache, a running run, a git error) returns False, and the full path answers instead.

A sweep's log (no metric named, no checkpoint in view) prints each commit's runs from the text
cached for its note (briefcache `loglines`): one string per commit, nothing formatted per run.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from gitmlm.core import gitcmd, refs

if TYPE_CHECKING:
    from gitmlm.core import briefcache
    from gitmlm.tracking import logtext

# What the log needs besides git is imported in `run` after git has started: git works while
# Python loads the rest.


class _Args:
    def __init__(self, revisions: list[str]) -> None:
        self.revisions = revisions
        self.limit: int | None = None
        self.metrics: tuple[str, ...] = ()
        self.oneline = False


def _parse(argv: list[str]) -> _Args | None:
    args = _Args([])
    metrics: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        value: str | None = None
        if a in ("-n", "--max-count", "-m", "--metric"):
            if i + 1 >= len(argv):
                return None
            value, i = argv[i + 1], i + 1
        elif a.startswith("--max-count=") or a.startswith("--metric="):
            a, _, value = a.partition("=")
        elif a.startswith("-n") and a[2:].isdigit():
            a, value = "-n", a[2:]
        if a in ("-n", "--max-count"):
            if value is None or not value.isdigit():
                return None
            args.limit = int(value)
        elif a in ("-m", "--metric"):
            assert value is not None
            metrics.append(value)
        elif a == "--oneline":
            args.oneline = True
        elif a.startswith("-") and not a.startswith("^"):
            return None  # --help, "--", anything else: the full path knows
        else:
            args.revisions.append(a)
        i += 1
    args.metrics = tuple(metrics)
    return args


def _out(proc: gitcmd.Started) -> str | None:
    data = proc.output()
    return data.decode("utf-8", "replace") if data is not None else None


class _Commit:
    """A commit as `git log` printed it (logtext.Commit); not records.CommitInfo, whose module
    loads dataclasses."""

    __slots__ = ("author", "email", "message", "offset", "oid", "parents", "time")

    def __init__(self, oid: str, author: str, email: str, when: int, offset: int, message: str):
        self.oid = oid
        self.parents: tuple[str, ...] = ()  # the log does not show them
        self.author = author
        self.email = email
        self.time = when
        self.offset = offset
        self.message = message


LOG_FORMAT = "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%ai%x1f%B"
REF_FORMAT = "%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)"


def _commits(text: str) -> list[_Commit]:
    out = []
    for record in text.split("\0"):
        record = record.lstrip("\n")
        if not record:
            continue
        oid, author, email, when, date, message = record.split("\x1f", 5)
        tz = date[-5:]  # %ai ends with the offset: +hhmm
        offset = int(tz[1:3]) * 60 + int(tz[3:5])
        out.append(
            _Commit(oid, author, email, int(when), -offset if tz[0] == "-" else offset, message)
        )
    return out


def run(argv: list[str]) -> bool:
    """Print `git mlm log ARGV` if the fast path can; False (nothing printed) otherwise."""
    args = _parse(argv)
    if args is None:
        return False
    revs = [*args.revisions] or ["HEAD"]
    limit = [f"--max-count={args.limit}"] if args.limit is not None else []
    # Three git processes at once: the wall time is the slowest, not the sum. The log, the
    # slowest, starts first.
    procs: list[gitcmd.Started] = []
    try:
        for git_args in (
            ["log", "--date-order", "-z", LOG_FORMAT, *limit, *revs, "--"],
            ["rev-parse", "--git-common-dir", "HEAD", "--symbolic-full-name", "HEAD"],
            ["for-each-ref", f"--format={REF_FORMAT}"],
        ):
            procs.append(gitcmd.Started(git_args))
    except OSError:  # no git to start: the full path says so
        for p in procs:
            p.stop()
        return False
    from gitmlm.core import briefcache
    from gitmlm.tracking import logtext

    head_text = _out(procs[1])  # the quickest: where the caches are
    if head_text is None:
        for p in (procs[0], procs[2]):
            p.stop()
        return False
    common, head_commit, symbolic = head_text.split("\n")[:3]
    mlm_dir = os.path.join(common, "mlm")
    color = sys.stdout.isatty()
    # Read while git log still works; used only if the refs show they are current.
    view = briefcache.load_view(mlm_dir)
    lines = briefcache.load_lines(mlm_dir) if not args.metrics else {}
    refs_text = _out(procs[2])
    if refs_text is None:
        procs[0].stop()
        return False
    tip = None
    checkpoints: dict[str, str] = {}
    decorations: dict[str, list[str]] = {}
    for line in refs_text.splitlines():
        oid, kind, peeled, peeled_kind, name = line.split(" ", 4)
        if name == refs.RUNS:
            tip = oid
        elif name.startswith(refs.CHECKPOINTS):
            checkpoints[name] = oid
        elif name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")):
            target = peeled if peeled else oid
            if (peeled_kind or kind) != "commit":
                continue  # a tag of a tree or blob: no commit to decorate
            tag = name.startswith("refs/tags/")
            short = "tag: " + name[10:] if tag else name.split("/", 2)[2]
            decorations.setdefault(target, []).append(short)
    if tip is not None and (view.get("tip") != tip or view.get("checkpoints") != checkpoints):
        procs[0].stop()
        return False
    log_text = _out(procs[0])
    if log_text is None:
        return False
    commits = _commits(log_text)
    entries = None
    if tip is None:
        entries = [logtext.Entry(c) for c in commits]
    elif lines:
        entries = _from_lines(commits, view["entries"], view["bases"], lines, color)
    if entries is None:
        entries = _from_briefs(commits, view["entries"], view["bases"], mlm_dir)
    if entries is None:
        return False
    branch = symbolic[len("refs/heads/") :] if symbolic.startswith("refs/heads/") else None
    text = logtext.render(
        entries, decorations, (head_commit, branch), args.metrics, args.oneline, color
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return True


def _from_lines(
    commits: list[_Commit],
    noted: dict[str, str],
    bases: dict[str, list[str]],
    lines: dict[str, briefcache.Lines],
    color: bool,
) -> list[logtext.Entry] | None:
    """A sweep's log: each commit's runs as the text cached for its note, one string each.
    None when a commit in view has checkpoints or a note without cached lines."""
    from gitmlm.tracking.logtext import Entry

    which = 1 if color else 0
    out = []
    for c in commits:
        if c.oid in bases:
            return None  # runs on uncommitted code: their records decide where they show
        blob = noted.get(c.oid)
        if blob is None:
            out.append(Entry(c))
            continue
        made = lines.get(blob)
        if made is None:
            return None
        out.append(Entry(c, lines=made[which]))
    return out


def _from_briefs(
    commits: list[_Commit], noted: dict[str, str], bases: dict[str, list[str]], mlm_dir: str
) -> list[logtext.Entry] | None:
    """Entries from the briefs of every run (named metrics, checkpoints); None when a note in
    view is not in the pack, or a run there needs its whole record."""
    from gitmlm.core import briefcache
    from gitmlm.tracking import logtext

    pack = briefcache.load_pack(mlm_dir)
    found: dict[str, list[briefcache.Brief]] = {}
    for c in logtext.wanted(commits, noted, bases):
        if c not in noted:
            continue  # a checkpoint without runs: the full path shows none either
        rows = pack.get(noted[c])
        if rows is None:
            return None
        found[c] = rows
    return logtext.assemble(commits, bases, found, None)
