"""Registry operations: register, promote (through gates), demote, deprecate, and the listings.

Writers run under one local lock and re-read the tags inside it, so their checks see what is
there when the tag is made; git's atomic ref creation decides between writers on other
machines (the second push of a tag name is refused).
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import Any

from gitmlm.core import config, scans, tags
from gitmlm.core import digest as artifact_digest
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.models import gates, signing
from gitmlm.models import state as model_registry
from gitmlm.models.state import Model, Registry, Version
from gitmlm.tracking import listing as runs

LOCK = "registry"


def _listing(repo: Repo) -> runs.Listing:
    return runs.list_runs(repo)


def find_run(listing: runs.Listing, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    return next((r for r in listing.runs if r.id == run_id), None)


def _norm(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")).lstrip("/")


# --- register ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    tag: str
    model: str
    version: str
    commit: str
    path: str
    digest: str
    run: str | None
    run_found: bool
    """True when the run was found by the artifact's digest rather than given."""


def _producer(listing: runs.Listing, path: str, digest: str, commit: str) -> Run | None:
    """The run that logged this exact artifact: at this commit first, finished first, newest."""
    found = [r for r in listing.runs if r.artifacts.get(path, {}).get("digest") == digest]
    if not found:
        return None
    found.sort(key=lambda r: (r.commit == commit, r.status == "finished", r.id), reverse=True)
    return found[0]


def _next_version(model: Model | None, bump: str | None) -> str:
    every = list(model.versions.values()) if model else []
    named = [v.version for v in every if v.registered is not None]
    if not named:
        return {"major": "v1.0.0", "minor": "v0.1.0"}.get(bump or "patch", "v0.0.1")
    # Bump past deregistered versions too: a version name is never reused.
    top = max(named, key=tags.version_key)
    return tags.bump(top, bump or "patch")


def register(
    repo: Repo,
    name: str,
    ref: str | None = None,
    *,
    version: str | None = None,
    bump: str | None = None,
    run_id: str | None = None,
    message: str = "",
) -> Registered:
    """Tag the model artifact at REF as a new version, with its run, digest and metrics."""
    cfg = config.load(repo.workdir)
    tags.check_model_name(name)
    # Before the declaration: advice to declare a name git refuses would be wrong advice.
    model_registry.check_tag_name(repo, tags.format_tag(tags.REGISTER, name, version="v0.0.1"))
    path = _norm(str(model_registry.declared(cfg, name)["path"]))
    if version is not None and bump is not None:
        raise MlmError("give either --version or --bump, not both")
    if version is not None:
        tags.check_version(version)
    commit = repo.resolve(ref or "HEAD")
    content = repo.file_at(commit, path)
    listing = _listing(repo)
    run: Run | None = None
    if run_id is not None:
        run = runs.resolve(listing, run_id)
    with repo.lock(LOCK):
        reg = signing.load(repo)[0]
        model = reg.models.get(name)
        if model is not None:
            if model.deprecated:
                raise MlmError(f"model {name} is deprecated; it takes no new versions")
            for v in model.versions.values():
                if v.commit == commit and v.active and v.registered is not None:
                    raise MlmError(
                        f"{name} {v.version} is already registered at {commit[:10]}; "
                        "one version per commit (commit the new model first)"
                    )
        if version is None:
            version = _next_version(model, bump)
        elif model is not None and version in model.versions:
            old = model.versions[version]
            state = "registered" if old.active else "deregistered (names are never reused)"
            raise MlmError(f"{name} {version} already exists: {state}; pick another version")
        recorded = run.artifacts.get(path, {}).get("digest") if run else None
        if content is not None:
            digest = artifact_digest.of_bytes(content)
            if run is not None and recorded is not None and recorded != digest:
                raise MlmError(
                    f"run {run.id} logged a different {path} ({recorded[:19]}…) than "
                    f"commit {commit[:10]} holds ({digest[:19]}…); pick the run that made it"
                )
        elif recorded is not None:
            digest = str(recorded)
        else:
            raise MlmError(
                f"{path} is not in commit {commit[:10]}: commit the model file, or give "
                "--run ID of the run that logged it (run.log_artifact)"
            )
        found = False
        if run is None:
            run = _producer(listing, path, digest, commit)
            found = run is not None
        body: dict[str, Any] = {
            "version": version,
            "commit": commit,
            "run": run.id if run else None,
            "who": model_registry.identity(repo),
            "why": message or None,
            "checkpoint": run.checkpoint if run else None,
            "artifact": {"path": path, "digest": digest},
        }
        if run is not None:
            body["metrics"] = dict(run.metrics)
            body["datasets"] = {
                k: str(v.get("digest", "")) for k, v in run.datasets.items() if v.get("digest")
            }
        tag = model_registry.write_event(
            repo,
            reg,
            tags.REGISTER,
            name,
            commit,
            f"Register {name} {version}",
            body,
            version=version,
        )
    return Registered(tag, name, version, commit, path, digest, run.id if run else None, found)


# --- promote -----------------------------------------------------------------------------------


@dataclass
class Plan:
    model: str
    stage: str
    version: Version
    current: Version | None
    candidate: gates.Evidence
    holder: gates.Evidence | None
    checks: list[gates.Check]
    signed: bool

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[gates.Check]:
        return [c for c in self.checks if not c.ok]


class GateRefused(MlmError):
    """The version failed gates; `plan` says which."""

    def __init__(self, plan: Plan) -> None:
        n = len(plan.failed)
        super().__init__(
            f"{plan.model} {plan.version.version} cannot enter {plan.stage}: {n} gate(s) failed; "
            "fix them, or override with --force --reason TEXT (recorded in the tag)"
        )
        self.plan = plan


def pick_version(model: Model, version: str | None) -> Version:
    if model.deprecated:
        raise MlmError(f"model {model.name} is deprecated; its versions cannot be promoted")
    if version is None:
        latest = model.latest()
        if latest is None:
            raise MlmError(f"model {model.name} has no active versions; register one first")
        return latest
    tags.check_version(version)
    found = model.versions.get(version)
    if found is None or found.registered is None:
        raise MlmError(
            f"{model.name} has no version {version}; `git mlm model history {model.name}` "
            "lists them"
        )
    if not found.active:
        raise MlmError(f"{model.name} {version} is deregistered; it cannot be promoted")
    return found


def evidence_of(v: Version, listing: runs.Listing | None) -> gates.Evidence:
    run = find_run(listing, v.run) if listing is not None else None
    return gates.evidence(v.version, v.body, run, v.model, v.commit)


def plan(
    repo: Repo,
    cfg: dict[str, Any],
    reg: Registry,
    name: str,
    stage: str,
    version: str | None = None,
    listing: runs.Listing | None = None,
    scanner: gates.Scanner | None = None,
) -> Plan:
    """Which version would enter the stage, what holds it now, and how each gate judges."""
    model_registry.check_stage(cfg, stage)
    model = reg.model(name)
    chosen = pick_version(model, version)
    current = model.holder(stage)
    if current is not None and current.version == chosen.version:
        raise MlmError(f"{name} {chosen.version} is already in {stage}")
    if listing is None:
        listing = _listing(repo)
    candidate = evidence_of(chosen, listing)
    holder = evidence_of(current, listing) if current else None
    settings = model_registry.stage_settings(cfg, stage)
    checks = gates.evaluate(
        cfg, repo.workdir, stage, settings, candidate, holder, repo=repo, scanner=scanner
    )
    return Plan(
        name,
        stage,
        chosen,
        current,
        candidate,
        holder,
        checks,
        model_registry.is_signed_stage(cfg, stage),
    )


def check_signing(repo: Repo, p: Plan) -> None:
    if p.signed and not repo.config_get("user.signingkey"):
        raise MlmError(
            f"stage {p.stage} is signed: set a key first (git config user.signingkey ...; "
            "for ssh keys also git config gpg.format ssh)"
        )


def apply_plan(
    repo: Repo,
    reg: Registry,
    p: Plan,
    *,
    force: bool = False,
    reason: str | None = None,
    message: str = "",
    extra: dict[str, Any] | None = None,
) -> str:
    """The assign tag for a planned promotion; GateRefused when gates fail and not forced."""
    if not p.passed and not force:
        raise GateRefused(p)
    if force and not (reason or "").strip():
        raise MlmError("--force needs --reason TEXT: the override is recorded in the tag")
    check_signing(repo, p)
    body: dict[str, Any] = {
        "version": p.version.version,
        "stage": p.stage,
        "commit": p.version.commit,
        "previous": p.current.version if p.current else None,
        "who": model_registry.identity(repo),
        "why": message or None,
        "run": p.version.run,
    }
    if force:
        body["forced"] = True
        body["override"] = reason
    body.update(extra or {})
    if p.checks:
        body["gates"] = [{"gate": c.gate, "ok": c.ok, "detail": c.detail} for c in p.checks]
    return model_registry.write_event(
        repo,
        reg,
        tags.ASSIGN,
        p.model,
        p.version.commit,
        f"Promote {p.model} {p.version.version} to {p.stage}",
        body,
        stage=p.stage,
        sign=p.signed,
    )


def promote(
    repo: Repo,
    name: str,
    stage: str,
    version: str | None = None,
    *,
    force: bool = False,
    reason: str | None = None,
    message: str = "",
    scanner: gates.Scanner | None = None,
) -> tuple[Plan, str]:
    cfg = config.load(repo.workdir)
    listing = _listing(repo)
    with repo.lock(LOCK):
        reg = signing.load(repo)[0]
        p = plan(repo, cfg, reg, name, stage, version, listing, scanner)
        return p, apply_plan(repo, reg, p, force=force, reason=reason, message=message)


# --- demote / deprecate ------------------------------------------------------------------------


@dataclass(frozen=True)
class Demoted:
    tag: str
    version: str
    now: str | None
    """The version the stage falls back to (assigned before and still assigned), if any."""


def demote(repo: Repo, name: str, stage: str, message: str = "") -> Demoted:
    cfg = config.load(repo.workdir)
    model_registry.check_stage(cfg, stage)
    with repo.lock(LOCK):
        reg = signing.load(repo)[0]
        model = reg.model(name)
        current = model.holder(stage)
        if current is None:
            raise MlmError(f"no version of {name} is in {stage}; nothing to demote")
        signed = model_registry.is_signed_stage(cfg, stage)
        if signed and not repo.config_get("user.signingkey"):
            raise MlmError(f"stage {stage} is signed: set git config user.signingkey first")
        body = {
            "version": current.version,
            "stage": stage,
            "commit": current.commit,
            "who": model_registry.identity(repo),
            "why": message or None,
        }
        tag = model_registry.write_event(
            repo,
            reg,
            tags.UNASSIGN,
            name,
            current.commit,
            f"Demote {name} {current.version} from {stage}",
            body,
            stage=stage,
            sign=signed,
        )
        held = [v for v in model.assigned.get(stage, {}) if v != current.version]
    return Demoted(tag, current.version, held[-1] if held else None)


def deprecate(repo: Repo, spec_text: str, message: str = "") -> str:
    """`NAME@vX.Y.Z` deregisters a version (NAME@vX.Y.Z!); `NAME` deprecates the model."""
    spec = tags.parse_spec(spec_text)
    cfg = config.load(repo.workdir)
    if spec.stage is not None:
        raise MlmError("deprecate takes NAME or NAME@vX.Y.Z, not a stage (use git mlm demote)")
    with repo.lock(LOCK):
        reg = signing.load(repo)[0]
        model = reg.model(spec.model)
        who = model_registry.identity(repo)
        if spec.version is None and spec_text.strip().endswith("@latest"):
            raise MlmError("name the version to deregister exactly, e.g. churn@v1.2.0")
        if spec.version is not None:
            v = model.versions.get(spec.version)
            if v is None or v.registered is None:
                raise MlmError(f"{model.name} has no version {spec.version}")
            if not v.active:
                raise MlmError(f"{model.name} {spec.version} is deregistered already")
            protected = signing.signed_stages(cfg)
            sign = any(e.stage in protected and e.version == v.version for e in model.events)
            if sign and not repo.config_get("user.signingkey"):
                raise MlmError(
                    f"{model.name} {v.version} has been in a signed stage: its deregistration must "
                    "be signed; set git config user.signingkey first"
                )
            body = {"version": v.version, "commit": v.commit, "who": who, "why": message or None}
            return model_registry.write_event(
                repo,
                reg,
                tags.DEREGISTER,
                model.name,
                v.commit,
                f"Deregister {model.name} {v.version}",
                body,
                version=v.version,
                sign=sign,
            )
        if model.deprecated:
            raise MlmError(f"model {model.name} is deprecated already")
        protected = signing.signed_stages(cfg)
        sign = any(e.stage in protected for e in model.events)
        if sign and not repo.config_get("user.signingkey"):
            raise MlmError(
                f"model {model.name} has been in a signed stage: its deprecation must be "
                "signed; set git config user.signingkey first"
            )
        last = model.events[-1]
        simple = tags.format_tag(tags.DEPRECATE, model.name)
        taken = repo.ref("refs/tags/" + simple) is not None
        return model_registry.write_event(
            repo,
            reg,
            tags.DEPRECATE,
            model.name,
            last.commit,
            f"Deprecate {model.name}",
            {"who": who, "why": message or None},
            counted=taken,
            sign=sign,
        )


# --- reading -----------------------------------------------------------------------------------


def resolve(reg: Registry, spec_text: str) -> tuple[Model, Version, str | None]:
    """NAME (latest), NAME@latest, NAME@vX.Y.Z or NAME#STAGE -> (model, version, stage)."""
    spec = tags.parse_spec(spec_text)
    model = reg.model(spec.model)
    if spec.stage is not None:
        held = model.holder(spec.stage)
        if held is None:
            raise MlmError(f"no version of {model.name} is in {spec.stage}")
        return model, held, spec.stage
    if spec.version is not None:
        found = model.versions.get(spec.version)
        if found is None:
            raise MlmError(f"{model.name} has no version {spec.version}")
        return model, found, None
    latest = model.latest()
    if latest is None:
        raise MlmError(f"model {model.name} has no active versions")
    return model, latest, None


@dataclass(frozen=True)
class Resolved:
    """What `gitmlm.resolve("churn#production")` gives: enough to fetch and serve the model."""

    model: str
    version: str
    commit: str
    path: str
    """The artifact's path in `commit`."""
    digest: str
    run: str | None
    tag: str | None
    stage: str | None
    folder: bool = False
    """The artifact is a folder object (an imported MLflow model): its listing's digest."""


def resolved(repo: Repo, spec_text: str) -> Resolved:
    cfg = config.load(repo.root) if repo.root else {}
    reg = signing.load(repo, cfg)[0]
    signing.warn(reg)
    model, v, stage = resolve(reg, spec_text)
    declared = model_registry.declared_models(cfg).get(model.name, {})
    artifact = v.artifact
    return Resolved(
        model.name,
        v.version,
        v.commit,
        str(artifact.get("path") or declared.get("path", "")),
        str(artifact.get("digest", "")),
        v.run,
        v.tag,
        stage,
        artifact.get("kind") == "dir",
    )


def version_rows(reg: Registry) -> list[dict[str, Any]]:
    """One row per version of every model (the DataFrame of `gitmlm.registry()`)."""
    rows = []
    for model in reg.models.values():
        for v in model.versions.values():
            if v.registered is None:
                continue
            row: dict[str, Any] = {
                "model": model.name,
                "version": v.version,
                "stages": ",".join(model.stages_of(v.version)),
                "active": v.active and not model.deprecated,
                "commit": v.commit,
                "tag": v.tag,
                "registered": v.registered.time,
                "registered_by": v.registered.who,
                "run_id": v.run or "",
                "path": v.artifact.get("path", ""),
                "digest": v.artifact.get("digest", ""),
            }
            for name, value in v.metrics.items():
                row[f"metrics.{name}"] = value
            rows.append(row)
    return rows


def when(e: model_registry.Event) -> str:
    t = time.gmtime(e.time + e.offset * 60)
    sign = "+" if e.offset >= 0 else "-"
    zone = f"{sign}{abs(e.offset) // 60:02d}{abs(e.offset) % 60:02d}"
    return time.strftime("%Y-%m-%d %H:%M:%S ", t) + zone


def model_rows(
    reg: Registry, stage_names: list[str], *, include_deprecated: bool = False
) -> list[dict[str, Any]]:
    """One row per model: the latest version, and under `stages` the version in each stage
    (None when empty). Stages are nested, as in `gto show --json`, so a stage named `model` or
    `latest` cannot overwrite another key."""
    rows = []
    for model in reg.models.values():
        if model.deprecated and not include_deprecated:
            continue
        latest = model.latest()
        row: dict[str, Any] = {"model": model.name, "latest": latest.version if latest else None}
        used = [s for s in model.assigned if s not in stage_names]
        held = {stage: model.holder(stage) for stage in [*stage_names, *used]}
        row["stages"] = {stage: v.version if v else None for stage, v in held.items()}
        if include_deprecated:
            row["deprecated"] = model.deprecated
        rows.append(row)
    return rows


def flat_model_rows(
    rows: list[dict[str, Any]], stage_names: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """`model_rows` for a table, CSV or Markdown: one column per stage, and the columns.

    A stage whose name is another column's (`model`, `latest`) is shown as `#NAME`.
    """
    fixed = ["model", "latest", "deprecated"]
    stages = dict.fromkeys(stage_names)
    for row in rows:
        stages.update(dict.fromkeys(row["stages"]))
    label = {s: f"#{s}" if s in fixed else s for s in stages}
    flat = []
    for row in rows:
        out = {k: "" if v is None else v for k, v in row.items() if k != "stages"}
        out.update({label[s]: v or "" for s, v in row["stages"].items()})
        flat.append(out)
    with_deprecated = any("deprecated" in row for row in rows)
    columns = ["model", "latest", *label.values(), *(["deprecated"] if with_deprecated else [])]
    return flat, columns


def history_rows(model: Model) -> list[dict[str, Any]]:
    """Every event of a model in order: when, who, what, why, and the tag that says so."""
    rows = []
    for n, e in enumerate(model.events, 1):
        rows.append(
            {
                "seq": e.sequence if e.sequence is not None else n,
                "when": when(e),
                "who": e.who,
                "event": e.action,
                "version": e.version or "",
                "stage": e.stage or "",
                "why": e.why,
                "forced": bool(e.body.get("forced")),
                "override": str(e.body.get("override", "")),
                "requested_by": str(e.body.get("requested_by", "")),
                "signed": e.signed,
                "tag": e.tag,
            }
        )
    return rows


def show(repo: Repo, reg: Registry, spec_text: str) -> dict[str, Any]:
    """One version: commit, tag, artifact, run, stages, metrics and datasets."""
    model, v, _ = resolve(reg, spec_text)
    cfg = config.load(repo.workdir) if repo.root else {}
    declared = model_registry.declared_models(cfg).get(model.name, {})
    artifact = v.artifact
    run = find_run(_listing(repo), v.run) if v.run else None
    info: dict[str, Any] = {
        "model": model.name,
        "description": str(declared.get("description", "")),
        "type": str(declared.get("type", "")),
        "version": v.version,
        "active": v.active,
        "stages": model.stages_of(v.version),
        "commit": v.commit,
        "tag": v.tag or "",
        "registered": when(v.registered) if v.registered else "",
        "registered_by": v.registered.who if v.registered else "",
        "why": v.registered.why if v.registered else "",
        "path": artifact.get("path") or declared.get("path", ""),
        "digest": artifact.get("digest", ""),
        "run": v.run or "",
        "checkpoint": v.body.get("checkpoint", run.checkpoint if run else ""),
        "metrics": dict(run.metrics) if run else v.metrics,
        "datasets": (
            {k: d.get("digest", "") for k, d in run.datasets.items()} if run else v.datasets
        ),
    }
    latest = scans.latest_of_version(repo, v.commit, model.name, v.version)
    if latest:
        info["scans"] = {str(r.doc.get("data", r.key)): r.summary for r in latest}
        info["findings"] = [
            {"data": str(r.doc.get("data", "")), **f} for r in latest for f in r.findings
        ]
    return info
