"""What the Data pages show, read through gitmlm.data: datasets, their recorded versions
across commits, and the file-level diff between two of them."""

from __future__ import annotations

from typing import Any

from gitmlm.core.git import Repo
from gitmlm.data import datasets
from gitmlm.data import lock as lockfile
from gitmlm.errors import MlmError

HISTORY = 100
"""Commits of mlm.lock read for the versions table (newest first)."""


def data_page(repo: Repo) -> dict[str, Any]:
    return {"datasets": datasets.listing(repo) if repo.head().commit is not None else []}


def versions(repo: Repo, name: str) -> list[dict[str, Any]]:
    """Each commit that changed `name`'s record in mlm.lock, newest first."""
    out: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    commits = repo.commits_touching(lockfile.FILE)[:HISTORY]
    for commit in reversed(commits):
        try:
            rec = lockfile.at(repo, commit).get(name)
        except MlmError:
            continue
        if rec is not None and (last is None or rec["digest"] != last["digest"]):
            info = repo.commit(commit)
            out.append(
                {
                    "commit": commit,
                    "subject": info.message.strip().splitlines()[0] if info.message else "",
                    "digest": rec["digest"],
                    "size": rec.get("size"),
                    "files": rec.get("files"),
                }
            )
        last = rec
    return list(reversed(out))


def dataset_page(repo: Repo, name: str, a: str = "", b: str = "") -> dict[str, Any]:
    known = {d.name: d for d in datasets.listing(repo)}
    if name not in known:
        raise MlmError(f"no dataset {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    vs = versions(repo, name)
    diff = None
    error = ""
    if not (a or b) and len(vs) >= 2:
        a, b = vs[1]["commit"], vs[0]["commit"]
    listed = {v["commit"] for v in vs}
    for side in (a, b):
        # Only recorded versions compare: no revision text from a URL reaches git.
        if side and side not in listed:
            raise MlmError(f"{side[:12]!r} is not a recorded version of dataset {name!r}")
    if a and b:
        try:
            diff = datasets.diff(repo, name, a, b)
        except MlmError as exc:
            error = str(exc)
    return {"dataset": known[name], "versions": vs, "diff": diff, "a": a, "b": b, "error": error}
