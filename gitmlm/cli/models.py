"""Registry commands: register, promote, demote, deprecate, models, model history/show, ci."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitmlm.cli.common import format_option, open_repo
from gitmlm.core import fmt
from gitmlm.errors import MlmError

_MESSAGE = click.option("-m", "--message", default="", help="Why: recorded in the tag body.")


def _warn(problems: list[str]) -> None:
    for problem in problems:
        click.echo(f"git mlm: {problem}", err=True)


def _short(run: str | None) -> str:
    return run[:12] if run else ""


@click.command()
@click.argument("name")
@click.argument("ref", required=False)
@click.option("--version", "version", help="The version to register, e.g. v1.2.0.")
@click.option(
    "--bump",
    type=click.Choice(["major", "minor", "patch"]),
    help="Bump the greatest version (default: patch; the first version is v0.0.1).",
)
@click.option("--run", "run_id", help="The run that made the artifact (default: found by digest).")
@_MESSAGE
def register(
    name: str,
    ref: str | None,
    version: str | None,
    bump: str | None,
    run_id: str | None,
    message: str,
) -> None:
    """Register the model artifact at REF (default HEAD) as a new version: tag NAME@vX.Y.Z.

    The tag body records the artifact's path and sha256, the run that logged it (found by
    that digest when --run is not given), the run's metrics and datasets, who and why.
    """
    from gitmlm.models import ops as lifecycle

    r = lifecycle.register(
        open_repo(), name, ref, version=version, bump=bump, run_id=run_id, message=message
    )
    if r.run is None:
        run_note = "no run logged this artifact (record it with run.log_artifact)"
    else:
        run_note = f"run {_short(r.run)}" + (" (found by artifact digest)" if r.run_found else "")
    click.echo(f"registered {r.model} {r.version} at {r.commit[:10]}: tag {r.tag}; {run_note}")


def _scanner(repo: Any) -> Any:
    """What a scan gate calls when the candidate has no recorded scan on the gate's data."""

    def run(subject: str, data: Path, target: str) -> Any:
        from gitmlm.scan import gate

        return gate.scan_and_record(repo, subject, data, target)

    return run


def _checks_table(checks: list[Any], fmt_: str = "table") -> str:
    rows = [
        {"gate": c.gate, "result": "pass" if c.ok else "FAIL", "detail": c.detail} for c in checks
    ]
    return fmt.render(rows, ["gate", "result", "detail"], fmt_)


@click.command()
@click.argument("name")
@click.argument("stage")
@click.argument("version_arg", metavar="[VERSION]", required=False)
@click.option("--version", "version_opt", help="The version to promote (default: the latest).")
@click.option("--request", is_flag=True, help="Write a promotion request for a pull request.")
@click.option("--force", is_flag=True, help="Promote although gates fail (needs --reason).")
@click.option("--reason", help="Why the gates are overridden: recorded in the tag body.")
@_MESSAGE
def promote(
    name: str,
    stage: str,
    version_arg: str | None,
    version_opt: str | None,
    request: bool,
    force: bool,
    reason: str | None,
    message: str,
) -> None:
    """Put a version of NAME into STAGE (tag NAME#STAGE#N), if the stage's gates pass.

    With --request, write .mlm/requests/NAME--STAGE.toml instead: commit it and open a pull
    request; `git mlm ci check` reviews it there and `git mlm ci apply` promotes after merge.
    """
    from gitmlm.models import ops as lifecycle
    from gitmlm.models import requests as ci

    if version_arg and version_opt and version_arg != version_opt:
        raise MlmError(f"VERSION {version_arg} and --version {version_opt} disagree")
    version = version_arg or version_opt
    repo = open_repo()
    if request:
        if version is None:
            raise MlmError(
                "a request names its version: git mlm promote --request NAME STAGE VERSION"
            )
        req, p = ci.write_request(
            repo,
            name,
            stage,
            version,
            message=message,
            force=force,
            reason=reason,
            scanner=_scanner(repo),
        )
        click.echo(f"wrote {req.path}: commit it and open a pull request")
        if p.checks:
            click.echo(_checks_table(p.checks))
        if not p.passed and not force:
            click.echo(
                f"git mlm: {len(p.failed)} gate(s) fail now: `git mlm ci check` will block "
                "this request until they pass",
                err=True,
            )
        return
    try:
        p, tag = lifecycle.promote(
            repo,
            name,
            stage,
            version,
            force=force,
            reason=reason,
            message=message,
            scanner=_scanner(repo),
        )
    except lifecycle.GateRefused as exc:
        click.echo(_checks_table(exc.plan.checks), err=True)
        raise
    was = f" (was {p.current.version})" if p.current else ""
    forced = " — gates overridden" if force and not p.passed else ""
    click.echo(f"{name} {p.version.version} is now in {stage}{was}: tag {tag}{forced}")


@click.command()
@click.argument("name")
@click.argument("stage")
@_MESSAGE
def demote(name: str, stage: str, message: str) -> None:
    """Take the version in STAGE out of it (tag NAME#STAGE!#N).

    The stage falls back to the version assigned to it before, if that is still assigned.
    """
    from gitmlm.models import ops as lifecycle

    d = lifecycle.demote(open_repo(), name, stage, message)
    now = d.now or "nothing"
    click.echo(f"{name} {d.version} left {stage}: tag {d.tag}; {stage} now holds {now}")


@click.command()
@click.argument("spec", metavar="NAME[@vX.Y.Z]")
@_MESSAGE
def deprecate(spec: str, message: str) -> None:
    """Withdraw a version (NAME@vX.Y.Z: tag NAME@vX.Y.Z!) or a whole model (NAME@deprecated).

    A withdrawn version leaves every stage and can no longer be promoted.
    """
    from gitmlm.models import ops as lifecycle

    tag = lifecycle.deprecate(open_repo(), spec, message)
    click.echo(f"created tag {tag}")


@click.command()
@click.option("--all", "all_", is_flag=True, help="Include deprecated models.")
@click.option(
    "--verify", is_flag=True, help="Check signatures of protected stages; fail on bad ones."
)
@format_option
def models(all_: bool, verify: bool, fmt_: str) -> None:
    """One row per model: its latest version and the version in each stage."""
    from gitmlm.core import config
    from gitmlm.models import ops as lifecycle
    from gitmlm.models import signing
    from gitmlm.models import state as model_registry

    repo = open_repo()
    cfg = config.load(repo.workdir) if repo.root else {}
    # Every listing leaves out badly signed tags of protected stages (and says so);
    # --verify also fails on them.
    reg, bad = signing.load(repo, cfg)
    if verify:
        reg.problems = [p for p in reg.problems if p not in reg.rejected]
    else:
        bad = []
    _warn(reg.problems)
    stage_names = model_registry.stages(cfg)
    rows = lifecycle.model_rows(reg, stage_names, include_deprecated=all_)
    if fmt_ == "json":
        click.echo(fmt.to_json(rows))
    elif rows or fmt_ != "table":
        flat, columns = lifecycle.flat_model_rows(rows, stage_names)
        click.echo(fmt.render(flat, columns, fmt_))
    else:
        click.echo("no models yet")
    for v in bad:
        click.echo(f"git mlm: rejected {v.tag}: {v.detail}", err=True)
    if bad:
        raise MlmError(f"{len(bad)} tag(s) of protected stages failed verification (ignored above)")


@click.group()
def model() -> None:
    """One model: its history, or one version in detail."""


@model.command()
@click.argument("name")
@click.option("--reverse", is_flag=True, help="Oldest first.")
@format_option
def history(name: str, reverse: bool, fmt_: str) -> None:
    """Every event of NAME, newest first: when, who, what, why, and the tag."""
    from gitmlm.models import ops as lifecycle
    from gitmlm.models import signing

    reg = signing.load(open_repo())[0]
    _warn(reg.problems)
    rows = lifecycle.history_rows(reg.model(name))
    if not reverse:
        rows.reverse()
    columns = ["seq", "when", "who", "event", "version", "stage", "why", "tag"]
    if fmt_ != "table":
        columns += ["forced", "override", "requested_by", "signed"]
    else:
        for row in rows:
            if row["forced"]:
                row["why"] = f"{row['why']} [forced: {row['override']}]".strip()
    click.echo(fmt.render(rows, columns, fmt_))


@model.command("show")
@click.argument("spec", metavar="NAME[@vX.Y.Z|@latest|#STAGE]")
@format_option
def show_model(spec: str, fmt_: str) -> None:
    """One version: commit, tag, artifact digest, run, stages, metrics and datasets."""
    from gitmlm.models import ops as lifecycle
    from gitmlm.models import signing

    repo = open_repo()
    reg = signing.load(repo)[0]
    _warn(reg.problems)
    info = lifecycle.show(repo, reg, spec)
    if fmt_ == "json":
        click.echo(fmt.to_json(info))
        return
    findings = info.pop("findings", [])
    rows = []
    for key, value in info.items():
        if isinstance(value, dict):
            rows += [{"field": f"{key}.{k}", "value": v} for k, v in sorted(value.items())]
        else:
            rows.append({"field": key, "value": value})
    click.echo(fmt.render(rows, ["field", "value"], fmt_))
    if findings and fmt_ in ("table", "md"):
        click.echo("")
        click.echo("scan findings (latest scan per data; `git mlm scan history` for all):")
        cols = ["data", "severity", "detector", "slice", "message"]
        click.echo(fmt.render(findings, cols, fmt_))


@click.group("ci")
def ci_group() -> None:
    """Promotion through pull requests: check requests in PR CI, apply them after merge."""


@ci_group.command("check")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Also write the report here.")
def ci_check(output: str | None) -> None:
    """Judge every promotion request against its gates; print a Markdown report.

    Exits 1 when a request is invalid, fails its gates without a requested override, or a
    protected stage has a badly signed tag.
    """
    from gitmlm.models import requests as ci

    repo = open_repo()
    report = ci.check(repo, _scanner(repo))
    _warn(report.problems)
    text = ci.markdown(report)
    click.echo(text, nl=False)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    if not report.ok:
        raise MlmError("promotion requests are not ready (see the report)")


@ci_group.command("apply")
@click.option("--remote", default="origin", show_default=True, help="Where to push tags.")
@click.option("--branch", help="Branch to push the cleanup commit to (default: the current one).")
@click.option("--no-push", is_flag=True, help="Create tags and the commit; push nothing.")
def ci_apply(remote: str, branch: str | None, no_push: bool) -> None:
    """After merge: create each request's tag, push tags (≤ 3 per push), remove the requests."""
    from gitmlm.models import requests as ci

    repo = open_repo()
    result = ci.apply(repo, remote=None if no_push else remote, branch=branch)
    if not result.outcomes:
        click.echo("no promotion requests to apply")
        return
    for o in result.outcomes:
        what = f"{o.request.model} {o.request.version} → {o.request.stage}"
        tail = f": {o.tag}" if o.tag else f": {o.detail}"
        click.echo(f"{o.status:<16} {what}{tail}")
    for batch in result.pushed:
        click.echo(f"pushed {' '.join(batch)}")
    if result.commit:
        click.echo(f"removed applied requests in {result.commit[:10]}")
    if not result.ok:
        raise MlmError("some requests were not applied (see above); they stay in place")


COMMANDS = [register, promote, demote, deprecate, models, model, ci_group]
