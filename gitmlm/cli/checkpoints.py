"""Commands of code checkpointing: reproduce, checkout, attach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitmlm.cli.common import open_repo
from gitmlm.core import fmt, ids


@click.command()
@click.argument("run_id")
@click.option("--rtol", type=float, default=1e-6, show_default=True, help="Relative tolerance.")
@click.option("--atol", type=float, default=0.0, show_default=True, help="Absolute tolerance.")
@click.option(
    "--no-data-check", is_flag=True, help="Run even if the datasets differ from the run's."
)
@click.option("--keep", is_flag=True, help="Keep the temporary worktree (its path is printed).")
def reproduce(run_id: str, rtol: float, atol: float, no_data_check: bool, keep: bool) -> int:
    """Re-run RUN_ID's command on its exact code and compare the metrics.

    The code (the run's commit, or its checkpoint of uncommitted code) is checked out into a
    temporary `git worktree`, so your work tree is never touched. Declared datasets must
    match the digests the run recorded. The re-run is recorded as a new run with
    `reproduces = RUN_ID`. Exits 1 when a metric differs beyond the tolerance
    (|a - b| <= max(rtol * max(|a|, |b|), atol)) or the command fails.
    """
    from gitmlm.tracking import reproduce as rep

    def started(record: Any, path: Path) -> None:
        click.echo(
            f"gitmlm: reproducing run {run_id} as run {record.id[: ids.SHORT]}"
            f" (code {record.commit[:10]}) in {path}",
            err=True,
        )

    result = rep.reproduce(
        open_repo(), run_id, rtol, atol, check_data=not no_data_check, keep=keep, on_start=started
    )
    if result.linked:
        click.echo(f"linked from your work tree: {', '.join(result.linked)}", err=True)
    rows = [
        {
            "metric": m.name,
            "original": m.original,
            "reproduced": m.reproduced,
            "abs diff": m.abs_diff,
            "rel diff": m.rel_diff,
            "within tolerance": "yes" if m.ok else "NO",
        }
        for m in result.metrics
    ]
    cols = ["metric", "original", "reproduced", "abs diff", "rel diff", "within tolerance"]
    if rows:
        click.echo(fmt.render(rows, cols, "table"))
    for path, verdict in sorted(result.artifacts.items()):
        click.echo(f"artifact {path}: {verdict}")
    run = result.run
    click.echo(
        f"gitmlm: run {run.id[: ids.SHORT]} reproduces {result.original.id[: ids.SHORT]}: "
        f"{run.status} (exit code {result.exit_code}), "
        + ("metrics within tolerance" if result.ok else "NOT reproduced"),
        err=True,
    )
    return 0 if result.ok else 1


@click.command()
@click.argument("run_id")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def checkout(run_id: str, path: Path | None) -> None:
    """Write the code RUN_ID ran into PATH (default: ./run-<id>), leaving your tree alone."""
    from gitmlm.tracking import reproduce as rep

    repo = open_repo()
    run, commit = rep.find(repo, run_id)
    dest = path or Path(f"run-{run.id[: ids.SHORT]}")
    rep.export(repo, commit, dest)
    kind = "checkpoint of uncommitted code" if run.checkpoint == "snapshot" else "commit"
    click.echo(f"wrote the code of run {run.id[: ids.SHORT]} ({kind} {commit[:10]}) to {dest}")


@click.command()
@click.argument("revisions", nargs=-1)
def attach(revisions: tuple[str, ...]) -> None:
    """Show runs on the commits that hold their code (default: HEAD).

    What the post-commit hook does after each commit; run it by hand for a range after a
    squash merge made elsewhere, e.g. `git mlm attach ORIG_HEAD..HEAD`.
    """
    from gitmlm.checkpoints import placement as attachments

    repo = open_repo()
    commits = (
        [c.oid for c in repo.walk(list(revisions), 200)] if revisions else [repo.head_commit()]
    )
    done = attachments.reattach(repo, commits)
    for a in done:
        click.echo(f"run {a.run_id[: ids.SHORT]} -> {a.commit[:10]} ({a.why})")
    if not done:
        click.echo("no runs to attach")


COMMANDS = [reproduce, checkout, attach]
