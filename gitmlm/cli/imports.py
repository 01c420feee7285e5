"""`git mlm import mlflow|dvc`: bring another tool's run history into git."""

from __future__ import annotations

from typing import Any

import click

from gitmlm.cli.common import open_repo


@click.group("import")
def import_cmd() -> None:
    """Import runs recorded by MLflow or DVC (idempotent: importing again adds only new runs)."""


def _report(report: Any, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {len(report.imported)} runs; {report.skipped} were imported before")
    if report.artifacts:
        click.echo(f"kept {report.artifacts} artifact files")
    if report.on_head:
        click.echo(
            f"note: {report.on_head} runs named no commit this repository has; "
            "they are placed on HEAD (their record says so under imported.placed)",
            err=True,
        )


@import_cmd.command("mlflow")
@click.argument("source", metavar="PATH_OR_URI")
@click.option("--dry-run", is_flag=True, help="Say what would be imported; write nothing.")
def import_mlflow(source: str, dry_run: bool) -> None:
    """Runs of an MLflow store: an `mlruns` folder (file store), a sqlite database, or
    `sqlite:///PATH`. Params, metrics with their steps, tags, parents, notes, and local
    artifacts; each run goes on the commit its `mlflow.source.git.commit` names, else HEAD."""
    from gitmlm.imports import mlflow, records

    repo = open_repo()
    _report(records.write(repo, mlflow.read(source), dry_run=dry_run), dry_run)


@import_cmd.command("dvc")
@click.option("--dry-run", is_flag=True, help="Say what would be imported; write nothing.")
def import_dvc(dry_run: bool) -> None:
    """This repository's DVC experiments (refs/exps): params, metrics and DVCLive series, each
    run on its experiment's commit."""
    from gitmlm.imports import dvc, records

    repo = open_repo()
    _report(records.write(repo, dvc.read(repo), dry_run=dry_run), dry_run)


COMMANDS = [import_cmd]
