"""Scan results as notes: one table per (model version, evaluation data) on the version's
commit under `refs/notes/mlm-scans`, read back by `gitmlm.core.scans`."""

from __future__ import annotations

from typing import Any

from gitmlm.core import notes as store
from gitmlm.core import refs, scans
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.scan.engine import Result


def subject_key(result: Result) -> str:
    return scans.key(result.subject.label, result.data_digest)


def table(result: Result) -> dict[str, Any]:
    s = result.subject
    doc: dict[str, Any] = {
        "status": "finished",  # sync's merge keeps the later `updated` of two scans
        "updated": result.scanned,
        "model": s.model,
        "version": s.version,
        "run": s.run.id if s.run else None,
        "artifact": s.path or None,
        "artifact_digest": s.digest or None,
        "artifact_source": s.origin,
        "data": result.data.name,
        "data_digest": result.data_digest,
        "target": result.target,
        "task": result.task,
        "rows": result.rows,
        "answers": result.kind,
        "seed": result.seed,
        "detectors": result.detectors,
        "counts": {sev: result.count(sev) for sev in scans.SEVERITIES},
        "findings": [f.record() for f in result.findings],
    }
    if result.notes:
        doc["notes"] = result.notes
    return {k: v for k, v in doc.items() if v is not None}


def record(repo: Repo, result: Result) -> str:
    """Keep `result` on the subject's commit; returns the scan's key."""
    commit = result.subject.commit
    if commit is None:
        raise MlmError(
            f"{result.subject.label} is a file, not a registered model or a run: there is no "
            "commit to keep the scan on (scan the model by its registry name to record it)"
        )
    k = subject_key(result)
    store.put_runs(
        repo,
        refs.SCANS,
        commit,
        {k: table(result)},
        f"gitmlm: scan {result.subject.label} on {result.data.name}",
    )
    return k


def history(repo: Repo, spec: str) -> list[scans.Recorded]:
    """Recorded scans of a model (every version), of one version, or of a run; oldest first."""
    from gitmlm.core import tags

    try:
        parsed = tags.parse_spec(spec)
    except MlmError:
        parsed = None
    out = []
    for r in scans.read(repo):
        doc = r.doc
        if parsed is not None and doc.get("model") == parsed.model:
            if parsed.version is not None and doc.get("version") != parsed.version:
                continue
            if parsed.stage is not None:
                from gitmlm.models import ops

                if doc.get("version") != ops.resolved(repo, spec).version:
                    continue
            out.append(r)
        elif str(doc.get("run", "")).startswith(spec.lower()) and not doc.get("model"):
            out.append(r)
    if not out:
        _check_known(repo, spec)
    return out


def _check_known(repo: Repo, spec: str) -> None:
    """An unknown name is an error (with the names there are), not an empty history."""
    import difflib

    from gitmlm.models import state
    from gitmlm.scan import source

    if source.is_model(repo, spec):
        return
    try:
        source.resolve_run(repo, spec)
        return
    except MlmError:
        pass
    known = sorted(state.load(repo).models)
    close = difflib.get_close_matches(spec.split("@")[0].split("#")[0], known, 3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else f" (models: {', '.join(known) or 'none'})"
    )
    raise MlmError(f"{spec!r} is neither a registered model nor a run{hint}")
