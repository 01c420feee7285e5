"""The registry never answers wrongly without saying so: bad gate settings, GTO's alphabet,
collision-free JSON, and protected stages on every read path."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import (
    MLM_TOML,
    ROOT,
    commit_all,
    git,
    git_proc,
    install_hooks,
    mlm,
    setup_project,
    train,
)


def test_bad_gate_settings_are_one_clear_line_naming_mlm_toml(repo: Path) -> None:
    setup_project(repo)
    train(repo, 0.95)
    mlm(repo, "register", "churn")
    toml = MLM_TOML.replace('[metrics]\nauc = "max"\n', "")
    (repo / "mlm.toml").write_text(toml.replace("schema = 1\n", "schema = 1\nmetrics = 5\n"))
    proc = mlm(repo, "promote", "churn", "production", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("git mlm: "), proc.stderr
    assert "mlm.toml: [metrics] must be a table" in proc.stderr, proc.stderr

    (repo / "mlm.toml").write_text(
        MLM_TOML.replace('"metrics.auc >= 0.9"', '"metrics.auc >>= 0.9"')
    )
    proc = mlm(repo, "promote", "churn", "production", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("git mlm: mlm.toml: [registry.gates.production] require"), first
    assert "--where" not in proc.stderr
    assert not git(repo, "tag", "--list", "churn#*")


TRAIN = """\
import os
import gitmlm
with gitmlm.start_run() as run:
    os.makedirs("models", exist_ok=True)
    with open("models/churn.pkl", "w") as fh:
        fh.write("weights\\n")
    run.log_metric("auc", 0.95)
    run.log_artifact("models/churn.pkl")
"""


def test_a_squash_merged_promotion_request_passes_the_checkpoint_hook(repo: Path) -> None:
    """gitmlm's own files under .mlm/ are never code: the request does not make the model's
    run "from other code"."""
    install_hooks(repo)
    (repo / "mlm.toml").write_text(
        'schema = 1\n[checkpoint]\noutputs = ["models/*.pkl"]\n\n'
        '[models.churn]\npath = "models/churn.pkl"\n'
    )
    (repo / "train.py").write_text(TRAIN)
    commit_all(repo, "project")
    git(repo, "switch", "-q", "-c", "promote-churn")
    mlm(repo, "run", "--", "python", "train.py")
    commit_all(repo, "model")
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "--request", "churn", "production", "v0.0.1")
    commit_all(repo, "Promote churn v0.0.1 to production")
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--squash", "promote-churn")
    proc = git_proc(repo, "commit", "-q", "-m", "Promote churn (squashed)")
    assert proc.returncode == 0, proc.stderr
    assert "models/churn.pkl" in git(repo, "show", "--name-only", "HEAD")


def test_plain_git_push_of_a_request_is_caught_by_ci_check_naming_git_mlm_push(
    repo: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", f"file://{bare}")
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    train(repo, 0.95)
    mlm(repo, "register", "churn")
    git(repo, "switch", "-q", "-c", "promote-churn")
    mlm(repo, "promote", "--request", "churn", "production", "v0.0.1")
    commit_all(repo, "Promote churn v0.0.1 to production")
    git(repo, "push", "-q", "origin", "promote-churn")  # plain push: no registry tags
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "-b", "promote-churn", f"file://{bare}", str(ci))
    check = mlm(ci, "ci", "check", check=False)
    assert check.returncode == 1
    assert "`git mlm push`" in check.stdout + check.stderr, check.stdout + check.stderr
    mlm(repo, "push")  # as the docs now say
    git(ci, "fetch", "-q", "--tags")
    assert mlm(ci, "ci", "check").returncode == 0


def test_the_pull_request_docs_publish_registry_tags() -> None:
    docs = (ROOT / "docs" / "registry.md").read_text()
    flow = docs.split("## Promotion through pull requests", 1)[1].split("```", 2)[1]
    assert "git mlm push" in flow or "git mlm sync" in flow
    assert not flow.rstrip().endswith("&& git push")


def test_a_model_declared_by_gto_created_tag_is_listed_without_versions(repo: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    git(repo, "tag", "-a", "Fraud_v2@created", "-m", "Creating artifact Fraud_v2")
    rows = json.loads(mlm(repo, "models", "--format", "json").stdout)
    assert rows == [
        {
            "model": "Fraud_v2",
            "latest": None,
            "stages": {"dev": None, "staging": None, "production": None},
        }
    ]
