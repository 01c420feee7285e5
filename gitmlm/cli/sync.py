"""`git mlm fetch`, `git mlm push`, `git mlm sync`: the thin CLI over gitmlm.sync.sync."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from gitmlm.cli.common import open_repo
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gitmlm.core.git import Repo
    from gitmlm.sync.sync import FetchReport, PushReport

_REMOTE = click.argument("remote", required=False)
_DATA = click.option(
    "--data",
    "data",
    is_flag=True,
    help="Also push the bytes (datasets, artifacts, models) to the storage remote "
    "(always, with [storage] push_with_records = true in mlm.toml).",
)


def _push_data(repo: Any, data: bool) -> None:
    from gitmlm.storage import settings

    if not data and not settings.push_with_records(repo):
        return
    from gitmlm.cli.storage import push_objects

    push_objects(repo)


def _group(names: list[str], new: str = "") -> list[str]:
    """Notes refs by name; the many unique refs (checkpoints, tags) counted per folder."""
    from gitmlm.core import refs

    shown: list[str] = []
    folders: Counter[str] = Counter()
    for name in names:
        if refs.is_notes_ref(name):
            shown.append(name)
        elif name.startswith(refs.TAGS):
            folders[refs.TAGS] += 1  # model names may hold slashes: all tags count together
        else:
            folders[name.rsplit("/", 1)[0] + "/"] += 1
    shown += [f"{n} {new}under {folder}" for folder, n in sorted(folders.items())]
    return shown


def _fetch_lines(report: FetchReport) -> list[str]:
    lines: list[str] = []
    created: list[str] = []
    for c in report.changes:
        if c.action == "conflict":
            continue
        if c.action == "created" and not c.notes and not c.ref.startswith("refs/notes/"):
            created.append(c.ref)
            continue
        what = f"{c.ref}: {c.action}"
        if c.action == "merged":
            what += (
                f", {_n(c.runs_added, 'run')} added, {c.runs_changed} updated"
                f" ({_n(c.notes, 'note')})"
            )
        elif c.notes:
            what += f" ({_n(c.notes, 'note')})"
        lines.append(what)
    lines += _group(created, "new ")
    return lines


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _warn(problems: list[str]) -> None:
    for p in problems:
        click.echo(f"git mlm: warning: {p}", err=True)


def _reconcile(repo: Repo, remote: str, remote_tags: Mapping[str, str]) -> list[str]:
    """The registry's part of a fetch: local events replayed after the remote's."""
    from gitmlm.models import converge

    return converge.converge(repo, remote, remote_tags).notes


def _registry_lines(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"registry: {note}")


@click.command("fetch")
@_REMOTE
def fetch_cmd(remote: str | None) -> None:
    """Fetch REMOTE's records, checkpoints and registry tags, and merge them run by run.

    Nothing is pushed. REMOTE defaults to the current branch's upstream, else origin.
    """
    from gitmlm.core import remote as transport
    from gitmlm.sync import sync

    repo = open_repo()
    name = remote or transport.default_remote(repo)
    report = sync.fetch(repo, name, _reconcile)
    _warn(report.problems)
    _registry_lines(report.registry)
    lines = _fetch_lines(report)
    click.echo(f"fetched from {name}" + (":" if lines else ": up to date"))
    for line in lines:
        click.echo(f"  {line}")
    if report.diverged:
        raise MlmError("; ".join(report.diverged))


@click.command("push")
@_REMOTE
@_DATA
def push_cmd(remote: str | None, data: bool) -> None:
    """Push records, checkpoints and registry tags to REMOTE, each as a compare-and-swap.

    Fails, changing nothing, when REMOTE has records not merged here: run `git mlm sync`.
    """
    from gitmlm.core import remote as transport
    from gitmlm.sync import sync

    repo = open_repo()
    name = remote or transport.default_remote(repo)
    report = sync.push(repo, name)
    _warn(report.problems)
    _push_lines(name, report)
    _push_data(repo, data)


def _push_lines(name: str, report: PushReport) -> None:
    if report.deleted:
        click.echo(f"deleted on {name}: {_n(len(report.deleted), 'ref')} of runs gc collected")
    if not report.pushed:
        if not report.deleted:
            click.echo(f"{name} is up to date")
        return
    click.echo(f"pushed to {name}:")
    for line in _group(report.pushed):
        click.echo(f"  {line}")


@click.command("sync")
@_REMOTE
@_DATA
def sync_cmd(remote: str | None, data: bool) -> None:
    """Fetch, merge run by run, and push: afterwards REMOTE and this clone hold the union.

    When another clone pushes in between, sync fetches, merges and pushes again (a bounded
    number of times). Plain `git fetch`/`git pull`/`git push` never conflict with it: remote
    records are fetched beside yours, under refs/notes/remotes/ and refs/mlm-remotes/.
    """
    from gitmlm.core import remote as transport
    from gitmlm.sync import sync

    repo = open_repo()
    name = remote or transport.default_remote(repo)
    report = sync.sync(repo, name, reconcile=_reconcile)
    _warn(report.fetch.problems + report.push.problems)
    _registry_lines(report.fetch.registry)
    for line in _fetch_lines(report.fetch):
        click.echo(f"fetched: {line}")
    _push_lines(name, report.push)
    _push_data(repo, data)


COMMANDS = [fetch_cmd, push_cmd, sync_cmd]
