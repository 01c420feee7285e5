"""Reading DVC experiments of this repository as runs to import, from git alone (DVC itself
is not needed): each `refs/exps/<baseline>/<name>` is a commit whose tree holds the code,
params and metrics the experiment ran with. That is every experiment `dvc exp show` lists as
done: run in the workspace, with `--temp`, or from the queue once it succeeded (DVC commits
each to refs/exps when it finishes; queued, running and failed ones have no results there).

Taken per experiment: its name, commit (the run is placed on it: the exact code and params),
time and author, the params of `params.yaml` and of the params files `dvc.yaml` names, the
metrics files `dvc.yaml` names and DVCLive's `dvclive/metrics.json`, and DVCLive's per-step
series (`dvclive/plots/metrics/**.tsv`).

The workspace (`dvc exp show`'s first row) is read the same way from the work tree when its
metrics are its own: different from HEAD's and from every experiment's (after `dvc exp run`
the work tree holds that experiment's results, which are imported as the experiment). It
becomes a run on HEAD whose note says it came from the uncommitted work tree; its id is made
from its content, so importing an unchanged work tree again adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tomllib
from pathlib import Path, PurePosixPath
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


class _Tree:
    """Files of one commit, or of the work tree (commit None)."""

    def __init__(self, repo: Repo, commit: str | None) -> None:
        self.repo = repo
        self.commit = commit
        self.read: dict[str, bytes] = {}
        """Every file read, by path: what the work tree's run is identified by."""

    def file(self, path: str) -> bytes | None:
        if self.commit is not None:
            data = self.repo.file_at(self.commit, path)
        else:
            full = self.repo.workdir / path
            data = full.read_bytes() if full.is_file() else None
        if data is not None:
            self.read[path] = data
        return data

    def listed(self, folder: str) -> list[str]:
        if self.commit is not None:
            out = self.repo.run_git("ls-tree", "-r", "--name-only", self.commit, "--", folder + "/")
            return out.splitlines()
        root = self.repo.workdir
        return sorted(
            f.relative_to(root).as_posix() for f in (root / folder).rglob("*") if f.is_file()
        )

    @property
    def where(self) -> str:
        return self.commit[:10] if self.commit else "the work tree"


def _load(tree: _Tree, path: str) -> Any:
    data = tree.file(path)
    if data is None:
        return None
    where = f"{path} in {tree.where}"
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(data)
        if suffix == ".toml":
            return tomllib.loads(data.decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
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


def _series(tree: _Tree) -> dict[str, dict[str, list[float]]]:
    root = f"{DVCLIVE}/plots/metrics"
    out: dict[str, dict[str, list[float]]] = {}
    for path in tree.listed(root):
        if not path.endswith(".tsv"):
            continue
        data = tree.file(path)
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


def _results(tree: _Tree) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """(params, metrics, series) that DVC and DVCLive wrote in this tree."""
    param_files, metric_files = _declared(_load(tree, "dvc.yaml"))
    params: dict[str, Any] = {}
    for path in ["params.yaml", *param_files]:
        doc = _load(tree, path)
        if isinstance(doc, dict):
            flat: dict[str, Any] = {}
            flatten("", doc, flat)
            prefix = "" if path == "params.yaml" else f"{path}:"
            params.update({prefix + k: v for k, v in flat.items()})
    metrics: dict[str, float] = {}
    live = f"{DVCLIVE}/metrics.json"
    for path in [*metric_files, *([] if live in metric_files else [live])]:
        doc = _load(tree, path)
        if isinstance(doc, dict):
            if path == live:
                doc = {k: v for k, v in doc.items() if k != "step"}
            _numbers(doc, metrics)
    series = _series(tree)
    for key, s in series.items():
        metrics.setdefault(key, s["value"][-1])
    return _nested(params), metrics, series


def _metric_files(tree: _Tree) -> dict[str, bytes | None]:
    """The metrics files as this tree holds them: what tells two results apart."""
    _, declared = _declared(_load(tree, "dvc.yaml"))
    paths = dict.fromkeys([*declared, f"{DVCLIVE}/metrics.json"])
    return {p: tree.file(p) for p in paths}


def read(repo: Repo, *, workspace: bool = True) -> list[Source]:
    """Every DVC experiment of this repository (its refs/exps), oldest first, and the work
    tree's own results when it has some (see the module's note)."""
    found = {
        ref: commit
        for ref, commit in repo.refs(EXPS).items()
        if len(ref[len(EXPS) :].split("/")) == 3 and not ref.startswith(EXPS + "exec/")
    }
    if not found and not (repo.workdir / ".dvc").is_dir():
        raise MlmError(
            f"{repo.workdir} is not a DVC repository (no .dvc folder, no refs/exps); "
            "run this in the repository where `dvc exp run` ran, or `dvc exp pull REMOTE` first"
        )
    out = []
    for ref, commit in sorted(found.items()):
        shard, rest, name = ref[len(EXPS) :].split("/")
        baseline = shard + rest
        info = repo.commit(commit)
        params, metrics, series = _results(_Tree(repo, commit))
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
                params=params,
                metrics=metrics,
                series=series,
                tags={"dvc.experiment": name, "dvc.baseline": baseline},
                extra={"experiment": name, "baseline": baseline},
            )
        )
    here = _workspace(repo, list(found.values())) if workspace else None
    if here is not None:
        out.append(here)
    if not out:
        raise MlmError(
            "no DVC experiments in this repository (refs/exps/*) and no results of its own in "
            "the work tree; run `dvc exp run`, or `dvc exp pull REMOTE` to fetch a teammate's"
        )
    return out


def _workspace(repo: Repo, experiments: list[str]) -> Source | None:
    """The work tree's results as a run on HEAD, when they are its own (not HEAD's committed
    ones, nor those of an experiment `dvc exp run` left there)."""
    tree = _Tree(repo, None)
    mine = _metric_files(tree)
    if all(v is None for v in mine.values()):
        return None
    head = repo.head_commit()
    for commit in [head, *experiments]:
        if _metric_files(_Tree(repo, commit)) == mine:
            return None
    params, metrics, series = _results(tree)
    if not metrics:
        return None
    digest = hashlib.sha256()
    for path, data in sorted(tree.read.items()):
        digest.update(f"{len(path)}:{path}:{len(data)}:".encode() + data)
    live = repo.workdir / DVCLIVE / "metrics.json"
    stamp = _mtime_ms(live) if live.is_file() else 0
    return Source(
        tool=TOOL,
        source_id=f"workspace:{digest.hexdigest()}",
        name="workspace",
        status="finished",
        started_ms=stamp,
        ended_ms=stamp,
        user=repo.config_get("user.name") or "",
        commit=head,
        params=params,
        metrics=metrics,
        series=series,
        tags={"dvc.experiment": "workspace", "dvc.baseline": head},
        note=(
            "imported from the DVC workspace: results in the work tree, not committed, "
            f"when HEAD was {head[:10]}"
        ),
        extra={"experiment": "workspace", "baseline": head, "workspace": True},
    )


def _mtime_ms(path: Path) -> int:
    return int(path.stat().st_mtime * 1000)


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
