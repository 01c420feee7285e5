"""Promotion through pull requests, against a real bare remote reached by a file:// URL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import MLM_TOML, body, git, mlm, setup_project, train

STAGES = '["dev", "qa", "staging", "production"]'


def make_remote(tmp_path: Path, repo: Path) -> Path:
    """A bare remote whose pre-receive hook logs how many refs each push updates."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        '#!/bin/sh\nn=0\nwhile read old new ref; do n=$((n+1)); echo "$ref" >> pushed-refs; '
        "done\necho $n >> push-sizes\n"
    )
    hook.chmod(0o755)
    git(repo, "remote", "add", "origin", f"file://{bare}")
    return bare


def remote_tags(repo: Path) -> set[str]:
    lines = git(repo, "ls-remote", "--tags", "origin").splitlines()
    return {ln.split("\t")[1][10:] for ln in lines if not ln.endswith("^{}")}


def push_sizes(bare: Path) -> list[int]:
    file = bare / "push-sizes"
    return [int(n) for n in file.read_text().split()] if file.exists() else []


def test_the_pull_request_flow(repo: Path, tmp_path: Path) -> None:
    setup_project(repo, MLM_TOML.replace('["dev", "staging", "production"]', STAGES))
    bare = make_remote(tmp_path, repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "churn", "production")
    train(repo, 0.95)
    mlm(repo, "register", "churn")
    train(repo, 0.85)
    mlm(repo, "register", "churn")
    git(repo, "push", "-q", "origin", "main", "--tags")
    (bare / "push-sizes").unlink()

    # A pull request promoting v0.0.2 through every stage.
    git(repo, "checkout", "-q", "-b", "promote-v2")
    for stage in ("dev", "qa", "staging", "production"):
        out = mlm(repo, "promote", "--request", "churn", stage, "v0.0.2", "-m", "better auc")
        assert f".mlm/requests/churn--{stage}.toml" in out.stdout
    git(repo, "add", ".mlm")
    git(repo, "commit", "-q", "-m", "promote churn v0.0.2")
    assert remote_tags(repo) == {
        "churn@v0.0.1",
        "churn@v0.0.2",
        "churn@v0.0.3",
        "churn#production#2",
    }
    check = mlm(repo, "ci", "check", "--output", str(tmp_path / "report.md"))
    report = check.stdout
    assert report == (tmp_path / "report.md").read_text()
    assert report.startswith("## gitmlm: model promotion requests\n")
    assert (
        "| churn v0.0.2 → production | .mlm/requests/churn--production.toml | ✅ gates pass |"
        in report
    )
    assert "Now in production: **v0.0.1**" in report
    assert "| auc (max) | 0.91 | 0.95 | ▲ +0.04 better |" in report
    assert "| metrics.auc >= 0.9 | ✅ pass | metrics.auc = 0.95 |" in report
    assert "> better auc" in report and "Requested by Test User <test@example.com>." in report

    # Another pull request: a worse model, and a request for a version that does not exist.
    git(repo, "checkout", "-q", "-b", "bad", "main")
    mlm(repo, "promote", "--request", "churn", "production", "v0.0.3")
    missing = mlm(repo, "promote", "--request", "churn", "qa", "v7.0.0", check=False)
    assert missing.returncode == 1 and "has no version v7.0.0" in missing.stderr
    assert not (repo / ".mlm/requests/churn--qa.toml").exists()
    (repo / ".mlm/requests/churn--qa.toml").write_text(
        'schema = 1\nmodel = "churn"\nstage = "qa"\nversion = "v7.0.0"\n'
    )
    git(repo, "add", ".mlm")
    git(repo, "commit", "-q", "-m", "promote a worse model")
    failing = mlm(repo, "ci", "check", check=False)
    assert failing.returncode == 1
    assert (
        "| churn v0.0.3 → production | .mlm/requests/churn--production.toml | ❌ gates fail |"
        in failing.stdout
    )
    assert "| metrics.auc >= 0.9 | ❌ fail | metrics.auc = 0.85 |" in failing.stdout
    assert "▼ -0.06 worse" in failing.stdout
    assert "❌ invalid" in failing.stdout and "has no version v7.0.0" in failing.stdout
    assert "not ready" in failing.stderr

    # Merge the good one; CI on main applies it.
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "promote-v2", "-m", "Merge promote-v2")
    applied = mlm(repo, "ci", "apply")
    assert applied.stdout.count("created") == 4
    # Requests apply in file-name order, each taking the model's next sequence number.
    new = {"churn#dev#5", "churn#production#6", "churn#qa#7", "churn#staging#8"}
    assert (
        remote_tags(repo)
        == {"churn@v0.0.1", "churn@v0.0.2", "churn@v0.0.3", "churn#production#2"} | new
    )
    sizes = push_sizes(bare)
    assert sizes == [3, 1, 1]  # tags at most three per push, then the cleanup commit
    assert not (repo / ".mlm/requests").exists() or not any((repo / ".mlm/requests").iterdir())
    remote_tree = git(bare, "ls-tree", "-r", "--name-only", "main").split()
    assert not any(p.startswith(".mlm/requests") for p in remote_tree)
    assert git(bare, "rev-parse", "main").strip() == git(repo, "rev-parse", "HEAD").strip()
    assert "[skip ci]" in git(repo, "log", "-1", "--format=%s")
    prod = json.loads(mlm(repo, "models", "--format", "json").stdout)[0]
    assert prod == {
        "model": "churn",
        "latest": "v0.0.3",
        "stages": {"dev": "v0.0.2", "qa": "v0.0.2", "staging": "v0.0.2", "production": "v0.0.2"},
    }
    history = json.loads(mlm(repo, "model", "history", "churn", "--format", "json").stdout)
    assert history[0]["tag"] == "churn#staging#8" and history[0]["why"] == "better auc"
    assert history[2]["tag"] == "churn#production#6" and history[2]["who"] == (
        "Test User <test@example.com>"
    )

    applied_body = body(repo, "churn#production#6")
    assert str(applied_body["request"]).startswith("sha256:")
    assert applied_body["requested_by"] == "Test User <test@example.com>"
    assert applied_body["previous"] == "v0.0.1" and applied_body["event"] == "assign"

    # A second apply finds nothing to do.
    again = mlm(repo, "ci", "apply")
    assert again.stdout.strip() == "no promotion requests to apply"
    assert push_sizes(bare) == sizes and len(remote_tags(repo)) == 8


def test_apply_is_idempotent_when_a_run_stopped_half_way(repo: Path, tmp_path: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    bare = make_remote(tmp_path, repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    git(repo, "push", "-q", "origin", "main", "--tags")
    mlm(repo, "promote", "--request", "churn", "staging", "v0.0.1")
    git(repo, "add", ".mlm")
    git(repo, "commit", "-q", "-m", "request")
    git(repo, "push", "-q", "origin", "main")
    # The tag is made, then the job dies before pushing or removing the request.
    mlm(repo, "ci", "apply", "--no-push")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert (repo / ".mlm/requests/churn--staging.toml").exists()
    out = mlm(repo, "ci", "apply").stdout
    assert "already applied" in out and "churn#staging#2" in out
    assert [t for t in git(repo, "tag", "--list", "churn#staging*").split()] == ["churn#staging#2"]
    assert "churn#staging#2" in remote_tags(repo)
    assert not (repo / ".mlm/requests/churn--staging.toml").exists()
    assert git(bare, "rev-parse", "main").strip() == git(repo, "rev-parse", "HEAD").strip()


def test_apply_reports_a_tag_name_taken_on_the_remote(repo: Path, tmp_path: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    bare = make_remote(tmp_path, repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    git(repo, "push", "-q", "origin", "main", "--tags")
    mlm(repo, "promote", "--request", "churn", "staging", "v0.0.1")
    git(repo, "add", ".mlm")
    git(repo, "commit", "-q", "-m", "request")
    mlm(repo, "ci", "apply", "--no-push")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    # Meanwhile someone else put v0.0.1 in staging under the same tag name.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "tag", "-a", "churn#staging#2", "-m", "by hand", "churn@v0.0.1^{commit}")
    git(other, "push", "-q", "origin", "churn#staging#2")
    proc = mlm(repo, "ci", "apply", check=False)
    assert proc.returncode == 1 and "other tags named churn#staging#2" in proc.stderr
    git(repo, "tag", "-d", "churn#staging#2")
    out = mlm(repo, "ci", "apply").stdout  # the version is in the stage: nothing to tag
    assert "already applied" in out and "churn#staging#2" in out
    assert not (repo / ".mlm/requests/churn--staging.toml").exists()


def test_apply_needs_a_branch_on_a_detached_head(repo: Path, tmp_path: Path) -> None:
    setup_project(repo, MLM_TOML.split("[registry.gates")[0])
    make_remote(tmp_path, repo)
    train(repo, 0.91)
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "--request", "churn", "dev", "v0.0.1")
    git(repo, "add", ".mlm")
    git(repo, "commit", "-q", "-m", "request")
    git(repo, "checkout", "-q", "--detach")
    proc = mlm(repo, "ci", "apply", check=False)
    assert proc.returncode == 1 and "--branch" in proc.stderr
    assert "churn#dev#2" not in git(repo, "tag", "--list")
    proc = mlm(repo, "ci", "apply", "--remote", "nowhere", check=False)
    assert proc.returncode == 1 and "no remote 'nowhere'" in proc.stderr
