"""Git hook commands: install the plain git-hook shims, and run a stage's checks for them."""

from __future__ import annotations

import sys

import click

from gitmlm.cli.common import open_repo
from gitmlm.errors import MlmError


@click.command("install-hooks")
@click.option("--uninstall", is_flag=True, help="Remove the shims, restoring earlier hooks.")
def install_hooks(uninstall: bool) -> None:
    """Install gitmlm's git hooks into .git/hooks (for teams without the pre-commit framework).

    The hooks are shims that run `git mlm hook STAGE`. A hook already in place is kept as
    STAGE.pre-gitmlm and run after gitmlm's checks.
    """
    from gitmlm.hooks import install as hookinstall

    repo = open_repo()
    actions = hookinstall.uninstall(repo) if uninstall else hookinstall.install(repo)
    for a in actions:
        click.echo(a.what)
    if not actions:
        click.echo("no gitmlm hooks installed")


@click.command(
    "hook", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("stage")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def hook(stage: str, args: tuple[str, ...]) -> int:
    """Run gitmlm's checks for git hook STAGE (what the installed shims call)."""
    from gitmlm.hooks import install as hookinstall

    try:
        repo = open_repo()
    except MlmError:  # the checks report a missing repository themselves
        repo = None
    sys.stdout.flush()
    return hookinstall.run(repo, stage, args)


COMMANDS = [install_hooks, hook]
