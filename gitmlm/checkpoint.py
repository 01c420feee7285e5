"""Which code a run ran: HEAD on a clean tree, a checkpoint commit of the work tree otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from gitmlm.git import Repo


@dataclass(frozen=True)
class Code:
    commit: str
    """The commit whose tree is the code that ran; the run's note goes on it."""
    checkpoint: str
    """"clean" (HEAD as committed) or "snapshot" (a checkpoint of a dirty tree)."""
    base: str | None = None
    """For a snapshot: the HEAD it was taken on."""


def capture(repo: Repo, run_id: str) -> Code:
    return Code(repo.head_commit(), "clean")
