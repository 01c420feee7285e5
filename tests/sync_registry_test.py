"""One registry on every clone: offline registrations and promotions on three clones of one
bare remote, synced in every order, end with the same versions and stages everywhere, a
fresh clone included, and nothing lost. Real repositories, real `git push`/`git fetch`."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import converge, ops, signing
from gitmlm.models import state as model_registry
from gitmlm.sync import sync
from tests.helpers import git, gto_state, mlm

TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"

[registry]
stages = ["dev", "staging", "production"]
"""


def reconcile(repo: Repo, remote: str, remote_tags: Mapping[str, str]) -> list[str]:
    return converge.converge(repo, remote, remote_tags).notes  # what `git mlm sync` passes


def make_remote(tmp_path: Path) -> str:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "mlm.toml").write_text(TOML)
    git(seed, "add", "mlm.toml")
    git(seed, "commit", "-q", "-m", "declare churn")
    git(seed, "push", "-q", str(bare), "main")
    return "file://" + str(bare)


def clone(url: str, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", url, str(dest))
    return dest


def commit_model(path: Path, content: str) -> str:
    (path / "models").mkdir(exist_ok=True)
    (path / "models" / "churn.pkl").write_text(content)
    git(path, "add", "models/churn.pkl")
    git(path, "commit", "-q", "-m", f"model {content}")
    return git(path, "rev-parse", "HEAD").strip()


def register(path: Path, content: str) -> str:
    commit = commit_model(path, content)
    ops.register(Repo.open(path), "churn")
    return commit


def promote(path: Path, stage: str, version: str | None = None) -> None:
    ops.promote(Repo.open(path), "churn", stage, version)


def sync_(path: Path) -> list[str]:
    return sync.sync(Repo.open(path), "origin", reconcile=reconcile).fetch.registry


def state(path: Path) -> dict[str, Any]:
    """What every reader answers: the model rows, and each version and stage resolved."""
    repo = Repo.open(path)
    reg = signing.load(repo)[0]
    rows = ops.model_rows(reg, ["dev", "staging", "production"], include_deprecated=True)
    resolved = {}
    model = reg.models.get("churn")
    specs = [f"churn@{v}" for v in model.versions] if model else []
    specs += [f"churn#{s}" for s in (model.assigned if model else {})]
    for spec in specs:
        try:
            r = ops.resolved(repo, spec)
            resolved[spec] = (r.version, r.commit)
        except MlmError as exc:
            resolved[spec] = str(exc)
    return {"rows": rows, "resolved": resolved}


def check_one_registry(
    clones: list[Path], url: str, fresh: Path, models: set[str], gto: bool = True
) -> None:
    for path in clones:  # a last round: whoever synced first now hears of the others
        sync_(path)
    clone(url, fresh)
    states = [state(p) for p in [*clones, fresh]]
    assert all(s == states[0] for s in states), json.dumps(states, indent=1)
    repo = Repo.open(fresh)
    reg = model_registry.load(repo)
    churn = reg.model("churn")
    # Nothing lost: every committed model is a version of its own; no name on two commits.
    assert {v.commit for v in churn.versions.values()} == models
    assert len({v.version for v in churn.versions.values()}) == len(models)
    # A stage resolves to the commit its winning tag points at.
    for stage in churn.assigned:
        holder = churn.holder(stage)
        if holder is None:
            continue
        last = [
            e
            for e in churn.events
            if e.stage == stage and e.action == "assign" and e.version == holder.version
        ][-1]
        r = ops.resolved(repo, f"churn#{stage}")
        assert r.commit == holder.commit
        assert git(fresh, "rev-parse", f"{last.tag}^{{commit}}").strip() == r.commit
    # Sequences are unique per model, and so are tagger dates: GTO reads the same state.
    seqs = [e.sequence for e in churn.events]
    assert len(set(seqs)) == len(seqs)
    assert sorted(e.time for e in churn.events) == [e.time for e in churn.events]
    if not gto:
        return  # importing GTO costs seconds: some orders are enough
    row = states[0]["rows"][0]
    stages = {s: v for s, v in row["stages"].items() if v}
    assert gto_state(fresh) == [{"churn": {"latest": row["latest"], "stages": stages}}]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_offline_registrations_and_promotions_converge_in_any_sync_order(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    url = make_remote(tmp_path)
    clones = [clone(url, tmp_path / name) for name in "abc"]
    models = {
        register(clones[0], "a"),
        register(clones[1], "b"),
        register(clones[2], "c"),
    }
    promote(clones[0], "staging")
    promote(clones[1], "production")
    promote(clones[2], "staging")
    promote(clones[2], "dev")
    notes = [sync_(clones[i]) for i in order]
    assert notes[0] == []  # the first to publish keeps its names
    assert any("is now churn@v0.0.2" in n for n in notes[1]), notes
    fresh = tmp_path / "fresh"
    check_one_registry([clones[i] for i in order], url, fresh, models, gto=order[0] == 0)
    # The first clone to sync named v0.0.1; everyone agrees on it.
    first = clones[order[0]]
    first_commit = git(first, "rev-parse", "HEAD").strip()
    assert ops.resolved(Repo.open(fresh), "churn@v0.0.1").commit == first_commit


@pytest.mark.parametrize("seed", [1, 2])
def test_random_interleavings_of_register_promote_sync_converge(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    url = make_remote(tmp_path)
    clones = [clone(url, tmp_path / name) for name in "abc"]
    models: set[str] = set()
    for step in range(14):
        path = rnd.choice(clones)
        reg = model_registry.load(Repo.open(path))
        churn = reg.models.get("churn")
        action = rnd.choice(["register", "promote", "promote", "sync"])
        if action == "register" or churn is None:
            models.add(register(path, f"{path.name}-{step}"))
        elif action == "promote":
            live = [v.version for v in churn.versions.values() if v.active]
            stage = rnd.choice(["dev", "staging", "production"])
            version = rnd.choice(live)
            held = churn.holder(stage)
            if held is None or held.version != version:
                promote(path, stage, version)
        else:
            sync_(path)
    for path in clones:
        sync_(path)
    check_one_registry(clones, url, tmp_path / "fresh", models)


def test_the_command_line_reports_the_replay_and_push_alone_names_sync(tmp_path: Path) -> None:
    url = make_remote(tmp_path)
    a, b = clone(url, tmp_path / "a"), clone(url, tmp_path / "b")
    commit_model(a, "a")
    mlm(a, "register", "churn")
    commit_model(b, "b")
    mlm(b, "register", "churn")
    mlm(b, "promote", "churn", "staging")
    mlm(a, "sync")
    # Pushing alone would publish a registry the remote contradicts: refused, naming sync.
    pushed = mlm(b, "push", check=False)
    assert pushed.returncode == 1 and "git mlm sync origin" in pushed.stderr, pushed.stderr
    out = mlm(b, "sync").stdout
    assert "registry: churn@v0.0.1 was taken by another commit on the remote" in out, out
    assert "is now churn@v0.0.2" in out
    assert not git(b, "for-each-ref", "refs/mlm-replay/", "refs/mlm-incoming/")
    b_rows = json.loads(mlm(b, "models", "--format", "json").stdout)
    mlm(a, "sync")
    assert json.loads(mlm(a, "models", "--format", "json").stdout) == b_rows
    assert b_rows[0]["latest"] == "v0.0.2" and b_rows[0]["stages"]["staging"] == "v0.0.2"
