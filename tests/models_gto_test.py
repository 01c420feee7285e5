"""Differential tests against the real GTO (1.10, in its own venv): the same repository, read
by `gto show` and by `git mlm models`, gives the same latest versions and stages."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.models import ops
from tests.helpers import MLM_TOML, git, gto_state, mlm, models_json, ours, setup_project, train


def gto_tag(repo: Path, name: str, target: str, message: str, when: int) -> None:
    """A tag as GTO writes it: annotated, its plain sentence as the message."""
    env = {**os.environ, "GIT_COMMITTER_DATE": f"{when} +0000"}
    subprocess.run(["git", "tag", "-a", name, "-m", message, target], cwd=repo, env=env, check=True)


def empty_commit(repo: Path, message: str) -> str:
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_promotions_within_one_second_read_the_same_in_gto(repo: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    r = Repo.open(repo)
    for auc in (0.91, 0.92, 0.93):
        train(repo, auc)
        ops.register(r, "churn")
    # The hermetic clock stands still: every command runs "in the same second".
    for version in ("v0.0.1", "v0.0.3", "v0.0.2", "v0.0.1", "v0.0.3", "v0.0.2"):
        ops.promote(r, "churn", "production", version)
        ops.promote(r, "churn", "staging", version)
    ops.demote(r, "churn", "staging")
    ops.deprecate(r, "churn@v0.0.3")
    mine = ours(repo)
    assert mine == {
        "churn": {"latest": "v0.0.2", "stages": {"production": "v0.0.2", "staging": "v0.0.1"}}
    }
    assert gto_state(repo) == [mine]


def test_gto_grammar_names_stages_and_deregistered_commits(repo: Path) -> None:
    """Names with `_`, capitals and `/`, stages named `Prod_EU`, `model` and `latest`, and a
    stage tag on a deregistered version's commit: read as GTO reads them."""
    toml = MLM_TOML.split("[registry.gates")[0].replace(
        '["dev", "staging", "production"]', '["dev", "Prod_EU", "model", "latest"]'
    )
    toml += '\n[models."DVCLive/Model"]\npath = "models/dvclive.pkl"\n'
    setup_project(repo, toml)
    first = empty_commit(repo, "one")
    second = empty_commit(repo, "two")
    t = 1700000100
    written_by_gto = [
        ("my_model@v1.0.0", first, "Registering artifact my_model version v1.0.0"),
        ("my_model@v1.1.0", second, "Registering artifact my_model version v1.1.0"),
        (
            "my_model#Prod_EU#3",
            first,
            "Assigning stage Prod_EU to artifact my_model version v1.0.0",
        ),
        ("my_model#model#4", second, "Assigning stage model to artifact my_model version v1.1.0"),
        ("my_model#latest#5", first, "Assigning stage latest to artifact my_model version v1.0.0"),
        ("model_A@v0.0.1", first, "Registering artifact model_A version v0.0.1"),
        ("model_A@v0.0.2", second, "Registering artifact model_A version v0.0.2"),
        ("model_A#prod#3", first, "Assigning stage prod to artifact model_A version v0.0.1"),
        ("model_A@v0.0.1!", first, "Deregistering artifact model_A version v0.0.1"),
        # A stage tag on the deregistered version's commit: it acts on that version (which is
        # out of every stage), so it is ignored; no version is invented for the commit.
        ("model_A#Prod_EU#5", first, "Assigning stage Prod_EU to artifact model_A version"),
        ("model_A#prod#6", second, "Assigning stage prod to artifact model_A version v0.0.2"),
    ]
    for i, (name, target, message) in enumerate(written_by_gto):
        gto_tag(repo, name, target, message, t + i)
    # gitmlm writes names with capitals and `/` too, after GTO's events.
    (repo / "models").mkdir()
    (repo / "models" / "dvclive.pkl").write_text("weights")
    git(repo, "add", "models")
    git(repo, "commit", "-q", "-m", "dvclive model")
    later = {**os.environ, "GIT_COMMITTER_DATE": f"{t + 100} +0000"}
    mlm(repo, "register", "DVCLive/Model", env=later)
    mlm(repo, "promote", "DVCLive/Model", "Prod_EU", env=later)
    mlm(repo, "promote", "DVCLive/Model", "model", env=later)
    mlm(repo, "promote", "my_model", "Prod_EU", "v1.1.0", env=later)

    mine = ours(repo)
    assert mine == {
        "DVCLive/Model": {"latest": "v0.0.1", "stages": {"Prod_EU": "v0.0.1", "model": "v0.0.1"}},
        "model_A": {"latest": "v0.0.2", "stages": {"prod": "v0.0.2"}},
        "my_model": {
            "latest": "v1.1.0",
            "stages": {"Prod_EU": "v1.1.0", "model": "v1.1.0", "latest": "v1.0.0"},
        },
    }
    assert gto_state(repo) == [mine]
    # Nested stages: a stage called `model` or `latest` cannot overwrite those keys.
    row = next(r for r in models_json(repo) if r["model"] == "my_model")
    assert row["model"] == "my_model" and row["latest"] == "v1.1.0"
    table = mlm(repo, "models", "--format", "csv").stdout.splitlines()
    assert table[0] == "model,latest,dev,Prod_EU,#model,#latest,prod"
    assert "my_model,v1.1.0,,v1.1.0,v1.1.0,v1.0.0," in table
    # Every reader finds them, by GTO's spellings (`@greatest` too).
    assert gitmlm.resolve("model_A#prod", path=str(repo)).commit == second
    assert gitmlm.resolve("my_model@greatest", path=str(repo)).version == "v1.1.0"
    shown = mlm(repo, "model", "show", "DVCLive/Model#Prod_EU", "--format", "json").stdout
    assert '"version": "v0.0.1"' in shown
    assert set(gitmlm.registry(path=str(repo))["model"]) == {"DVCLive/Model", "model_A", "my_model"}
