"""`git mlm storage add|list|rm`, `git mlm artifacts [get]`, `git mlm model get`, `git mlm gc`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitmlm.cli import progress
from gitmlm.cli.common import format_option, open_repo, size_text
from gitmlm.core import fmt


def bar(total_bytes: int, total_files: int, label: str) -> progress.Bar | None:
    return progress.for_stderr(total_bytes, total_files, label)


# --- storage remotes ---------------------------------------------------------------------------


@click.group("storage")
def storage_group() -> None:
    """Object storage remotes: where dataset files, run artifacts and models are pushed.

    Remotes are declared in mlm.toml ([storage.remotes.NAME] url = …), one of them the default.
    Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, …), never mlm.toml;
    an S3-compatible endpoint from AWS_ENDPOINT_URL or the remote's endpoint_url.
    """


@storage_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "default", is_flag=True, help="Make it the default remote.")
@click.option("--endpoint-url", help="An S3-compatible endpoint (else AWS_ENDPOINT_URL).")
def storage_add(name: str, url: str, default: bool, endpoint_url: str | None) -> None:
    """Declare remote NAME at URL (a folder, s3://bucket/prefix, or any fsspec URL)."""
    from gitmlm.storage import settings

    settings.add(open_repo(), name, url, default=default, endpoint_url=endpoint_url)
    click.echo(f"added storage remote {name}: {url}" + (" (default)" if default else ""))


@storage_group.command("list")
@format_option
def storage_list(fmt_: str) -> None:
    """The declared remotes."""
    from gitmlm.storage import settings

    found, default = settings.remotes(open_repo())
    rows = [
        {
            "name": r.name,
            "url": r.url,
            "endpoint_url": r.endpoint_url or "",
            "default": "yes" if r.name == default else "",
        }
        for r in found.values()
    ]
    if not rows and fmt_ == "table":
        click.echo("no storage remotes; add one with `git mlm storage add NAME URL -d`", err=True)
        return
    click.echo(fmt.render(rows, ["name", "url", "endpoint_url", "default"], fmt_))


@storage_group.command("rm")
@click.argument("name")
def storage_rm(name: str) -> None:
    """Forget remote NAME (its objects stay where they are)."""
    from gitmlm.storage import settings

    settings.remove(open_repo(), name)
    click.echo(f"removed storage remote {name}")


# --- run artifacts -----------------------------------------------------------------------------


class _ListByDefault(click.Group):
    """`git mlm artifacts RUN` lists; `git mlm artifacts get RUN …` fetches."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["ls", *args]
        return super().parse_args(ctx, args)


@click.group("artifacts", cls=_ListByDefault)
def artifacts_group() -> None:
    """A run's artifacts: `git mlm artifacts RUN` lists them, `git mlm artifacts get RUN
    [PATH] -o DEST` brings their bytes back (from the cache, else the storage remote)."""


@artifacts_group.command("ls")
@click.argument("run_id")
@format_option
def artifacts_ls(run_id: str, fmt_: str) -> None:
    """List what run RUN_ID logged."""
    from gitmlm.tracking import artifacts

    run, found = artifacts.of_run(open_repo(), run_id)
    rows: list[dict[str, Any]] = [
        {
            "path": a.path + ("/" if a.folder else ""),
            "size": size_text(a.size) if fmt_ == "table" else a.size,
            "files": a.files,
            "digest": a.digest[:19] if fmt_ == "table" else a.digest,
            "cached": "yes" if a.cached else "no",
        }
        for a in found
    ]
    if not rows and fmt_ == "table":
        click.echo(f"run {run.id[:12]} logged no artifacts", err=True)
        return
    click.echo(fmt.render(rows, ["path", "size", "files", "digest", "cached"], fmt_))


@artifacts_group.command("get")
@click.argument("run_id")
@click.argument("path", required=False)
@click.option("-o", "--output", "dest", default=".", help="Where to write (default: here).")
@click.option("-r", "--remote", help="Storage remote to fetch from (default: the default).")
def artifacts_get(run_id: str, path: str | None, dest: str, remote: str | None) -> None:
    """Write run RUN_ID's artifact PATH (every artifact, at its recorded path, when no PATH)."""
    from gitmlm.tracking import artifacts

    written = artifacts.get(open_repo(), run_id, path, Path(dest), remote=remote)
    for w in written:
        click.echo(w)


# --- models ------------------------------------------------------------------------------------


@click.command("get")
@click.argument("spec")
@click.option("-o", "--output", "dest", default=None, help="Where to write (default: its name).")
@click.option("-r", "--remote", help="Storage remote to fetch from (default: the default).")
def model_get(spec: str, dest: str | None, remote: str | None) -> None:
    """Write the artifact of model version SPEC (churn#production, churn@v1.2.0, churn), checked
    against its registered digest: from git, a Git LFS object, or the object store."""
    from gitmlm.models import fetch

    got = fetch.get(open_repo(), spec, Path(dest) if dest else None, remote=remote)
    click.echo(f"{got.dest}  ({got.model} {got.version}, {got.digest[:19]}…, from {got.source})")


def push_objects(repo: Any, remote: str | None = None) -> None:
    """Push every cached object something names (`git mlm push --data`)."""
    from gitmlm.models import fetch

    b = bar(0, 0, "pushing")
    try:
        name, r = fetch.push_all(repo, remote, b)
    finally:
        if b:
            b.close()
    click.echo(
        f"storage {name}: pushed {len(r.moved)} object(s), {size_text(r.bytes)}; "
        f"{r.already} already there"
    )


# --- gc ----------------------------------------------------------------------------------------


@click.command("gc")
@click.option(
    "--remote",
    "remote",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="NAME",
    help="Also delete unreferenced objects on the remote (NAME, or the default).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
@click.option("--yes", is_flag=True, help="Needed to delete on a remote (after a dry run).")
def gc(remote: str | None, dry_run: bool, yes: bool) -> None:
    """Drop deleted runs' series, profiles, checkpoint refs and kept files (their tombstones
    stay), then cached objects that no run, mlm.lock version, model version or scan names."""
    from gitmlm.models import gc as _gc

    if remote is not None and not dry_run and not yes:
        raise click.UsageError(
            "deleting on a remote needs --yes; run `git mlm gc --remote --dry-run` first"
        )
    report = _gc.gc(
        open_repo(), dry_run=dry_run, remote=remote or None, on_remote=remote is not None
    )
    for line in gc_lines(report):
        click.echo(line)


def gc_lines(report: Any) -> list[str]:
    """What `git mlm gc` did (or, with --dry-run, would do): counts and bytes; a dry run also
    names each run, ref and object."""
    runs, verb = report.runs, "would delete" if report.dry_run else "deleted"
    tables = ", ".join(f"{n} {ref.rsplit('-', 1)[-1]} table(s)" for ref, n in runs.tables.items())
    if runs.runs or runs.refs or runs.kept_files or any(runs.tables.values()):
        out = [
            f"runs: {'would collect' if report.dry_run else 'collected'} {len(runs.runs)} "
            f"deleted run(s): {tables} (in {size_text(runs.table_bytes)} of notes), "
            f"{len(runs.refs)} checkpoint/keep ref(s), {runs.kept_files} kept file(s) "
            f"({size_text(runs.kept_bytes)})"
        ]
    else:
        out = ["runs: no deleted run to collect"]
    if report.dry_run:
        out += [f"  run {rid}" for rid in runs.runs]
        out += [f"  ref {name}" for name in runs.refs]
    c = report.cache
    out.append(f"cache: {verb} {len(c.deleted)} object(s), {size_text(c.bytes)}; kept {c.kept}")
    if report.dry_run:
        out += [f"  object {d}" for d in c.deleted]
    r = report.remote
    if r is not None:
        out.append(
            f"remote {r.remote}: {verb} {len(r.deleted)} object(s), {size_text(r.bytes)}; "
            f"kept {r.kept}"
        )
        if report.dry_run:
            out += [f"  object {d}" for d in r.deleted]
    if not report.dry_run and (runs.refs or runs.table_bytes):
        out.append(
            "git keeps the dropped notes and commits until `git gc --prune=now` reclaims them"
        )
    return out


COMMANDS = [storage_group, artifacts_group, gc]
