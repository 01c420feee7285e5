"""The root of `git-mlm` (so `git mlm ...` works): the group, its parts' commands, and the one
place an expected error becomes one line on stderr and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from gitmlm._version import __version__
from gitmlm.cli import (
    checkpoints,
    data,
    hooks,
    imports,
    models,
    monitor,
    scan,
    storage,
    sync,
    tracking,
    ui,
)
from gitmlm.cli.common import open_repo
from gitmlm.errors import MlmError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="git-mlm")
def cli() -> None:
    """ML model management inside your git repository.

    Runs, metrics, dataset versions and model stages are git objects (notes, tags, refs):
    reviewed, pushed and pulled with the code. Start with `git mlm init`.
    """


# --- init --------------------------------------------------------------------------------------


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would change and change nothing.")
def init(dry_run: bool) -> None:
    """Set up this repository for gitmlm (idempotent).

    Writes a commented mlm.toml, makes plain `git log` show run notes, makes amend and rebase
    keep them, and adds refspecs so `git fetch`/`git push` to each remote carry the records.
    """
    from gitmlm.core import setup as initrepo

    repo = open_repo()
    changes = initrepo.plan(repo)
    if not changes:
        click.echo("already set up; nothing to change")
        return
    for change in changes:
        click.echo(("would " if dry_run else "") + change.what)
    if not dry_run:
        initrepo.apply(repo, changes)


@click.command()
@click.argument("directory", default="gitmlm-demo", type=click.Path(file_okay=False))
def demo(directory: str) -> None:
    """Take a new demo repository in DIRECTORY through the whole lifecycle, with real commands.

    A dataset, three tracked runs, a checked model commit, a registered and promoted version,
    and serving data checked for skew; then the log and the tables. An earlier demo in
    DIRECTORY is replaced; any other non-empty folder is refused.
    """
    from gitmlm.cli import demo as _demo

    for line in _demo.make(directory):
        click.echo(line)


@click.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_cmd(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show the help of COMMAND (`git mlm help runs`, `git mlm help data add`), or of git mlm.

    `git mlm --help` is git's own: it looks for a manual page, which gitmlm does not install.
    """
    import difflib

    parent = ctx.parent
    assert parent is not None
    current: click.Command = parent.command
    current_ctx = parent
    for name in command:
        if not isinstance(current, click.Group):
            raise MlmError(f"`git mlm {current_ctx.command_path[8:]}` has no subcommands")
        sub = current.get_command(current_ctx, name)
        if sub is None:
            known = current.list_commands(current_ctx)
            close = difflib.get_close_matches(name, known, 3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise MlmError(f"no command {name!r}; {hint}")
        current_ctx = click.Context(sub, info_name=name, parent=current_ctx)
        current = sub
    click.echo(current.get_help(current_ctx))


for _command in (
    init,
    help_cmd,
    demo,
    *tracking.COMMANDS,
    *data.COMMANDS,
    *checkpoints.COMMANDS,
    *hooks.COMMANDS,
    *models.COMMANDS,
    *sync.COMMANDS,
    *monitor.COMMANDS,
    *imports.COMMANDS,
    *scan.COMMANDS,
    *storage.COMMANDS,
    *ui.COMMANDS,
):
    cli.add_command(_command)
models.model.add_command(storage.model_get)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="git mlm",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except MlmError as exc:
        click.echo(f"git mlm: {exc}", err=True)
        return exc.code
    except KeyboardInterrupt:
        # Ctrl-C is an answer, not a bug: no traceback, the shell's usual exit code.
        click.echo("git mlm: interrupted", err=True)
        return 130
    except BrokenPipeError:
        # `git mlm log | head`: the reader left; say nothing, as git does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return rv if isinstance(rv, int) else 0
