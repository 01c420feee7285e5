"""The registry never answers wrongly without saying so: bad gate settings, GTO's alphabet,
collision-free JSON, and protected stages on every read path."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import MLM_TOML, git, mlm, setup_project, train


def test_bad_gate_settings_are_one_clear_line_naming_mlm_toml(repo: Path) -> None:
    toml = MLM_TOML.replace('[metrics]\nauc = "max"\n', "")
    setup_project(repo, toml.replace("schema = 1\n", "schema = 1\nmetrics = 5\n"))
    train(repo, 0.95)
    mlm(repo, "register", "churn")
    proc = mlm(repo, "promote", "churn", "production", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("git mlm: mlm.toml: [metrics] must be a table"), proc.stderr

    setup_project(repo, MLM_TOML.replace('"metrics.auc >= 0.9"', '"metrics.auc >>= 0.9"'))
    proc = mlm(repo, "promote", "churn", "production", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("git mlm: mlm.toml: [registry.gates.production] require"), first
    assert "--where" not in proc.stderr
    assert not git(repo, "tag", "--list", "churn#*")
