"""Every commit that carries a record stays reachable: `refs/mlm/keep/<commit>`.

Notes name the commits they annotate only as tree entry names, and names keep nothing alive:
after a rebase or a squash merge the old commits are unreachable, `git gc --prune=now` deletes
them, and their runs can no longer be placed or checked out. The checkpoint part pins each run's
code when the run starts (`refs/mlm/checkpoints/<run-id>` for a dirty tree,
`refs/mlm/keep/<commit>` for a clean one); sync pins whatever else carries a note (runs
attached to a later commit, notes copied by a rebase, records from older versions or other
tools) before it pushes, so the rule holds on every clone and on the remote.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitmlm.checkpoints import pins
from gitmlm.core import refs
from gitmlm.core.git import Repo


def _table(repo: Repo, table: Mapping[str, str] | None) -> Mapping[str, str]:
    return table if table is not None else repo.ref_table(refs.NOTES_GLOB, refs.PREFIX)


def annotated(repo: Repo, table: Mapping[str, str] | None = None) -> set[str]:
    """Objects that carry a note in any of our notes refs (commits, mostly; maybe missing).

    `table` is a ref snapshot (name -> target) holding at least our notes and refs/mlm/ refs.
    """
    out: set[str] = set()
    for name, target in _table(repo, table).items():
        if refs.is_notes_ref(name):
            out.update(repo.notes(target))
    return out


def pinned(repo: Repo, table: Mapping[str, str] | None = None) -> set[str]:
    """Commits a keep or checkpoint ref points at."""
    return {
        target
        for name, target in _table(repo, table).items()
        if name.startswith((refs.KEEP, refs.CHECKPOINTS))
    }


def unpinned(repo: Repo, table: Mapping[str, str] | None = None) -> dict[str, str]:
    """Keep refs to make (name -> commit) so every annotated commit here is pinned.

    Only commits can be pinned; a note on a blob or a tree, or on a commit this clone does not
    have (a shallow clone), is left alone, and so is a commit whose runs gc collected
    (checkpoints/pins.py): its tombstones need no code.
    """
    table = _table(repo, table)
    todo = annotated(repo, table) - pinned(repo, table)
    todo -= pins.dead(repo, todo, table)
    return {refs.keep(c): c for c in sorted(todo) if repo.has_commit(c)}
