"""Hook `mlm-checkpoint` (pre-commit): a committed result must come from a recorded run of
exactly the staged code.

A commit that stages no declared output costs one `git diff --cached` and no pygit2.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmlm.checkpoints import rules as coderules
from gitmlm.checkpoints.rules import Rules
from gitmlm.core import digest as artifact_digest
from gitmlm.core import gitcmd
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    from gitmlm.core.git import Repo
    from gitmlm.core.records import Run
    from gitmlm.tracking.listing import Listing

NAME = "mlm-checkpoint"


@dataclass(frozen=True)
class Problem:
    path: str
    lines: list[str]


def staged_paths() -> list[str]:
    """Paths the commit adds or changes (deletions are not results being committed)."""
    out = gitcmd.run(["diff", "--cached", "--name-only", "-z", "--no-renames", "--diff-filter=d"])
    return [p for p in out.split("\0") if p]


def staged_outputs(rules: Rules, only: Sequence[str] = ()) -> list[str]:
    if not rules.outputs:
        return []
    paths = staged_paths()
    if only:
        wanted = set(only)
        paths = [p for p in paths if p in wanted]
    return [p for p in paths if rules.outputs.match(p)]


def suggested_command(listing: Listing, path: str) -> str:
    """How to make `path` again: the command of the newest run that recorded it."""
    for run in listing.runs:
        if path in run.artifacts and run.command:
            cmd = list(run.command)
            if Path(cmd[0]).name.startswith("python"):
                cmd[0] = "python"  # the interpreter's absolute path says nothing useful here
            return "git mlm run -- " + shlex.join(cmd)
    return "git mlm run -- <your training command>"


def judge(
    repo: Repo, rules: Rules, listing: Listing, path: str, digest: str, staged_tree: str
) -> Problem | None:
    """None when a run made exactly this content of `path` from exactly the staged code."""
    from gitmlm.checkpoints.checkpoint import code_diff

    nearest: tuple[Run, list[str]] | None = None
    failed: Run | None = None
    for run in listing.runs:
        if run.artifacts.get(path, {}).get("digest") != digest:
            continue
        if run.status in ("failed", "crashed"):
            failed = failed or run
            continue
        ignore = frozenset(run.extra.get("skipped", {}))
        for home in dict.fromkeys([run.commit, *listing.commits.get(run.id, [])]):
            if not repo.has_object(home):
                continue
            diff = code_diff(repo, repo.tree_of(home), staged_tree, rules, ignore)
            if not diff:
                return None
            if nearest is None or len(diff) < len(nearest[1]):
                nearest = (run, diff)
    lines = [f"{path}: no recorded run of the staged code made this file."]
    if nearest is not None:
        run, diff = nearest
        shown = ", ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else "")
        lines.append(f"  run {run.id[:12]} made it, from other code (differs in: {shown}).")
    elif failed is not None:
        lines.append(f"  run {failed.id[:12]} made it, but that run {failed.status}.")
    else:
        lines.append(f"  no run recorded this content ({digest[:19]}…).")
    lines += [
        "  Make it with a tracked run of the code you are committing, then stage it again:",
        f"      {suggested_command(listing, path)}",
        f"      git add {shlex.quote(path)}",
    ]
    return Problem(path, lines)


def check(repo: Repo, rules: Rules, outputs: Sequence[str]) -> list[Problem]:
    """The staged outputs that no recorded run of the staged code made."""
    from gitmlm.tracking import listing as tracking

    index = repo.index_path()
    staged_tree = repo.index_tree(index)
    blobs = repo.index_blobs(list(outputs), index)
    listing = tracking.list_runs(repo)
    problems = []
    for path in outputs:
        blob = blobs.get(path)
        if blob is None:
            continue
        digest = artifact_digest.of_bytes(repo.blob(blob))
        problem = judge(repo, rules, listing, path, digest, staged_tree)
        if problem is not None:
            problems.append(problem)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 1 to block the commit (mode "block"), 0 otherwise. Filenames, when given (as the
    pre-commit framework passes them), narrow the check; the staged diff decides."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # git starts hooks at the top of the work tree; ask git only when started elsewhere.
        root = Path.cwd()
        if not (root / ".git").exists():
            root = Path(gitcmd.run(["rev-parse", "--show-toplevel"]).strip())
        rules = coderules.load(root)
        outputs = staged_outputs(rules, args)
        if not outputs:
            return 0
        from gitmlm.core.git import Repo

        problems = check(Repo.open(root), rules, outputs)
    except MlmError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return 1
    if not problems:
        return 0
    for problem in problems:
        print(f"{NAME}: " + "\n".join(problem.lines), file=sys.stderr)
    if rules.mode == "warn":
        print(f'{NAME}: [checkpoint] mode = "warn" in mlm.toml: committing anyway', file=sys.stderr)
        return 0
    print(
        f'{NAME}: commit blocked; set [checkpoint] mode = "warn" in mlm.toml to only warn',
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
