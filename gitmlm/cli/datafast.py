"""The fast path of `git mlm data status`, and the rendering both paths share.

On unchanged data the answer is in the stat cache's memos (data/statcache.py): no file is read
and no folder walked. Then importing click and pygit2 is most of the command's time, so this
runs before them (from `gitmlm.cli.main`). It answers only when every chosen dataset is
declared, recorded, and vouched clean by its memo; anything else — an option it does not know,
a dataset not clean, a lock-only entry, an error of any kind — returns None and the full path
answers (so messages and errors have one home there).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gitmlm.core import fmt, gitcmd

COLUMNS = ["dataset", "status", "modified", "added", "removed", "path"]


def render(rows: Sequence[dict[str, Any]], fmt_: str) -> tuple[str, list[str]]:
    """stdout's text and stderr's lines for `data status` rows."""
    cols = COLUMNS if fmt_ == "table" else [*COLUMNS, "digest", "note"]
    notes = [f"{r['dataset']}: {r['note']}" for r in rows if r["note"]] if fmt_ == "table" else []
    return fmt.render(rows, cols, fmt_), notes


def _parse(argv: Sequence[str]) -> tuple[list[str], bool, str] | None:
    names: list[str] = []
    exit_code = False
    fmt_ = "table"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--exit-code":
            exit_code = True
        elif a == "--format" and i + 1 < len(argv):
            fmt_, i = argv[i + 1], i + 1
        elif a.startswith("--format="):
            fmt_ = a.partition("=")[2]
        elif a.startswith("-"):
            return None  # --help, --, anything else: the full path knows
        else:
            names.append(a)
        i += 1
    return (names, exit_code, fmt_) if fmt_ in fmt.FORMATS else None


def run(argv: Sequence[str]) -> int | None:
    """`git mlm data status ARGV`'s exit code when answered here (output printed), else None
    with nothing printed."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    names, _exit_code, fmt_ = parsed
    try:
        rows = _clean_rows(names)
    except Exception:  # any doubt is the full path's to answer, errors included
        return None
    if rows is None:
        return None
    text, _ = render(rows, fmt_)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0  # every dataset is clean: --exit-code has nothing to report


def _clean_rows(names: list[str]) -> list[dict[str, Any]] | None:
    from gitmlm.core import config
    from gitmlm.data import lock as lockfile
    from gitmlm.data import spec as dataspec
    from gitmlm.data import statcache

    done = gitcmd.proc(["rev-parse", "--show-toplevel", "--git-common-dir"])
    if done.returncode != 0:
        return None
    top, common = done.stdout.splitlines()[:2]
    root = Path(top)
    specs = {s.name: s for s in dataspec.declared(root, config.load(root))}
    lock = lockfile.load(root)
    if not specs or any(n not in specs for n in lock):
        return None
    if any(n not in specs for n in names):
        return None
    chosen = list(dict.fromkeys(names)) if names else list(specs)
    cache = statcache.StatCache.load(Path(os.path.abspath(common)) / "mlm", root)
    base = os.path.normpath(os.path.abspath(root))
    rows = []
    filesets = []
    for name in chosen:
        spec, locked = specs[name], lock.get(name)
        memo = cache.memos.get(spec.memo_key)
        if memo is None or locked is None or locked["digest"] != memo.digest:
            return None
        if (locked["path"], locked["algorithm"]) != (spec.path, spec.algorithm):
            return None
        fs = statcache.quick(base, spec, memo)
        if fs is None:
            return None
        filesets.append(fs)
        rows.append(
            {
                "dataset": name,
                "status": "clean",
                "modified": None,
                "added": None,
                "removed": None,
                "path": spec.path,
                "digest": memo.digest,
                "note": "",
            }
        )
    if not names:
        dataspec.check_disjoint(filesets)
    return rows
