"""Recorded model scans: the key of a scan and how to read scans back (no numpy, no scanning).

`git mlm scan` writes one table per (model version, evaluation data) into the note on the
version's commit under `refs/notes/mlm-scans`; the registry's gate and `git mlm model show`
read them here, so the registry never imports the scanner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmlm.core import notes as store
from gitmlm.core import refs
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

SEVERITIES = ("major", "medium", "minor")


def key(subject: str, data_digest: str) -> str:
    """One table per subject (`churn@v1.2.0` or `run <id>`) and evaluation data: a rescan of
    the same version on the same data replaces it (sync keeps the later `updated`)."""
    return f"{subject} {data_digest}"


@dataclass(frozen=True)
class Recorded:
    key: str
    commit: str
    doc: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self.doc.get("findings", [])]

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.get("severity") == severity)

    @property
    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in SEVERITIES)
        return f"{counts} on {self.doc.get('data', '?')} ({self.doc.get('updated', '')[:19]})"


def read(repo: Repo, commit: str | None = None) -> list[Recorded]:
    """Every recorded scan (on one commit, or all), oldest first."""
    snap = store.snapshot(repo, refs.SCANS)
    commits = None if commit is None else [commit]
    out = [
        Recorded(k, c, table)
        for c, doc in store.read_all(repo, snap, commits).items()
        for k, table in doc.items()
    ]
    for bad, problem in snap.errors:
        raise MlmError(f"the scan note on {bad[:12]} in {refs.SCANS} is not valid: {problem}")
    out.sort(key=lambda r: (str(r.doc.get("updated", "")), r.key))
    return out


def of_version(repo: Repo, commit: str, model: str, version: str) -> list[Recorded]:
    """The scans of one model version, oldest first."""
    return [
        r
        for r in read(repo, commit)
        if r.doc.get("model") == model and r.doc.get("version") == version
    ]


def latest_of_version(repo: Repo, commit: str, model: str, version: str) -> list[Recorded]:
    """The latest scan of one model version per evaluation data (by its digest)."""
    latest: dict[str, Recorded] = {}
    for r in of_version(repo, commit, model, version):
        latest[str(r.doc.get("data_digest", r.key))] = r  # oldest first: the last one wins
    return list(latest.values())


def find(repo: Repo, commit: str, scan_key: str) -> Recorded | None:
    for r in read(repo, commit):
        if r.key == scan_key:
            return r
    return None
