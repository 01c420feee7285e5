"""The fast path of `git mlm log`: git plumbing and the caches the full path leaves, without
click or pygit2 (their import was most of the command's time). Anything it is not sure of
(an option it does not know, a notes ref or checkpoint that moved since the cache, a note not
in the brief pack, a git error) returns None, and the full path answers instead.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from gitmlm.core import gitcmd, refs

if TYPE_CHECKING:
    from gitmlm.core import briefcache
    from gitmlm.core.records import CommitInfo

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


def _git(*args: str) -> subprocess.Popen[bytes]:
    return gitcmd.start(args)


def _out(proc: subprocess.Popen[bytes]) -> str | None:
    data, _ = proc.communicate()
    return data.decode("utf-8", "replace") if proc.returncode == 0 else None


def _commits(text: str) -> list[CommitInfo]:
    from gitmlm.core.records import CommitInfo

    out = []
    for record in text.split("\0"):
        record = record.lstrip("\n")
        if not record:
            continue
        oid, parents, author, email, when, date, tree, message = record.split("\x1f", 7)
        tz = date.rsplit(" ", 1)[1]
        offset = int(tz[1:3]) * 60 + int(tz[3:5])
        out.append(
            CommitInfo(
                oid,
                tuple(parents.split()),
                author,
                email,
                int(when),
                -offset if tz[0] == "-" else offset,
                message,
                tree,
            )
        )
    return out


def run(argv: list[str]) -> bool:
    """Print `git mlm log ARGV` if the fast path can; False (nothing printed) otherwise."""
    args = _parse(argv)
    if args is None:
        return False
    revs = [*args.revisions] or ["HEAD"]
    limit = [f"--max-count={args.limit}"] if args.limit is not None else []
    # Three git processes at once: the wall time is the slowest, not the sum.
    procs = [
        _git("rev-parse", "--git-common-dir", "HEAD", "--symbolic-full-name", "HEAD"),
        _git(
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)",
        ),
        _git(
            "log",
            "--date-order",
            "-z",
            "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%at%x1f%ai%x1f%T%x1f%B",
            *limit,
            *revs,
            "--",
        ),
    ]
    from pathlib import Path

    from gitmlm.core import briefcache
    from gitmlm.tracking import logtext

    head_text = _out(procs[0])  # the quickest: where the caches are
    if head_text is None:
        for p in procs[1:]:
            p.communicate()
        return False
    common, head_commit, symbolic = head_text.split("\n")[:3]
    mlm_dir = Path(common) / "mlm"
    # Read while git log still works; used only if the refs show they are current.
    view = briefcache.load_view(mlm_dir)
    pack = briefcache.load_pack(mlm_dir)
    refs_text, log_text = (_out(p) for p in procs[1:])
    if refs_text is None or log_text is None:
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
    commits = _commits(log_text)
    if tip is None:
        found: dict[str, list[briefcache.Brief]] = {}
        bases: dict[str, list[str]] = {}
    else:
        if view.get("tip") != tip or view.get("checkpoints") != checkpoints:
            return False
        noted: dict[str, str] = view["entries"]
        bases = view["bases"]
        found = {}
        for c in logtext.wanted(commits, noted, bases):
            if c not in noted:
                continue  # a checkpoint without runs: the full path shows none either
            rows = pack.get(noted[c])
            if rows is None:
                return False
            found[c] = rows
    branch = symbolic[len("refs/heads/") :] if symbolic.startswith("refs/heads/") else None
    entries = logtext.assemble(commits, bases, found, None)
    if entries is None:
        return False  # a live or checkpoint run in view: its whole table is the full path's
    color = sys.stdout.isatty()
    text = logtext.render(
        entries, decorations, (head_commit, branch), args.metrics, args.oneline, color
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return True
