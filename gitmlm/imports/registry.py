"""MLflow's registered models as gitmlm registry tags (docs/migrate.md "Registered models").

MLflow version N of model NAME becomes NAME@vN.0.0, registered on the commit of the run that
made it, with the version's files (MLflow's model folder) in the object store as a folder
artifact. MLflow's Staging and Production become the stages `staging` and `production`, each
alias becomes a stage of its name (an alias beats a stage where both name one stage), and
Archived deregisters the version. One commit holds one version of a model (the registry's rule,
as GTO reads stage tags by commit): of several versions whose runs share a commit, the newest
one that holds a stage or alias is imported, else the newest; the others are reported.

Everything is checked before anything is written: a name gitmlm or git refuses, a version
name taken by a version that did not come from MLflow, a signed stage without a key; and the
versions' files are read and stored (`store`) before any run or tag is recorded. Importing
again adds only what is new (versions, and stage moves); it never demotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import config, tags
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.imports.locations import Files, Locations
from gitmlm.imports.mlflow import ModelVersion
from gitmlm.imports.records import iso
from gitmlm.models import signing
from gitmlm.models import state as model_registry
from gitmlm.models.state import Model, Registry
from gitmlm.storage import objects, settings

TOOL = "mlflow"
_STAGES = {"Staging": "staging", "Production": "production"}
LOCK = "registry"


@dataclass
class Plan:
    """What importing the versions would do; `skipped` says what it leaves out, and why."""

    register: list[_Version] = field(default_factory=list)
    assign: list[tuple[str, str, str]] = field(default_factory=list)
    """(model, version, stage) in the order they are made."""
    deregister: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already: int = 0
    """Versions imported before."""
    undeclared: set[str] = field(default_factory=set)
    """Stages made that mlm.toml does not list."""


@dataclass
class _Version:
    model: str
    version: str
    source: ModelVersion
    run: str
    commit: str
    metrics: dict[str, float]
    files: Callable[[], Files] | None
    artifact: dict[str, Any] = field(default_factory=dict)
    """The register tag's `[artifact]`, once `store` has kept the files."""


def _imported(model: Model | None, mlflow_name: str) -> dict[int, str]:
    """MLflow version number -> gitmlm version, of what an earlier import registered."""
    out: dict[int, str] = {}
    for v in model.versions.values() if model else []:
        body = v.body.get("imported")
        if not isinstance(body, dict) or body.get("from") != TOOL:
            continue
        if body.get("model") == mlflow_name and isinstance(body.get("version"), int):
            out[int(body["version"])] = v.version
    return out


def plan(
    repo: Repo,
    versions: list[ModelVersion],
    runs: dict[str, tuple[str, str]],
    metrics: dict[str, dict[str, float]],
    *,
    loc: Locations | None,
    rename: dict[str, str],
) -> Plan:
    """`runs`: MLflow run id -> (gitmlm run id, commit) of every run of the store."""
    cfg = config.load(repo.workdir) if repo.root else {}
    reg = signing.load(repo, cfg)[0]
    out = Plan()
    unknown = sorted(set(rename) - {v.model for v in versions})
    if unknown:
        raise MlmError(f"--rename-model {unknown[0]!r}: the store has no registered model so named")
    by_model: dict[str, list[ModelVersion]] = {}
    for v in versions:
        by_model.setdefault(v.model, []).append(v)
    declared = set(model_registry.stages(cfg))
    for mlflow_name, found in sorted(by_model.items()):
        name = _check_name(repo, mlflow_name, rename.get(mlflow_name, mlflow_name))
        _plan_model(repo, cfg, reg, out, mlflow_name, name, found, runs, metrics, loc)
    out.undeclared = {stage for _, _, stage in out.assign} - declared
    return out


def _check_name(repo: Repo, mlflow_name: str, name: str) -> str:
    try:
        tags.check_model_name(name)
        model_registry.check_tag_name(repo, tags.format_tag(tags.REGISTER, name, version="v1.0.0"))
    except MlmError as exc:
        raise MlmError(
            f"MLflow model {mlflow_name!r}: {exc}; import it under another name with "
            f"--rename-model '{mlflow_name}=NEW' (or leave models out with --no-models)"
        ) from None
    return name


def _plan_model(
    repo: Repo,
    cfg: dict[str, Any],
    reg: Registry,
    out: Plan,
    mlflow_name: str,
    name: str,
    found: list[ModelVersion],
    runs: dict[str, tuple[str, str]],
    metrics: dict[str, dict[str, float]],
    loc: Locations | None,
) -> None:
    model = reg.models.get(name)
    if model is not None and model.deprecated:
        raise MlmError(f"model {name} is deprecated in gitmlm; it takes no imported versions")
    before = _imported(model, mlflow_name)
    ours: dict[int, str] = dict(before)  # MLflow version -> gitmlm version, once planned
    taken = {v.commit for v in model.versions.values() if v.active} if model else set()
    candidates: dict[str, list[ModelVersion]] = {}
    for v in found:
        label = f"MLflow model {mlflow_name!r} version {v.version}"
        if v.version in before:
            out.already += 1
            continue
        if v.status != "READY":
            out.skipped.append(f"{label}: status {v.status}, not READY")
            continue
        if v.run is None or v.run not in runs:
            out.skipped.append(f"{label}: made by no active run of this store")
            continue
        version = f"v{v.version}.0.0"
        if model is not None and version in model.versions:
            raise MlmError(
                f"{label}: {name} {version} exists already and was not imported from it; "
                f"import the model under another name with --rename-model '{mlflow_name}=NEW'"
            )
        commit = runs[v.run][1]
        if commit in taken:
            out.skipped.append(
                f"{label}: commit {commit[:10]} holds another version of {name} already "
                "(one version per commit)"
            )
            continue
        candidates.setdefault(commit, []).append(v)
    for commit, group in candidates.items():
        group.sort(key=lambda v: (v.stage in _STAGES or bool(v.aliases), v.version))
        chosen = group[-1]
        for v in group[:-1]:
            out.skipped.append(
                f"MLflow model {mlflow_name!r} version {v.version}: its run's commit "
                f"{commit[:10]} also made version {chosen.version}, which is imported "
                "(one version per commit)"
            )
        rid = runs[str(chosen.run)][0]
        files: Callable[[], Files] | None = None
        if loc is not None:
            if chosen.location is None:
                raise MlmError(
                    f"MLflow model {mlflow_name!r} version {chosen.version}: MLflow records no "
                    "place for its files; import without artifacts with --no-artifacts"
                )
            where = str(chosen.location)
            what = f"MLflow model {mlflow_name!r} version {chosen.version}"

            def files(where: str = where, what: str = what) -> Files:
                return loc.files(where, what)

        version = f"v{chosen.version}.0.0"
        ours[chosen.version] = version
        out.register.append(
            _Version(name, version, chosen, rid, commit, metrics.get(str(chosen.run), {}), files)
        )
    # Stages: MLflow's stage, then its aliases (an alias wins a stage both name), each in
    # version order so the newest holds it.
    wanted: dict[str, list[str]] = {}
    for v in sorted(found, key=lambda v: v.version):
        if v.version in ours and v.stage in _STAGES:
            wanted.setdefault(_STAGES[v.stage], []).append(ours[v.version])
    for v in sorted(found, key=lambda v: v.version):
        if v.version not in ours or v.stage == "Archived":
            continue
        for alias in v.aliases:
            try:
                tags.check_stage_name(alias)
            except MlmError as exc:
                raise MlmError(
                    f"MLflow model {mlflow_name!r} alias {alias!r}: {exc}; leave models out "
                    "with --no-models"
                ) from None
            wanted.setdefault(alias, []).append(ours[v.version])
    for stage, held in wanted.items():
        assigned = dict(model.assigned.get(stage, {})) if model else {}
        for version in held:
            if version not in assigned:
                out.assign.append((name, version, stage))
                assigned.pop(version, None)
                assigned[version] = None
        if assigned and next(reversed(assigned)) != held[-1]:
            out.assign.append((name, held[-1], stage))
        if model_registry.is_signed_stage(cfg, stage) and not repo.config_get("user.signingkey"):
            raise MlmError(
                f"stage {stage} is signed: set a key first (git config user.signingkey ...) "
                "to import MLflow's stages"
            )
    for v in found:
        if v.stage == "Archived" and v.version in ours:
            gone = model.versions.get(ours[v.version]) if model else None
            if gone is None or gone.active:
                out.deregister.append((name, ours[v.version]))


@dataclass
class Done:
    registered: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)
    deregistered: list[str] = field(default_factory=list)


def store(repo: Repo, p: Plan) -> None:
    """Keep every planned version's files in the object store (before any run or tag is
    written: a location that cannot be read stops the import with nothing recorded)."""
    cache = settings.cache(repo)
    for v in p.register:
        v.artifact = {"path": _path(v.source)}
        if v.files is None:
            continue
        stored = {n: cache.add_bytes(read()) for n, read in sorted(v.files().items())}
        if not stored:
            raise MlmError(
                f"MLflow model {v.source.model!r} version {v.source.version}: no files at "
                f"{v.source.location}; import without artifacts with --no-artifacts"
            )
        digest = cache.add_bytes(objects.listing(stored))
        v.artifact |= {"digest": digest, "kind": "dir", "files": len(stored)}


def write(repo: Repo, p: Plan) -> Done:
    """Make the planned tags (after `store`): versions, then stages, then deregistrations."""
    done = Done()
    who = model_registry.identity(repo)
    cfg = config.load(repo.workdir) if repo.root else {}
    with repo.lock(LOCK):
        for v in p.register:
            artifact = v.artifact or {"path": _path(v.source)}
            body: dict[str, Any] = {
                "version": v.version,
                "commit": v.commit,
                "run": v.run,
                "who": who,
                "why": v.source.description or f"imported from MLflow, version {v.source.version}",
                "artifact": artifact,
                "metrics": dict(v.metrics),
                "imported": {
                    "from": TOOL,
                    "model": v.source.model,
                    "version": v.source.version,
                    "stage": v.source.stage,
                    "created": iso(v.source.created_ms),
                },
            }
            reg = signing.load(repo, cfg)[0]
            done.registered.append(
                model_registry.write_event(
                    repo,
                    reg,
                    tags.REGISTER,
                    v.model,
                    v.commit,
                    f"Register {v.model} {v.version} (from MLflow)",
                    body,
                    version=v.version,
                )
            )
        for name, version, stage in p.assign:
            reg = signing.load(repo, cfg)[0]
            held = reg.model(name).versions[version]
            current = reg.model(name).holder(stage)
            body = {
                "version": version,
                "stage": stage,
                "commit": held.commit,
                "previous": current.version if current else None,
                "who": who,
                "why": "imported from MLflow",
                "run": held.run,
            }
            done.assigned.append(
                model_registry.write_event(
                    repo,
                    reg,
                    tags.ASSIGN,
                    name,
                    held.commit,
                    f"Promote {name} {version} to {stage} (from MLflow)",
                    body,
                    stage=stage,
                    sign=model_registry.is_signed_stage(cfg, stage),
                )
            )
        for name, version in p.deregister:
            reg = signing.load(repo, cfg)[0]
            held = reg.model(name).versions[version]
            body = {"version": version, "commit": held.commit, "who": who}
            body["why"] = "archived in MLflow"
            done.deregistered.append(
                model_registry.write_event(
                    repo,
                    reg,
                    tags.DEREGISTER,
                    name,
                    held.commit,
                    f"Deregister {name} {version} (archived in MLflow)",
                    body,
                    version=version,
                )
            )
    return done


def _path(v: ModelVersion) -> str:
    """A name for the version's folder: the last part of its location that is not MLflow's
    `artifacts` folder (`runs:/ID/model` -> model)."""
    parts = [p for p in (v.location or "").rstrip("/").split("/") if p and p != "artifacts"]
    return parts[-1] if parts else "model"
