"""Reading DVC experiments of this repository as runs to import, from git alone (DVC itself
is not needed): each `refs/exps/<baseline>/<name>` is a commit whose tree holds the code,
params and metrics the experiment ran with.

Taken per experiment: its name, commit (the run is placed on it: the exact code and params),
time and author, the params of `params.yaml` and of the params files `dvc.yaml` names, the
metrics files `dvc.yaml` names and DVCLive's `dvclive/metrics.json`, and DVCLive's per-step
series (`dvclive/plots/metrics/**.tsv`).
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import PurePosixPath
from typing import Any

from gitmlm.core.git import Repo
from gitmlm.core.records import flatten
from gitmlm.errors import MlmError
from gitmlm.imports.records import Source

TOOL = "dvc"
EXPS = "refs/exps/"
DVCLIVE = "dvclive"


def _yaml(data: bytes, where: str) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise MlmError("git mlm import dvc needs PyYAML: pip install 'gitmlm[dvc]'") from exc
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise MlmError(f"{where}: not valid YAML: {exc}") from exc


def _load(repo: Repo, commit: str, path: str) -> Any:
    data = repo.file_at(commit, path)
    if data is None:
        return None
    where = f"{path} in {commit[:10]}"
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(data)
        if suffix == ".toml":
            return tomllib.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise MlmError(f"{where}: cannot read it: {exc}") from exc
    return _yaml(data, where)


def _declared(dvc_yaml: Any) -> tuple[list[str], list[str]]:
    """(params files, metrics files) that dvc.yaml names, top level and in its stages."""
    params: list[str] = []
    metrics: list[str] = []
    if not isinstance(dvc_yaml, dict):
        return params, metrics

    def add_metrics(items: Any) -> None:
        for item in items or []:
            for path in item if isinstance(item, dict) else [item]:
                if isinstance(path, str) and path not in metrics:
                    metrics.append(path)

    add_metrics(dvc_yaml.get("metrics"))
    for stage in (dvc_yaml.get("stages") or {}).values():
        if not isinstance(stage, dict):
            continue
        add_metrics(stage.get("metrics"))
        for item in stage.get("params") or []:
            if isinstance(item, dict):
                params += [p for p in item if isinstance(p, str) and p not in params]
    return params, metrics


def _numbers(doc: Any, out: dict[str, float]) -> None:
    flat: dict[str, Any] = {}
    flatten("", doc, flat)
    for key, value in flat.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)


def _series(repo: Repo, commit: str) -> dict[str, dict[str, list[float]]]:
    root = f"{DVCLIVE}/plots/metrics"
    listed = repo.run_git("ls-tree", "-r", "--name-only", commit, "--", root + "/")
    out: dict[str, dict[str, list[float]]] = {}
    for path in listed.splitlines():
        if not path.endswith(".tsv"):
            continue
        data = repo.file_at(commit, path)
        if data is None:
            continue
        name = path[len(root) + 1 : -len(".tsv")]
        rows = list(csv.DictReader(io.StringIO(data.decode()), delimiter="\t"))
        column = PurePosixPath(name).name
        steps, values = [], []
        for row in rows:
            try:
                steps.append(float(int(row["step"])))
                values.append(float(row[column]))
            except (KeyError, TypeError, ValueError):
                continue  # not DVCLive's step/value layout: leave that file out
        if steps:
            out[name] = {"step": steps, "value": values}
    return out


def read(repo: Repo) -> list[Source]:
    """Every DVC experiment of this repository (its refs/exps), oldest first."""
    found = {
        ref: commit
        for ref, commit in repo.refs(EXPS).items()
        if len(ref[len(EXPS) :].split("/")) == 3 and not ref.startswith(EXPS + "exec/")
    }
    out = []
    for ref, commit in sorted(found.items()):
        shard, rest, name = ref[len(EXPS) :].split("/")
        baseline = shard + rest
        info = repo.commit(commit)
        dvc_yaml = _load(repo, commit, "dvc.yaml")
        param_files, metric_files = _declared(dvc_yaml)
        params: dict[str, Any] = {}
        for path in ["params.yaml", *param_files]:
            doc = _load(repo, commit, path)
            if isinstance(doc, dict):
                flat: dict[str, Any] = {}
                flatten("", doc, flat)
                prefix = "" if path == "params.yaml" else f"{path}:"
                params.update({prefix + k: v for k, v in flat.items()})
        metrics: dict[str, float] = {}
        live = f"{DVCLIVE}/metrics.json"
        for path in [*metric_files, *([] if live in metric_files else [live])]:
            doc = _load(repo, commit, path)
            if isinstance(doc, dict):
                if path == live:
                    doc = {k: v for k, v in doc.items() if k != "step"}
                _numbers(doc, metrics)
        series = _series(repo, commit)
        for key, s in series.items():
            metrics.setdefault(key, s["value"][-1])
        out.append(
            Source(
                tool=TOOL,
                source_id=commit,
                name=name,
                status="finished",
                started_ms=info.time * 1000,
                ended_ms=info.time * 1000,
                user=info.author,
                commit=commit,
                params=_nested(params),
                metrics=metrics,
                series=series,
                tags={"dvc.experiment": name, "dvc.baseline": baseline},
                extra={"experiment": name, "baseline": baseline},
            )
        )
    if not found:
        raise MlmError(
            "no DVC experiments in this repository (refs/exps/*); run `dvc exp run`, or "
            "`dvc exp pull REMOTE` to fetch a teammate's"
        )
    return out


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys back into tables (`model.depth` -> model = {depth}), as `-p` gives them."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        ok = True
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                ok = False
                break
            node = child
        if ok:
            node[leaf] = value
        else:
            out[key] = value
    return out
