"""The registry end to end: real repositories, real tags, the `git mlm` command line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import gates
from gitmlm.models import ops as lifecycle
from gitmlm.models import state as model_registry
from tests.helpers import MLM_TOML, body, git, mlm, models_json, setup_project, tag_list, train


def test_register_finds_the_run_by_artifact_digest(repo: Path) -> None:
    setup_project(repo)
    run_id = train(repo, 0.91)
    out = mlm(repo, "register", "churn", "-m", "first model").stdout
    assert "churn@v0.0.1" in out and "found by artifact digest" in out
    b = body(repo, "churn@v0.0.1")
    digest = "sha256:" + hashlib.sha256((repo / "models" / "churn.pkl").read_bytes()).hexdigest()
    assert b["event"] == "register" and b["sequence"] == 1 and b["run"] == run_id
    assert b["artifact"] == {"path": "models/churn.pkl", "digest": digest}
    assert b["metrics"] == {"auc": 0.91} and b["why"] == "first model"
    assert b["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert b["who"] == "Test User <test@example.com>"
    # The tag is annotated, on the model's commit, with a readable subject line.
    assert git(repo, "cat-file", "-t", "churn@v0.0.1").strip() == "tag"
    assert git(repo, "tag", "-n1", "churn@v0.0.1").split(None, 1)[1].strip() == (
        "Register churn v0.0.1"
    )
    train(repo, 0.95)
    mlm(repo, "register", "churn", "--bump", "minor")
    train(repo, 0.96)
    mlm(repo, "register", "churn", "--version", "v1.0.0-rc.1")
    assert models_json(repo) == [
        {
            "model": "churn",
            "latest": "v1.0.0-rc.1",
            "stages": {"dev": None, "staging": None, "production": None},
        }
    ]


def test_register_refuses_bad_input_and_changes_nothing(repo: Path) -> None:
    setup_project(
        repo, MLM_TOML + '\n[models."a//b"]\npath = "m.pkl"\n\n[models.Churn]\npath = "m.pkl"\n'
    )
    train(repo, 0.91)
    mlm(repo, "register", "churn", "--version", "v1.0.0")
    before = tag_list(repo)
    cases = {
        ("register", "fraud"): "not declared",
        ("register", "churn", "--version", "1.0"): "not semver",
        ("register", "churn", "--version", "v1.0.0"): "already registered at",
        ("register", "a//b"): "git refuses",
        ("register", "x//y"): "git refuses",  # not declared either: no [models.x//y] advice
        ("register", "churn_"): "letters, digits",
        ("register", "Team/Churn"): '[models."Team/Churn"]',  # a key TOML can parse
        ("register", "churn", "--version", "v2.0.0", "--bump", "major"): "not both",
        ("register", "churn", "HEAD~1"): "not in commit",
        ("register", "churn", "nosuchref"): "unknown revision",
        ("promote", "churn", "qa"): "unknown stage 'qa'",
        ("promote", "churn", "dev", "v9.9.9"): "has no version v9.9.9",
        ("promote", "churn", "dev", "9.9"): "not semver",
        ("promote", "fraud", "dev"): "no registered versions",
        ("demote", "churn", "dev"): "nothing to demote",
    }
    for args, message in cases.items():
        proc = mlm(repo, *args, check=False)
        assert proc.returncode == 1, args
        assert message in proc.stderr, (args, proc.stderr)
        assert proc.stderr.startswith("git mlm: "), proc.stderr
    assert tag_list(repo) == before
    # git itself refuses the name; the check above is git's, not a copy of its rules.
    refused = subprocess.run(["git", "check-ref-format", "refs/tags/a//b@v0.0.1"], cwd=repo)
    assert refused.returncode != 0


def test_existing_and_deregistered_versions_are_never_reused(repo: Path) -> None:
    setup_project(repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn", "--version", "v1.0.0")
    train(repo, 0.92)
    proc = mlm(repo, "register", "churn", "--version", "v1.0.0", check=False)
    assert proc.returncode == 1 and "already exists: registered" in proc.stderr
    mlm(repo, "register", "churn")  # bumps to v1.0.1
    mlm(repo, "deprecate", "churn@v1.0.1")
    assert "churn@v1.0.1!" in tag_list(repo)
    train(repo, 0.93)
    mlm(repo, "register", "churn")  # v1.0.1 is gone but its name is not reused
    assert models_json(repo)[0]["latest"] == "v1.0.2"


def test_gates_refuse_with_a_table_and_force_records_the_override(repo: Path) -> None:
    setup_project(repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    out = mlm(repo, "promote", "churn", "production").stdout
    assert "v0.0.1 is now in production: tag churn#production#2" in out
    train(repo, 0.85)
    mlm(repo, "register", "churn")
    refused = mlm(repo, "promote", "churn", "production", check=False)
    assert refused.returncode == 1
    assert "2 gate(s) failed" in refused.stderr
    assert "metrics.auc >= 0.9" in refused.stderr and "FAIL" in refused.stderr
    assert "0.85 vs 0.91 (v0.0.1)" in refused.stderr
    no_reason = mlm(repo, "promote", "churn", "production", "--force", check=False)
    assert no_reason.returncode == 1 and "--reason" in no_reason.stderr
    assert not any(
        t.startswith("churn#production#") and t != "churn#production#2" for t in tag_list(repo)
    )
    mlm(
        repo,
        "promote",
        "churn",
        "production",
        "--force",
        "--reason",
        "hotfix for outage",
        "-m",
        "roll forward",
    )
    b = body(repo, "churn#production#4")
    assert b["forced"] is True and b["override"] == "hotfix for outage"
    assert b["previous"] == "v0.0.1" and b["why"] == "roll forward"
    failed = [g for g in b["gates"] if not g["ok"]]
    assert len(failed) == 2
    history = json.loads(mlm(repo, "model", "history", "churn", "--format", "json").stdout)
    assert history[0]["event"] == "assign" and history[0]["forced"] is True
    assert history[0]["override"] == "hotfix for outage"
    assert [h["seq"] for h in history] == [4, 3, 2, 1]
    table = mlm(repo, "model", "history", "churn").stdout
    assert "[forced: hotfix for outage]" in table


def test_promotions_in_the_same_second_resolve_by_sequence(repo: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    train(repo, 0.91)
    lifecycle.register(Repo.open(repo), "churn")
    train(repo, 0.92)
    lifecycle.register(Repo.open(repo), "churn")
    r = Repo.open(repo)
    for i in range(8):  # sequences 3..10: tag #10 sorts before #9 by name
        lifecycle.promote(r, "churn", "production", "v0.0.2" if i % 2 else "v0.0.1")
    # The hermetic clock stands still; each tag of the model is still dated a second after the
    # one before, so GTO (which orders by tagger time) reads the same order.
    times = [t.time for t in sorted(r.tags(), key=lambda t: t.time)]
    assert times == list(range(1700000000, 1700000010))
    assert models_json(repo)[0]["stages"]["production"] == "v0.0.2"
    assert sorted(tag_list(repo))[0] == "churn#production#10"
    reg = model_registry.load(r)
    assert [e.sequence for e in reg.model("churn").events] == list(range(1, 11))


def test_demote_falls_back_and_deregistering_leaves_every_stage(repo: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    train(repo, 0.92)
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "churn", "staging", "v0.0.1")
    mlm(repo, "promote", "churn", "staging", "v0.0.2")
    mlm(repo, "promote", "churn", "production", "v0.0.2")
    out = mlm(repo, "demote", "churn", "staging", "-m", "regression").stdout
    assert "churn#staging!#6" in out and "staging now holds v0.0.1" in out
    assert models_json(repo)[0] == {
        "model": "churn",
        "latest": "v0.0.2",
        "stages": {"dev": None, "staging": "v0.0.1", "production": "v0.0.2"},
    }
    mlm(repo, "deprecate", "churn@v0.0.2", "-m", "bad data")
    row = models_json(repo)[0]
    assert row["latest"] == "v0.0.1" and row["stages"]["production"] is None
    proc = mlm(repo, "promote", "churn", "dev", "v0.0.2", check=False)
    assert proc.returncode == 1 and "deregistered" in proc.stderr
    proc = mlm(repo, "deprecate", "churn@v0.0.2", check=False)
    assert proc.returncode == 1 and "deregistered already" in proc.stderr
    mlm(repo, "deprecate", "churn", "-m", "replaced by fraud model")
    assert "churn@deprecated" in tag_list(repo)
    assert mlm(repo, "models").stdout.strip() == "no models yet"
    assert models_json(repo, "--all")[0]["deprecated"] is True
    proc = mlm(repo, "promote", "churn", "dev", "v0.0.1", check=False)
    assert proc.returncode == 1 and "deprecated" in proc.stderr
    proc = mlm(repo, "register", "churn", "--version", "v3.0.0", check=False)
    assert proc.returncode == 1 and "deprecated" in proc.stderr


def test_tags_written_by_gto_are_read(repo: Path) -> None:
    """Tags exactly as GTO 1.x writes them: names, counters, and its plain messages."""
    setup_project(repo, MLM_TOML.replace('"production"]', '"prod"]').split("[registry.gates")[0])
    first = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    second = git(repo, "rev-parse", "HEAD").strip()
    gto = [
        ("churn@v0.0.1", first, "Registering artifact churn version v0.0.1"),
        ("churn@v1.0.0-rc.1", second, "Registering artifact churn version v1.0.0-rc.1"),
        ("churn#prod#1", first, "Assigning stage prod to artifact churn version v0.0.1"),
        ("churn#prod#2", second, "Assigning stage prod to artifact churn version v1.0.0-rc.1"),
        ("churn#staging#3", first, "Assigning stage staging to artifact churn version v0.0.1"),
        (
            "churn#prod!#4",
            second,
            "Unassigning stage 'prod' to artifact 'churn' version 'v1.0.0-rc.1'",
        ),
        ("fraud@v0.0.1", first, "Registering artifact fraud version v0.0.1"),
        ("fraud@v0.0.1!", first, "Deregistering artifact fraud version v0.0.1"),
        ("old@v0.0.1", first, "Registering artifact old version v0.0.1"),
        ("old@deprecated", first, "Deprecating artifact 'old'"),
    ]
    for i, (name, commit, message) in enumerate(gto):
        env = {**os.environ, "GIT_COMMITTER_DATE": f"{1700000100 + i} +0000"}
        subprocess.run(
            ["git", "tag", "-a", name, "-m", message, commit], cwd=repo, env=env, check=True
        )
    rows = models_json(repo, "--all")
    assert rows == [
        {
            "model": "churn",
            "latest": "v1.0.0-rc.1",
            "stages": {"dev": None, "staging": "v0.0.1", "prod": "v0.0.1"},
            "deprecated": False,
        },
        {
            "model": "fraud",
            "latest": None,
            "stages": {"dev": None, "staging": None, "prod": None},
            "deprecated": False,
        },
        {
            "model": "old",
            "latest": "v0.0.1",
            "stages": {"dev": None, "staging": None, "prod": None},
            "deprecated": True,
        },
    ]
    history = json.loads(
        mlm(repo, "model", "history", "churn", "--reverse", "--format", "json").stdout
    )
    assert [h["tag"] for h in history] == [t[0] for t in gto[:6]]
    assert history[5]["event"] == "unassign" and history[5]["version"] == "v1.0.0-rc.1"
    assert history[0]["why"] == "Registering artifact churn version v0.0.1"
    # gitmlm continues GTO's counter, and its later event wins.
    later = {**os.environ, "GIT_COMMITTER_DATE": "1700000900 +0000"}
    mlm(repo, "promote", "churn", "prod", "v1.0.0-rc.1", env=later)
    assert "churn#prod#5" in tag_list(repo)
    assert models_json(repo)[0]["stages"]["prod"] == "v1.0.0-rc.1"


def test_lightweight_tags_in_the_grammar_are_reported_and_ignored(repo: Path) -> None:
    setup_project(repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    git(repo, "tag", "churn@v9.0.0")
    git(repo, "tag", "churn#production#99")
    git(repo, "tag", "release-1")  # not in the grammar: not our business
    proc = mlm(repo, "models", "--format", "json")
    assert json.loads(proc.stdout)[0]["latest"] == "v0.0.1"
    assert "ignored lightweight tag churn@v9.0.0" in proc.stderr
    assert "ignored lightweight tag churn#production#99" in proc.stderr
    assert "release-1" not in proc.stderr


def test_show_resolve_and_the_dataframe(repo: Path) -> None:
    setup_project(repo)
    run_id = train(repo, 0.93)
    mlm(repo, "register", "churn", "-m", "baseline")
    mlm(repo, "promote", "churn", "production")
    info = json.loads(mlm(repo, "model", "show", "churn#production", "--format", "json").stdout)
    assert info["version"] == "v0.0.1" and info["run"] == run_id
    assert info["stages"] == ["production"] and info["metrics"] == {"auc": 0.93}
    assert info["digest"].startswith("sha256:") and info["path"] == "models/churn.pkl"
    assert info["why"] == "baseline"
    table = mlm(repo, "model", "show", "churn@v0.0.1").stdout
    assert "metrics.auc" in table and run_id in table
    md = mlm(repo, "models", "--format", "md").stdout
    assert md.splitlines()[0] == "| model | latest | dev | staging | production |"
    csv = mlm(repo, "model", "history", "churn", "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("seq,when,who,event,version,stage,why,tag")
    resolved = gitmlm.resolve("churn#production")
    assert (resolved.version, resolved.path, resolved.run) == ("v0.0.1", "models/churn.pkl", run_id)
    assert resolved.commit == git(repo, "rev-parse", "HEAD").strip()
    assert gitmlm.resolve("churn").version == "v0.0.1"
    with pytest.raises(MlmError, match="no version of churn is in staging"):
        gitmlm.resolve("churn#staging")
    frame = gitmlm.registry()
    assert list(frame["version"]) == ["v0.0.1"] and frame.loc[0, "stages"] == "production"
    assert frame.loc[0, "metrics.auc"] == 0.93 and str(frame["registered"].dtype).startswith(
        "datetime64"
    )


def test_register_with_an_explicit_run_and_an_lfs_pointer(repo: Path) -> None:
    setup_project(repo)
    (repo / "models").mkdir()
    content = b"real weights"
    with gitmlm.start_run() as run:
        (repo / "models" / "churn.pkl").write_bytes(content)
        run.log_artifact(repo / "models" / "churn.pkl")
    oid = hashlib.sha256(content).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12\n"
    (repo / "models" / "churn.pkl").write_text(pointer)
    git(repo, "add", "models/churn.pkl")
    git(repo, "commit", "-q", "-m", "lfs pointer")
    mlm(repo, "register", "churn", "--run", run.id[:10])
    assert body(repo, "churn@v0.0.1")["artifact"] == {
        "path": "models/churn.pkl",
        "digest": f"sha256:{oid}",
    }


def test_gates_unit(tmp_path: Path) -> None:
    cfg = {"metrics": {"auc": "max", "loss": "min"}}
    cand = gates.Evidence(
        "v2",
        {
            "metrics.auc": 0.9,
            "metrics.loss": 0.2,
            "checkpoint": "snapshot",
            "datasets.train": "sha256:" + "a" * 64,
        },
        "run x",
    )
    cur = gates.Evidence("v1", {"metrics.auc": 0.95, "metrics.loss": 0.3}, "run y")
    (tmp_path / "mlm.lock").write_text(
        'schema = 1\n[datasets.train]\npath = "d"\nalgorithm = "sha256"\n'
        f'digest = "sha256:{"a" * 64}"\nsize = 1\nfiles = 1\nmanifest = "{"0" * 40}"\n'
        '[datasets.test]\npath = "t"\nalgorithm = "sha256"\n'
        f'digest = "sha256:{"b" * 64}"\nsize = 1\nfiles = 1\nmanifest = "{"0" * 40}"\n'
    )
    settings = {
        "require": "metrics.auc >= 0.8",
        "better_than_current": ["auc", "loss"],
        "datasets_match_lock": True,
        "clean_checkpoint": True,
    }
    checks = gates.evaluate(cfg, tmp_path, "production", settings, cand, cur)
    assert [(c.gate, c.ok) for c in checks] == [
        ("metrics.auc >= 0.8", True),
        ("better auc than current (max)", False),
        ("better loss than current (min)", True),
        ("datasets match mlm.lock", False),
        ("clean checkpoint", False),
    ]
    assert checks[3].detail == "test not recorded"
    assert gates.evaluate(cfg, tmp_path, "p", {"better_than_current": "auc"}, cand, None)[0].ok
    with pytest.raises(MlmError, match="unknown key"):
        gates.evaluate(cfg, tmp_path, "p", {"requires": "x"}, cand, None)
    with pytest.raises(MlmError, match='acc = "max"'):
        gates.evaluate(cfg, tmp_path, "p", {"better_than_current": "acc"}, cand, cur)
    changes = gates.metric_changes(cfg, cand, cur)
    assert changes[0]["metric"] == "auc (max)" and changes[0]["change"].endswith("worse")
    assert changes[1]["metric"] == "loss (min)" and changes[1]["change"].endswith("better")


def test_the_tag_cache_is_never_stale(repo: Path) -> None:
    setup_project(repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn", "-m", "first reason")
    assert json.loads(mlm(repo, "model", "show", "churn", "--format", "json").stdout)["why"] == (
        "first reason"
    )
    # Re-made by hand with another message: a new tag object, so a new cache entry.
    commit = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "tag", "-d", "churn@v0.0.1")
    git(
        repo, "tag", "-a", "churn@v0.0.1", "-m", "Registering artifact churn version v0.0.1", commit
    )
    shown = json.loads(mlm(repo, "model", "show", "churn", "--format", "json").stdout)
    assert shown["why"] == "Registering artifact churn version v0.0.1" and shown["run"] == ""
    # A damaged cache file is ignored and rewritten.
    cache = repo / ".git" / "mlm" / "cache" / "registry-tags.json"
    cache.write_text("{not json")
    assert models_json(repo)[0]["latest"] == "v0.0.1"
    assert json.loads(cache.read_text())["version"] >= 1
