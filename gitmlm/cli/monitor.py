"""Commands of model observation: profile, monitor (check, history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitmlm.cli.common import format_option, need_ui_extra, open_repo
from gitmlm.core import fmt, ids


@click.command("profile")
@click.argument("path", type=click.Path())
@click.option("--run", "run_id", required=True, help="The run the data belongs to (id or prefix).")
@click.option("--name", help="Dataset name (default: the run's dataset with this path, or PATH).")
@click.option(
    "--top-k", type=int, default=20, show_default=True, help="Categories kept per column."
)
@click.option("--hash", "hash_values", is_flag=True, help="Store category values as hashes.")
@click.option(
    "--min-count",
    type=int,
    default=0,
    show_default=True,
    help="Fold categories seen fewer times than this into `other` (privacy).",
)
def profile_cmd(
    path: str, run_id: str, name: str | None, top_k: int, hash_values: bool, min_count: int
) -> None:
    """Profile PATH (CSV or Parquet file, or a directory of them) as training data of a run.

    The profile (per column: counts, nulls, bins frozen at training quantiles, quantiles, top
    categories) is stored in refs/notes/mlm-profiles on the run's commit, and the run's
    `datasets.NAME` records `profile = true`. `git mlm monitor` compares serving data with it.
    Profiling again under the same name replaces the profile.
    """
    from gitmlm.tracking import profiles as profile_store
    from gitmlm.tracking import record as tracking_record

    repo = open_repo()
    options = profile_store.Options(top_k, hash_values, min_count)
    done = tracking_record.record_for_run(repo, run_id, path, name, options)
    files = f"{len(done.files)} files" if len(done.files) > 1 else str(done.files[0])
    click.echo(
        f"profiled {files}: {done.profile.rows:,} rows, {len(done.profile.columns)} columns, "
        f"as dataset {done.name!r} of run {done.run.id[: ids.SHORT]}"
    )


class _DefaultCheck(click.Group):
    """`git mlm monitor MODEL DATA` is `git mlm monitor check MODEL DATA`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultCheck)
def monitor() -> None:
    """Compare serving data with a model's training profile; see recorded history.

    \b
    git mlm monitor churn#production serving.csv           (same as `monitor check ...`)
    git mlm monitor --run 01hx2c serving.parquet --html report.html
    git mlm monitor history churn --feature age

    Exit codes of check: 0 nothing crossed a threshold, 3 drift, schema skew, an SLO or a
    quality bound was crossed, 1 an error (bad input, no profile), 2 a usage error.
    """


@monitor.command("check")
@click.argument("model_or_data", metavar="[MODEL[#STAGE|@vX]]")
@click.argument("data", required=False, metavar="SERVING_DATA")
@click.option("--run", "run_id", help="Use this run's training profile (instead of the model's).")
@click.option("--dataset", help="Which of the run's profiles, when it has several.")
@click.option("--prediction", help="Column with the model's output (prediction drift, quality).")
@click.option("--labels", help="Column with the true outcome: realised quality per window.")
@click.option("--time", "time_col", help="Column with each row's time, for windows.")
@click.option("--window", help="Window length with --time: 15min, 1h, 1d (default), 7d.")
@click.option("--latency", help="Column with the latency of each prediction: p50/p95/p99.")
@click.option("--ignore", multiple=True, help="A serving column not to compare (repeatable).")
@click.option("--pvalues", is_flag=True, help="Add chi-square p-values (misleading at large n).")
@format_option
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Also write an HTML report with histograms to FILE.",
)
@click.option(
    "--record", is_flag=True, help="Keep the result as a note on the model version's commit."
)
def check(
    model_or_data: str,
    data: str | None,
    run_id: str | None,
    dataset: str | None,
    prediction: str | None,
    labels: str | None,
    time_col: str | None,
    window: str | None,
    latency: str | None,
    ignore: tuple[str, ...],
    pvalues: bool,
    fmt_: str,
    html_file: str | None,
    record: bool,
) -> int:
    """Compare SERVING_DATA (CSV or Parquet) with the training profile of MODEL's run.

    MODEL is churn#production, churn@v1.2.0 or churn (latest); with --run ID alone, MODEL may
    be left out. Thresholds, SLOs and quality bounds come from [monitor] in mlm.toml.
    Exits 3 when anything is flagged, 0 when not.
    """
    from gitmlm.core import config
    from gitmlm.monitor import monitor as mon
    from gitmlm.monitor import report as monitor_report

    if data is None:
        if run_id is None:
            raise click.UsageError("give MODEL and SERVING_DATA, or --run ID and SERVING_DATA")
        model, data = None, model_or_data
    else:
        model = model_or_data
    repo = open_repo()
    if html_file:
        need_ui_extra("--html")  # before the work: a missing extra is known up front
        from gitmlm.ui import observe as monitor_html

    cfg = mon.settings(config.load(repo.workdir))
    target = mon.resolve_target(repo, model, run_id)
    request = mon.Request(
        data=Path(data),
        dataset=dataset,
        prediction=prediction,
        labels=labels,
        time=time_col,
        window=window,
        latency=latency,
        pvalues=pvalues,
        ignore=list(ignore),
    )
    result = mon.observe(repo, target, request, cfg)
    if html_file:
        monitor_html.write(result, Path(html_file))
        click.echo(f"wrote {html_file}", err=True)
    click.echo(monitor_report.render(result, fmt_))
    if record:
        oid = mon.record(repo, result)
        click.echo(
            f"recorded observation {oid[: ids.SHORT]} on {target.commit[:10]} ({target.label})",
            err=True,
        )
    return result.exit_code


@monitor.command("history")
@click.argument("model", required=False, metavar="[MODEL[#STAGE|@vX]]")
@click.option("--run", "run_id", help="Observations made against this run's profile.")
@click.option("--feature", help="One feature's scores, observation by observation.")
@click.option(
    "--score",
    type=click.Choice(["psi", "js", "wasserstein", "linf", "null_rate_now", "out_of_range"]),
    default="psi",
    show_default=True,
    help="The score whose trend is shown per feature.",
)
@format_option
def history_cmd(
    model: str | None, run_id: str | None, feature: str | None, score: str, fmt_: str
) -> None:
    """Recorded observations (`monitor --record`) of MODEL, oldest first: the trend per feature.

    MODEL alone covers every version; churn@v1.2.0 or churn#production one version.
    """
    from gitmlm.monitor import monitor as mon
    from gitmlm.monitor import report as monitor_report

    repo = open_repo()
    found = mon.history(repo, model, run_id)
    what = model or f"run {run_id}"
    if not found:
        click.echo(
            f"no recorded observations of {what}; record one with "
            "`git mlm monitor MODEL DATA --record`",
            err=True,
        )
        return
    if feature is not None:
        rows = monitor_report.feature_history_rows(found, feature)
        if not rows:
            known = sorted({n for o in found for n in o.doc.get("features", {})})
            raise click.UsageError(
                f"no observation of {what} has a feature {feature!r} (known: {', '.join(known)})"
            )
    if fmt_ == "json":
        docs: list[dict[str, Any]] = []
        for o in found:
            doc = {"id": o.id, "commit": o.commit, **o.doc}
            if feature is not None:
                doc["features"] = {k: v for k, v in doc.get("features", {}).items() if k == feature}
            docs.append(doc)
        click.echo(fmt.to_json(docs))
        return
    if feature is not None:
        click.echo(fmt.render(rows, fmt.columns_of(rows, list(rows[0])), fmt_))
        return
    trend = monitor_report.trend_rows(found, score)
    if fmt_ == "csv":
        click.echo(fmt.render(trend, list(trend[0]), fmt_))
        return
    obs = monitor_report.observation_rows(found)
    click.echo(fmt.render(obs, list(obs[0]), fmt_))
    click.echo("")
    click.echo(fmt.render(trend, list(trend[0]), fmt_))


COMMANDS = [profile_cmd, monitor]
