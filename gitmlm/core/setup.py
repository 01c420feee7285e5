"""`git mlm init`: the config and files that make a repository carry gitmlm records."""

from __future__ import annotations

from dataclasses import dataclass

from gitmlm.core import config, refs
from gitmlm.core.git import Repo


@dataclass(frozen=True)
class Change:
    what: str
    key: str = ""
    value: str = ""
    file: str = ""


def plan(repo: Repo) -> list[Change]:
    """What init would change; empty when the repository is already set up (idempotent)."""
    changes: list[Change] = []
    if not config.path(repo.workdir).exists():
        changes.append(Change(f"write {config.FILE}", file=config.FILE))

    def want(key: str, value: str, why: str) -> None:
        if value not in repo.config_all(key):
            changes.append(Change(f"git config --add {key} {value}   # {why}", key, value))

    want("notes.displayRef", refs.RUNS, "plain `git log` shows run notes")
    # A glob: it covers the series, profile and observation notes too, and git does not warn
    # about a named ref that does not exist yet.
    want("notes.rewriteRef", refs.NOTES_GLOB, "amend and rebase keep run notes")
    for remote in repo.remotes():
        for spec in refs.fetch_refspecs(remote):
            want(f"remote.{remote}.fetch", spec, "plain `git fetch` brings records")
        for spec in refs.push_refspecs():
            want(f"remote.{remote}.push", spec, "plain `git push` carries records")
    return changes


def apply(repo: Repo, changes: list[Change]) -> None:
    for change in changes:
        if change.file:
            (repo.workdir / change.file).write_text(config.TEMPLATE, encoding="utf-8")
        else:
            repo.run_git("config", "--add", change.key, change.value)
