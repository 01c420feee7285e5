"""`git mlm scan`: vulnerability tests of a model version, kept as notes, used by gates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gitmlm.cli.common import format_option, open_repo
from gitmlm.core import fmt
from gitmlm.errors import MlmError


class _DefaultRun(click.Group):
    """`git mlm scan MODEL DATA` is `git mlm scan run MODEL DATA`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultRun)
def scan() -> None:
    """Scan a model for weak slices, overconfidence, brittleness, contamination, overfitting.

    \b
    git mlm scan churn@v1.2.0 holdout.csv --target churned      (same as `scan run ...`)
    git mlm scan churn#staging holdout.parquet --target y --html scan.html
    git mlm scan 01hx2c holdout.csv --target y --prediction pred   (a run; no re-prediction)
    git mlm scan history churn

    Exit codes of run: 0 within the limits, 3 findings above them (default: any major),
    1 an error (bad input, a model that cannot be loaded), 2 a usage error.
    """


@scan.command("run")
@click.argument("model", metavar="MODEL")
@click.argument("data", metavar="DATA")
@click.option("--target", required=True, help="The column with the true outcome.")
@click.option("--predict", help="Answer through module:function(DataFrame) instead of a file.")
@click.option("--prediction", help="Scan this column of predictions (no model is loaded).")
@click.option("--proba", help="Column with the positive class's probability (no model loaded).")
@click.option("--artifact", help="Which of a run's logged files is the model.")
@click.option("--trust", multiple=True, help="A type a skops file may load (repeatable).")
@click.option("--ignore", multiple=True, help="A column never fed to the model (repeatable).")
@click.option("--train", multiple=True, help="Training data file, beside the run's (repeatable).")
@click.option("--sensitive", multiple=True, help="Check parity across this column (repeatable).")
@click.option("--detector", "detectors", multiple=True, help="Run only this detector.")
@click.option("--seed", type=int, help="Seed of sampling and perturbations (default 0).")
@click.option("--no-pairs", is_flag=True, help="Slice single columns only.")
@click.option("--max-major", type=int, help="Exit 3 above this many major findings (default 0).")
@click.option("--max-medium", type=int, help="Exit 3 above this many medium findings.")
@click.option("--max-minor", type=int, help="Exit 3 above this many minor findings.")
@format_option
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Also write FILE.")
@click.option("--no-record", is_flag=True, help="Do not keep the result as a note.")
def run_cmd(
    model: str,
    data: str,
    target: str,
    predict: str | None,
    prediction: str | None,
    proba: str | None,
    artifact: str | None,
    trust: tuple[str, ...],
    ignore: tuple[str, ...],
    train: tuple[str, ...],
    sensitive: tuple[str, ...],
    detectors: tuple[str, ...],
    seed: int | None,
    no_pairs: bool,
    max_major: int | None,
    max_medium: int | None,
    max_minor: int | None,
    fmt_: str,
    html_file: str | None,
    no_record: bool,
) -> int:
    """Scan MODEL (churn@v1.2.0, churn#staging, churn, a run id, or a model file) on DATA (a
    CSV/Parquet file or a declared dataset), against the true outcomes in --target.

    The result is kept as a note on the model version's commit (refs/notes/mlm-scans), one per
    version and data digest; `git mlm scan history` lists them, gates read them.
    """
    from gitmlm.core import config
    from gitmlm.scan import engine, report
    from gitmlm.scan import settings as scan_settings
    from gitmlm.scan.context import Options

    try:
        repo = open_repo()
    except MlmError:
        repo = None  # a model file and a data file can be scanned outside a repository
    cfg = scan_settings.settings(config.load(repo.workdir)) if repo is not None else None
    if html_file:
        from gitmlm.scan import html as scan_html

        scan_html.require()
    options = Options(
        seed=seed if seed is not None else (cfg.seed if cfg else 0),
        pairs=not no_pairs,
        sensitive=[*(cfg.sensitive if cfg else []), *sensitive],
        detectors=list(detectors) or None,
    )
    if cfg and cfg.noise:
        options.noise = cfg.noise
    limits = engine.Limits(
        _pick(max_major, cfg, "max_major", 0),
        _pick(max_medium, cfg, "max_medium", None),
        _pick(max_minor, cfg, "max_minor", None),
    )
    request = engine.Request(
        model,
        Path(data),
        target,
        predict=predict,
        prediction=prediction,
        proba=proba,
        artifact=artifact,
        trust=[*(cfg.trust if cfg else []), *trust],
        ignore=[*(cfg.ignore if cfg else []), *ignore],
        train=list(train),
        options=options,
    )
    progress = (lambda msg: click.echo(f"… {msg}", err=True)) if sys.stderr.isatty() else None
    result = engine.scan(repo, request, progress)
    exceeded = engine.above(result, limits)
    key = None
    if not no_record and repo is not None and result.subject.commit is not None:
        from gitmlm.scan import record

        key = record.record(repo, result)
    if html_file:
        scan_html.write(result, Path(html_file))
        click.echo(f"wrote {html_file}", err=True)
    if fmt_ == "json":
        click.echo(report.as_json(result, key, exceeded))
    else:
        if fmt_ in ("table", "md"):
            click.echo(report.headline(result))
        click.echo(report.render(result, fmt_))
        if fmt_ == "table":
            for f in result.findings:
                click.echo(f"  {f.severity:6} {f.message}")
            for note in result.notes:
                click.echo(f"note: {note}", err=True)
    if key is not None:
        commit = result.subject.commit or ""
        click.echo(f"recorded the scan on {commit[:10]} ({result.subject.label})", err=True)
    elif not no_record:
        click.echo(
            f"not recorded: {result.subject.label} is not a registered model or a run", err=True
        )
    if exceeded:
        click.echo(f"git mlm: {'; '.join(exceeded)}", err=True)
        return engine.EXIT_FINDINGS
    return 0


def _pick(given: int | None, cfg: Any, key: str, default: int | None) -> int | None:
    if given is not None:
        return given
    if cfg is not None and key in cfg.limits:
        return int(cfg.limits[key])
    return default


@scan.command("history")
@click.argument("model", metavar="MODEL[@vX|#STAGE]|RUN")
@format_option
def history_cmd(model: str, fmt_: str) -> None:
    """Recorded scans of MODEL (every version, or one), or of a run, oldest first."""
    from gitmlm.scan import record, report

    repo = open_repo()
    found = record.history(repo, model)
    if not found:
        click.echo(
            f"no recorded scans of {model}; make one with `git mlm scan MODEL DATA --target COL`",
            err=True,
        )
        return
    if fmt_ == "json":
        click.echo(fmt.to_json([{"key": r.key, "commit": r.commit, **r.doc} for r in found]))
        return
    rows = report.history_rows(found)
    click.echo(fmt.render(rows, list(rows[0]), fmt_))
    if fmt_ in ("table", "md"):
        latest = found[-1]
        click.echo("")
        click.echo(f"latest findings ({latest.doc.get('version') or latest.key}):")
        shown = report.finding_rows(latest.findings)
        if shown:
            click.echo(fmt.render(shown, report.COLUMNS, fmt_))
        else:
            click.echo("no findings")


COMMANDS = [scan]
