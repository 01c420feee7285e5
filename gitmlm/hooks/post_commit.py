"""Hook `mlm-post-commit` (git post-commit, post-merge, post-rewrite): show each run on the
commit that holds its code, so `git mlm log` shows it where a reviewer looks.

Never fails the git command it follows: problems are reported and the exit code is 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from gitmlm.checkpoints import placement as attachments
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

NAME = "mlm-post-commit"
MAX_COMMITS = 50
"""A pull or merge checks at most this many new first-parent commits."""


def commits_since(repo: Repo, since: str | None) -> list[str]:
    """HEAD alone, or the commits `since..HEAD` (newest first, at most MAX_COMMITS)."""
    head = repo.head_commit()
    if since is None:
        return [head]
    try:
        base = repo.resolve(since)
    except MlmError:
        return [head]
    return [c.oid for c in repo.walk([f"{base}..{head}"], MAX_COMMITS)]


def parse_rewritten(lines: Iterable[str]) -> list[tuple[str, str]]:
    """git's post-rewrite input: `<old> <new> [<extra>]` per line."""
    pairs = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            pairs.append((parts[0], parts[1]))
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__)
    parser.add_argument("--since", help="check every commit in SINCE..HEAD (post-merge)")
    parser.add_argument(
        "--rewritten",
        nargs="?",
        const="rebase",
        help="read `old new` lines on stdin (post-rewrite) and merge their run notes",
    )
    args = parser.parse_args(argv)
    try:
        repo = Repo.open()
        if args.rewritten is not None:
            pairs = parse_rewritten(sys.stdin)
            carried = attachments.merge_rewritten(repo, pairs)
            if carried:
                print(f"gitmlm: kept {carried} run record(s) on rewritten commits", file=sys.stderr)
            commits = list(dict.fromkeys(new for _, new in pairs))[:MAX_COMMITS]
        else:
            commits = commits_since(repo, args.since)
        for a in attachments.reattach(repo, commits):
            print(
                f"gitmlm: run {a.run_id[:12]} now also shows on {a.commit[:10]} ({a.why})",
                file=sys.stderr,
            )
    except MlmError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
