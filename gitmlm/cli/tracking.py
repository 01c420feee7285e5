"""Experiment tracking commands: run, log, runs, show, diff."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from gitmlm.cli.common import format_option, open_repo, parse_pairs
from gitmlm.core import fmt, ids
from gitmlm.errors import MlmError

# --- run ---------------------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--name", "-n", help="A name for the run (default: the end of its id).")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A param to record (repeatable); values are read as TOML scalars.",
)
@click.option("-t", "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option(
    "--no-capture",
    is_flag=True,
    help="Do not keep the command's stdout/stderr (kept by default: the last 1 MB of each).",
)
@click.option(
    "--no-system-metrics",
    is_flag=True,
    help="Do not sample CPU/memory/GPU use (sampled every 10 s by default; "
    "GITMLM_SYSTEM_METRICS_INTERVAL sets the seconds).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    name: str | None,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    no_capture: bool,
    no_system_metrics: bool,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND as a tracked run: `git mlm run -p lr=0.1 -- python train.py`.

    The command sees GITMLM_RUN_ID, and its own gitmlm.start_run() joins this run, so what
    it logs lands here. Exit code, duration and command are recorded; a non-zero exit or a
    signal marks the run failed. Exits with the command's exit code.
    """
    from gitmlm.tracking import launch, sysmetrics
    from gitmlm.tracking import record as runs

    repo = open_repo()
    if not no_system_metrics:
        sysmetrics.interval()  # a bad setting is an error before any run is written
    active = runs.begin(
        repo, name, parse_pairs(params, "param"), parse_pairs(tags, "tag"), list(command)
    )
    record, code = launch.execute(
        repo,
        active,
        list(command),
        capture=not no_capture,
        system_metrics=not no_system_metrics,
    )
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    click.echo(f"gitmlm: run {record.id[: ids.SHORT]} {record.status} ({how})", err=True)
    return 128 - code if code < 0 else code


# --- reading -----------------------------------------------------------------------------------


@click.command()
@click.argument("revisions", nargs=-1)
@click.option("-n", "--max-count", "limit", type=int, help="Show at most N commits.")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metrics to show (repeatable).")
@click.option("--oneline", is_flag=True, help="One line per commit, runs beneath.")
def log(
    revisions: tuple[str, ...], limit: int | None, metrics: tuple[str, ...], oneline: bool
) -> None:
    """The commit log with the runs of each commit beneath it, like `git log`.

    REVISIONS are as for git log: `main`, `v1..HEAD`, `^old new`.
    """
    from gitmlm.tracking import logtext, logview

    repo = open_repo()
    repo.head_commit()
    head = repo.head()
    skipped: list[tuple[str, str]] = []
    found = logview.entries(repo, list(revisions), limit, skipped)
    for commit, problem in skipped:  # as `git mlm runs` says it
        click.echo(f"git mlm: skipped the note on {commit[:12]}: {problem}", err=True)
    text = logtext.render(
        found, repo.decorations(), (head.commit, head.branch), metrics, oneline, sys.stdout.isatty()
    )
    click.echo(text)


_RUN_COLUMNS = ["run_id", "name", "status", "commit", "started"]
ROW_PATH_ENV = "GITMLM_RUNS_ROW_PATH"
"""Set to 1, `git mlm runs` answers from the row path only (tests compare the two paths)."""


@click.group("runs", invoke_without_command=True)
@click.option(
    "--where", "-w", "where_", help='Filter, e.g. "metrics.acc > 0.9 and params.lr < 0.1".'
)
@click.option("--order-by", "-o", help='Sort, e.g. "metrics.acc desc" or "-metrics.acc".')
@click.option("-n", "--limit", type=click.IntRange(min=0), help="Show at most N runs.")
@click.option("--columns", "-c", help="Comma-separated columns to show (default: all).")
@click.option("--all", "-a", "all_", is_flag=True, help="Show archived runs too.")
@click.option(
    "--best",
    metavar="METRIC",
    help="Best first by METRIC, in the direction mlm.toml [metrics] declares; runs without it "
    "are left out.",
)
@click.option("--tree", is_flag=True, help="Nested runs under their parent.")
@click.option(
    "--recover",
    is_flag=True,
    help="First finalise crashed runs (any host whose heartbeat stopped) as `crashed`: what "
    "their journals hold goes into the record, then the journals are deleted.",
)
@format_option
@click.pass_context
def runs_cmd(
    ctx: click.Context,
    where_: str | None,
    order_by: str | None,
    limit: int | None,
    columns: str | None,
    all_: bool,
    best: str | None,
    tree: bool,
    recover: bool,
    fmt_: str,
) -> None:
    """List runs, newest first: attributes, params.*, metrics.*, tags.*, datasets.*.

    A metric's value is its value at the highest step logged (of several at one step, the last
    logged), as in MLflow. A run `running` whose heartbeat stopped for over 60 s
    (GITMLM_RUN_TIMEOUT) is shown `crashed`.

    The --where language: comparisons (= != < <= > >=) on columns, `in (...)`, `like 'a%'`,
    `is null`, combined with and, or, not and parentheses. Quote odd names in backticks:
    metrics.`val acc`. A column no run has is an error; MLflow's filter strings work as they
    are (attributes.status = 'FINISHED', params.batch_size = '2', run_name, start_time).

    Manage runs with the subcommands: rm, archive, restore, rename, tag, untag, note.
    """
    if ctx.invoked_subcommand is not None:
        return
    from gitmlm.tracking import listing as runs
    from gitmlm.tracking import runlist

    repo = open_repo()
    if recover:
        from gitmlm.tracking import record

        for r in record.recover(repo):
            click.echo(f"recovered run {r.id[: ids.SHORT]} as crashed", err=True)
    # The column table answers, unless a test asks for the row path to compare with; runlist
    # says where else the row path answers.
    listed = (
        None
        if os.environ.get(ROW_PATH_ENV) == "1"
        else runlist.by_table(repo, where_, order_by, limit, archived=all_, best=best, tree=tree)
    )
    if listed is None:
        listed = runlist.by_rows(repo, where_, order_by, limit, archived=all_, best=best, tree=tree)
    rows = listed.rows
    for commit, problem in listed.errors:
        click.echo(f"git mlm: skipped the note on {commit[:12]}: {problem}", err=True)
    hint = runs.fetch_hint(repo, listed.any_runs)
    if hint:
        click.echo(f"git mlm: {hint}", err=True)
    if listed.unplaced:
        click.echo(f"git mlm: {runlist.unplaced_said(listed.unplaced)}", err=True)
    cols = (
        [c.strip() for c in columns.split(",")] if columns else fmt.columns_of(rows, _RUN_COLUMNS)
    )
    if columns:
        known = listed.known()
        for col in cols:
            if col not in known:
                close = difflib.get_close_matches(col, known, 3)
                hint = (
                    f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}"
                )
                raise MlmError(f"--columns: no column {col!r}; {hint}")
    if fmt_ == "table":
        parents = [r["parent"] for r in rows if isinstance(r.get("parent"), str)]
        short = listed.short([*(r["run_id"] for r in rows), *parents])
        for row in rows:
            row["run_id"] = short[row["run_id"]]
            if row.get("parent") in short:
                row["parent"] = short[row["parent"]]
            row["commit"] = row["commit"][:10]
            row["started"] = row["started"][:19].replace("T", " ")
            row["ended"] = (row["ended"] or "")[:19].replace("T", " ")
            for key, value in row.items():
                if key.startswith("datasets.") and isinstance(value, str):
                    row[key] = fmt.short_digest(value)
            if tree:
                row["name"] = "  " * row.pop("depth", 0) + row["name"]
    if fmt_ == "table" and not columns:
        hidden = ("ended", "user", "host", "branch", "exit_code", "depth", "note")
        cols = [c for c in cols if c not in hidden and not (tree and c == "parent")]
    click.echo(fmt.render(rows, cols, fmt_))


def _said(what: str, done: Sequence[Any]) -> None:
    for r in done:
        click.echo(f"{what} run {r.id[: ids.SHORT]} ({r.name})", err=True)


@runs_cmd.command("rm")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN...")
def runs_rm(run_ids: tuple[str, ...]) -> None:
    """Delete runs (a tombstone sync carries everywhere; `git mlm runs restore` undoes it)."""
    from gitmlm.tracking import manage

    _said("deleted", manage.remove(open_repo(), run_ids))


@runs_cmd.command("archive")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN...")
def runs_archive(run_ids: tuple[str, ...]) -> None:
    """Hide runs from listings (`git mlm runs --all` shows them)."""
    from gitmlm.tracking import manage

    _said("archived", manage.archive(open_repo(), run_ids))


@runs_cmd.command("restore")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN...")
def runs_restore(run_ids: tuple[str, ...]) -> None:
    """Bring deleted or archived runs back."""
    from gitmlm.tracking import manage

    done = manage.restore(open_repo(), run_ids)
    _said("restored", done)
    for r in done:
        if r.extra.get("collected") is True:
            click.echo(
                f"run {r.id[: ids.SHORT]} was collected by `git mlm gc`: its series, checkpoint "
                "and artifact copies are gone (restore brings back the record only)",
                err=True,
            )


@runs_cmd.command("rename")
@click.argument("run_id", metavar="RUN")
@click.argument("name")
def runs_rename(run_id: str, name: str) -> None:
    """Rename a run. Names are labels (ids identify runs), so a name in use is allowed."""
    from gitmlm.tracking import manage

    run, same = manage.rename(open_repo(), run_id, name)
    click.echo(f"renamed run {run.id[: ids.SHORT]} to {name!r}", err=True)
    if same:
        others = ", ".join(r.id[: ids.SHORT] for r in same[:5])
        click.echo(f"note: {len(same)} other runs are named {name!r} too ({others})", err=True)


@runs_cmd.command("tag")
@click.argument("run_id", metavar="RUN")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
def runs_tag(run_id: str, pairs: tuple[str, ...]) -> None:
    """Set tags on a run."""
    from gitmlm.tracking import manage

    tags: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MlmError(f"tag {pair!r} is not KEY=VALUE (for example owner=ada)")
        tags[key] = value  # tags are text, as `git mlm run -t` and MLflow keep them
    _said("tagged", [manage.tag(open_repo(), run_id, tags)])


@runs_cmd.command("untag")
@click.argument("run_id", metavar="RUN")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def runs_untag(run_id: str, keys: tuple[str, ...]) -> None:
    """Remove tags from a run."""
    from gitmlm.tracking import manage

    _said("untagged", [manage.untag(open_repo(), run_id, keys)])


@runs_cmd.command("note")
@click.argument("run_id", metavar="RUN")
@click.argument("text")
def runs_note(run_id: str, text: str) -> None:
    """Set a run's note (free text; "" clears it)."""
    from gitmlm.tracking import manage

    _said("noted", [manage.note(open_repo(), run_id, text)])


@click.command()
@click.argument("run_id")
@click.option(
    "--format", "fmt_", type=click.Choice(["toml", "json"]), default="toml", show_default=True
)
def show(run_id: str, fmt_: str) -> None:
    """Show one run (by id, id prefix or unique name): its whole record, and which metrics
    have step series."""
    import tomli_w

    from gitmlm.core import codec
    from gitmlm.tracking import record as runs

    repo = open_repo()
    problems: list[str] = []
    r = runs.get_run(repo, run_id, problems)
    for problem in problems:
        click.echo(f"git mlm: warning: {problem}", err=True)
    doc = codec.run_to_dict(r)
    if fmt_ == "json":
        click.echo(fmt.to_json({"id": r.id, **doc, "steps": r.steps}))
        return
    click.echo(f"# run {r.id}")
    click.echo(tomli_w.dumps(doc).rstrip())
    for name, s in sorted(r.steps.items()):
        click.echo(
            f"# series {name}: {len(s['step'])} steps, summary {fmt.cell(r.metrics.get(name))}"
        )


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@format_option
def diff(run_a: str, run_b: str, fmt_: str) -> None:
    """What differs between two runs (ids, id prefixes or unique names): params, metrics,
    datasets, and the code between them."""
    from gitmlm.tracking import record as runs
    from gitmlm.tracking import rundiff

    repo = open_repo()
    listing = runs.list_runs(repo)
    a, b = runs.resolve(listing, run_a), runs.resolve(listing, run_b)
    rows = rundiff.compare(a, b)
    cols = ["key", a.id[: ids.SHORT], b.id[: ids.SHORT], "change"]
    shaped = [{cols[0]: r.key, cols[1]: r.a, cols[2]: r.b, cols[3]: r.change} for r in rows]
    click.echo(
        fmt.render(shaped, cols, fmt_) if shaped else "params, metrics and datasets are equal"
    )
    if fmt_ == "table" and a.commit != b.commit:
        click.echo(f"\ncode {a.commit[:10]}..{b.commit[:10]}")
        click.echo(repo.diffstat(a.commit, b.commit).rstrip() or " (same tree)")


COMMANDS = [run, log, runs_cmd, show, diff]
