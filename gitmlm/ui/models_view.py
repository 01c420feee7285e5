"""What the Models and Model pages show, read through gitmlm.models. Plain data."""

from __future__ import annotations

from typing import Any

from gitmlm.core import config, scans
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import ops, signing
from gitmlm.models import state as registry
from gitmlm.tracking import record as runs


def _cfg(repo: Repo) -> dict[str, Any]:
    return config.load(repo.workdir) if repo.root else {}


def models_page(repo: Repo) -> dict[str, Any]:
    """Every model: the board of versions x stages, and problems reading the tags."""
    reg = signing.load(repo)[0]
    stages = registry.stages(_cfg(repo))
    rows = ops.model_rows(reg, stages, include_deprecated=True)
    # Stages in use but no longer declared still show (model_rows nests them with the others).
    used = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    return {
        "rows": rows,
        "stages": [*stages, *(s for s in used if s not in stages)],
        "problems": reg.problems,
    }


def model_page(repo: Repo, name: str, listing: runs.Listing) -> dict[str, Any]:
    """One model: versions x stages, its history, each version's run and data, and how the
    latest version stands against each stage's gates (read only: nothing is promoted)."""
    cfg = _cfg(repo)
    reg = signing.load(repo, cfg)[0]
    model = reg.model(name)
    stages = registry.stages(cfg)
    stages += [s for s in model.assigned if s not in stages]
    versions = []
    for v in sorted(
        model.versions.values(), key=lambda v: v.registered.time if v.registered else 0
    ):
        run = ops.find_run(listing, v.run) if v.run else None
        versions.append(
            {
                "version": v.version,
                "active": v.active,
                "stages": model.stages_of(v.version),
                "commit": v.commit,
                "tag": v.tag or "",
                "registered": ops.when(v.registered) if v.registered else "",
                "who": v.registered.who if v.registered else "",
                "why": v.registered.why if v.registered else "",
                "run": run.id if run else (v.run or ""),
                "run_found": run is not None,
                "artifact": v.artifact,
                "metrics": dict(run.metrics) if run else v.metrics,
                "datasets": (
                    {k: d.get("digest", "") for k, d in run.datasets.items()} if run else v.datasets
                ),
                "scans": [
                    {
                        "data": str(r.doc.get("data", "")),
                        "summary": r.summary,
                        "findings": r.findings,
                    }
                    for r in scans.latest_of_version(repo, v.commit, model.name, v.version)
                ],
            }
        )
    gates: list[dict[str, Any]] = []
    for stage in stages:
        if not registry.stage_settings(cfg, stage):
            continue
        try:
            plan = ops.plan(repo, cfg, reg, name, stage, listing=listing)
        except MlmError as exc:
            gates.append({"stage": stage, "version": "", "checks": [], "note": str(exc)})
            continue
        gates.append(
            {
                "stage": stage,
                "version": plan.version.version,
                "checks": [{"gate": c.gate, "ok": c.ok, "detail": c.detail} for c in plan.checks],
                "note": "",
            }
        )
    return {
        "name": model.name,
        "deprecated": model.deprecated,
        "description": str(registry.declared_models(cfg).get(name, {}).get("description", "")),
        "stages": stages,
        "versions": list(reversed(versions)),
        "history": ops.history_rows(model),
        "gates": gates,
    }
