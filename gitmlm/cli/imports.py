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
@click.option("--no-artifacts", is_flag=True, help="Leave the runs' and models' files out.")
@click.option("--no-models", is_flag=True, help="Leave the registered models out.")
@click.option(
    "--rename-model",
    "renames",
    multiple=True,
    metavar="MLFLOW=GITMLM",
    help="Import an MLflow registered model under another name (repeatable).",
)
def import_mlflow(
    source: str, dry_run: bool, no_artifacts: bool, no_models: bool, renames: tuple[str, ...]
) -> None:
    """Runs and registered models of an MLflow store: an `mlruns` folder (file store), a sqlite
    database, or `sqlite:///PATH`. Params, metrics with their steps, tags, parents, notes, and
    artifacts (on this disk or on S3); each run goes on the commit its
    `mlflow.source.git.commit` names, else HEAD. Model versions become registry tags on their
    run's commit (docs/migrate.md says how stages and aliases map)."""
    from gitmlm.imports import mlflow, records, registry
    from gitmlm.imports.locations import Locations

    rename = {}
    for text in renames:
        old, sep, new = text.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(
                f"{text!r}: give MLFLOW_NAME=GITMLM_NAME", param_hint="--rename-model"
            )
        rename[old] = new
    repo = open_repo()
    loc = None if no_artifacts else Locations(repo)
    store = mlflow.read_store(source, loc)
    models = None
    if not no_models and store.versions:
        placed = records.placement(repo, store.runs)
        metrics = {s.source_id: s.metrics for s in store.runs}
        models = registry.plan(repo, store.versions, placed, metrics, loc=loc, rename=rename)
        if not dry_run:
            registry.store(repo, models)
    _report(records.write(repo, store.runs, dry_run=dry_run), dry_run)
    if models is None:
        return
    for line in models.skipped:
        click.echo(f"note: {line}; not imported", err=True)
    if dry_run:
        click.echo(
            f"would register {len(models.register)} model versions, assign "
            f"{len(models.assign)} stages and deregister {len(models.deregister)}; "
            f"{models.already} were imported before"
        )
        return
    done = registry.write(repo, models)
    click.echo(
        f"registered {len(done.registered)} model versions, assigned {len(done.assigned)} "
        f"stages, deregistered {len(done.deregistered)}; {models.already} were imported before"
    )
    if models.undeclared:
        click.echo(
            f"note: stages {', '.join(sorted(models.undeclared))} are not in mlm.toml "
            "[registry] stages; declare them to promote into them with gitmlm",
            err=True,
        )


@import_cmd.command("dvc")
@click.option("--dry-run", is_flag=True, help="Say what would be imported; write nothing.")
@click.option("--no-workspace", is_flag=True, help="Leave out the work tree's uncommitted results.")
def import_dvc(dry_run: bool, no_workspace: bool) -> None:
    """This repository's DVC experiments (refs/exps): params, metrics and DVCLive series, each
    run on its experiment's commit; and the work tree's own results (DVCLive's metrics and
    plots that no commit or experiment holds) as a run on HEAD that says so."""
    from gitmlm.imports import dvc, records

    repo = open_repo()
    sources = dvc.read(repo, workspace=not no_workspace)
    report = records.write(repo, sources, dry_run=dry_run)
    _report(report, dry_run)
    ws = [s for s in sources if s.extra.get("workspace")]
    if ws and records.run_id(ws[0].tool, ws[0].source_id, ws[0].started_ms) in report.imported:
        click.echo(
            "note: the work tree's uncommitted results are run 'workspace' on HEAD "
            f"({repo.head_commit()[:10]}); commit them, or run `dvc exp run`, to keep their code",
            err=True,
        )


COMMANDS = [import_cmd]
