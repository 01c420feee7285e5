"""The `mlm-data` hook: block a commit whose datasets differ from the mlm.lock it commits.

It compares the staged mlm.lock (what the commit will hold) with the dataset files as they are,
through the stat cache, so on unchanged data it reads no file. It names what changed and the
command that fixes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gitmlm.core.git import Repo
from gitmlm.data import forking, lock
from gitmlm.errors import MlmError

SHOWN = 10
"""Paths listed per kind of change; the rest are counted."""


def _paths(kind: str, paths: list[str], base: str) -> list[str]:
    prefix = f"{base}/" if base else ""
    lines = [f"    {kind:<9}{prefix}{p}" for p in paths[:SHOWN]]
    if len(paths) > SHOWN:
        lines.append(f"    ... and {len(paths) - SHOWN} more {kind}")
    return lines


def check(repo: Repo) -> list[str]:
    """Lines telling what blocks the commit; [] when every dataset matches the staged lock."""
    from gitmlm.core import config
    from gitmlm.data import datasets as data

    root = repo.workdir
    if not config.load(root).get("datasets") and not (root / data.LOCK_FILE).exists():
        return []
    # The index the commit is made from: GIT_INDEX_FILE when git set one (`commit -a`, paths).
    staged = repo.index_blobs([data.LOCK_FILE]).get(data.LOCK_FILE)
    staged_text = repo.blob(staged).decode("utf-8", "replace") if staged is not None else ""
    try:
        worktree = lock.load(root)
    except MlmError:
        worktree = {}
    problems: list[str] = []
    for st in data.status(repo, lock_text=staged_text):
        if st.state == "clean":
            continue
        fp = st.current
        if fp is not None and worktree.get(st.name, {}).get("digest") == fp.digest:
            problems.append(
                f"dataset {st.name}: mlm.lock records it but that change is not staged\n"
                f"  fix: git add {data.LOCK_FILE}"
            )
        elif st.state == "unrecorded":
            problems.append(
                f"dataset {st.name} ({st.path}) is declared in mlm.toml but not recorded in "
                f"the staged mlm.lock\n  fix: git mlm data add {st.name}"
            )
        elif st.state == "error":
            problems.append(f"dataset {st.name} ({st.path}): {st.note}")
        elif st.state == "undeclared":
            problems.append(
                f"mlm.lock records dataset {st.name}, which mlm.toml no longer declares\n"
                f"  fix: git mlm data rm {st.name}   (or declare it again in mlm.toml)"
            )
        else:
            lines = [f"dataset {st.name} ({st.path}) differs from mlm.lock"]
            if st.changes is not None and fp is not None:
                c = st.changes
                lines[0] += (
                    f": {len(c.modified)} modified, {len(c.added)} added, {len(c.removed)} removed"
                )
                lines += _paths("modified", c.modified, fp.fileset.base)
                lines += _paths("added", c.added, fp.fileset.base)
                lines += _paths("removed", c.removed, fp.fileset.base)
            if st.note:
                lines.append(f"    ({st.note})")
            lines.append(
                f"  fix: git mlm data add {st.name}   (records the new version, stages it)"
            )
            problems.append("\n".join(lines))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlm-data",
        description="Fail when a declared dataset differs from the staged mlm.lock.",
    )
    parser.add_argument("filenames", nargs="*", help=argparse.SUPPRESS)
    parser.parse_args(argv)
    forking.allow()  # the hook's process runs nothing else: helpers may be forked
    try:
        problems = check(Repo.open())
    except MlmError as exc:
        print(f"mlm-data: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("mlm-data: the commit is blocked:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
