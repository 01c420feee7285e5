"""Keep every commit that carries a record reachable, through one mergeable ref.

Notes name the commits they annotate only as tree entry names, and names keep nothing alive:
after a rebase or a squash merge the old commits are unreachable, `git gc --prune=now` deletes
them, and their runs can no longer be placed or checked out. `refs/mlm/keep/records` is a
chain of empty-tree commits whose parents are those commits, so they stay reachable here and
on every remote the chain is pushed to.

A keep commit's message ends with a `Keep-Parents: N` trailer: its first N parents are keep
commits (the chain itself, two of them after a merge), the rest are kept commits. Reading the
chain therefore touches only keep commits, never the code history they pin.
"""

from __future__ import annotations

import re

from gitmlm import refs
from gitmlm.errors import MlmError
from gitmlm.git import CasFailed, Repo

BATCH = 100
"""Kept commits per keep commit: few keep commits to read, modest octopus merges."""
MAX_ATTEMPTS = 20
_TRAILER = re.compile(r"^Keep-Parents: (\d+)$", re.MULTILINE)


def _keep_parents(message: str) -> int:
    m = _TRAILER.search(message)
    return int(m.group(1)) if m else 0


def kept(repo: Repo, tip: str | None) -> set[str]:
    """Every commit the chain ending at `tip` keeps reachable."""
    out: set[str] = set()
    seen: set[str] = set()
    stack = [tip] if tip else []
    while stack:
        oid = stack.pop()
        if oid in seen or not repo.has_commit(oid):
            continue  # a shallow clone may hold only the tip of the chain
        seen.add(oid)
        info = repo.commit(oid)
        n = _keep_parents(info.message)
        stack.extend(info.parents[:n])
        out.update(info.parents[n:])
    return out


def annotated(repo: Repo) -> set[str]:
    """Objects that carry a note in any of our notes refs (commits, mostly; maybe missing)."""
    out: set[str] = set()
    for name, target in repo.refs("refs/notes/").items():
        if refs.is_notes_ref(name):
            out.update(repo.notes(target))
    return out


def extend(repo: Repo, tip: str | None, commits: list[str]) -> str | None:
    """New keep commits on top of `tip` pinning `commits`; returns the new tip (no ref moved)."""
    for start in range(0, len(commits), BATCH):
        batch = tuple(commits[start : start + BATCH])
        parents = ((tip,) if tip else ()) + batch
        n = 1 if tip else 0
        message = f"gitmlm: keep {len(batch)} commits that carry records\n\nKeep-Parents: {n}\n"
        tip = repo.write_commit(parents, message)
    return tip


def pending(repo: Repo) -> tuple[str | None, str | None, int]:
    """(our chain tip, a new tip pinning every annotated commit not yet kept, how many).

    Writes the new keep commits but moves no ref: push sends the new tip first and `advance`
    moves our ref only once the remote has it, so a failed push leaves every local ref as it was.
    The new tip is None when nothing needs pinning, and always in a shallow clone, which cannot
    vouch for history it does not have.
    """
    tip = repo.ref(refs.KEEP_RECORDS)
    if repo.is_shallow:
        return tip, None, 0
    # Only commits can be parents; a note on a blob, or on a commit this clone lacks, is skipped.
    new = sorted(c for c in annotated(repo) - kept(repo, tip) if repo.has_commit(c))
    return tip, extend(repo, tip, new) if new else None, len(new)


def advance(repo: Repo, old: str | None, new: str) -> None:
    """Move our chain to `new` (which contains `old`); if it moved meanwhile, join the two."""
    try:
        repo.update_ref(refs.KEEP_RECORDS, new, old, "gitmlm: keep records")
    except CasFailed:
        merge(repo, new)


def merge(repo: Repo, theirs: str) -> str:
    """Join a remote's keep chain into ours: fast-forward, or a keep commit with both parents.

    Returns what happened: "up to date", "fast-forward", "created" or "merged".
    """
    with repo.lock(refs.KEEP_RECORDS):
        for _ in range(MAX_ATTEMPTS):
            ours = repo.ref(refs.KEEP_RECORDS)
            if ours is None:
                action, new = "created", theirs
            elif repo.is_ancestor(theirs, ours):
                return "up to date"
            elif repo.is_ancestor(ours, theirs):
                action, new = "fast-forward", theirs
            else:
                action = "merged"
                new = repo.write_commit(
                    (ours, theirs), "gitmlm: merge keep chains\n\nKeep-Parents: 2\n"
                )
            try:
                repo.update_ref(refs.KEEP_RECORDS, new, ours, f"gitmlm: {action} keep chain")
                return action
            except CasFailed:
                continue
    raise MlmError(f"could not update {refs.KEEP_RECORDS}: it kept moving; try again")
