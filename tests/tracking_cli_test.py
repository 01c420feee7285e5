"""What a new user meets reading runs (issue 11, sections 4 and 5): names, help, tables, hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gitmlm
from gitmlm.core import refs
from tests.helpers import commit_all, git, head, install_hooks, mlm


def test_log_of_a_range_without_the_commit_says_the_code_was_committed(repo: Path) -> None:
    install_hooks(repo)
    base = head(repo)
    (repo / "train.py").write_text("print('v2')\n")
    mlm(repo, "run", "-n", "exp", "--", "true")
    commit_all(repo, "v2")
    out = mlm(repo, "log", base).stdout  # the commit of the code is outside the range
    [line] = [ln for ln in out.splitlines() if "exp" in ln]
    assert "[uncommitted code]" not in line and f"[code committed as {head(repo)[:7]}]" in line
    (repo / "train.py").write_text("print('v3')\n")
    mlm(repo, "run", "-n", "dirty", "--", "true")
    out = mlm(repo, "log").stdout
    [line] = [ln for ln in out.splitlines() if "dirty" in ln]
    assert "[uncommitted code]" in line


def test_recover_help_says_the_journal_is_deleted(repo: Path) -> None:
    text = " ".join(mlm(repo, "runs", "--help").stdout.split())
    assert "journal kept" not in text and "journals are deleted" in text


def test_show_diff_and_reproduce_take_a_unique_name(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import gitmlm, sys\nwith gitmlm.start_run() as run:\n    run.log_metric('m', 1.0)\n"
    )
    git(repo, "add", "t.py")
    git(repo, "commit", "-qm", "t")
    mlm(repo, "run", "--name", "alpha", "--", "python", "t.py")
    mlm(repo, "run", "--name", "beta", "--", "python", "t.py")
    mlm(repo, "run", "--name", "beta", "--", "python", "t.py")
    assert json.loads(mlm(repo, "show", "alpha", "--format", "json").stdout)["name"] == "alpha"
    proc = mlm(repo, "diff", "alpha", "beta", check=False)
    assert proc.returncode == 1 and "'beta' is ambiguous" in proc.stderr
    assert proc.stderr.count("(beta)") == 2  # each candidate named
    out = mlm(repo, "reproduce", "alpha").stdout
    assert "within tolerance" in out or "True" in out
    proc = mlm(repo, "show", "alpah", check=False)
    assert proc.returncode == 1 and "did you mean 'alpha'" in proc.stderr


def test_help_command(repo: Path) -> None:
    assert mlm(repo, "help", "runs").stdout.startswith("Usage: git mlm runs")
    assert mlm(repo, "help", "data", "add").stdout.startswith("Usage: git mlm data add")
    assert "Commands:" in mlm(repo, "help").stdout
    proc = mlm(repo, "help", "rns", check=False)
    assert proc.returncode == 1 and "did you mean runs" in proc.stderr


def test_runs_limit_and_columns_are_checked(repo: Path) -> None:
    with gitmlm.start_run(params={"lr": 0.1}):
        pass
    proc = mlm(repo, "runs", "-n", "-5", check=False)
    assert proc.returncode == 2 and "-5" in proc.stderr and "Traceback" not in proc.stderr
    proc = mlm(repo, "runs", "-c", "name,nosuchcol", check=False)
    assert proc.returncode == 1 and "no column 'nosuchcol'" in proc.stderr
    proc = mlm(repo, "runs", "-c", "params.l", check=False)
    assert "did you mean params.lr" in proc.stderr
    assert "0.1" in mlm(repo, "runs", "-c", "name,params.lr").stdout


def test_the_table_abbreviates_digests_and_json_keeps_them(repo: Path) -> None:
    (repo / "d.csv").write_text("x\n1\n")
    mlm(repo, "data", "add", "d", "d.csv")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    with gitmlm.start_run():
        pass
    [row] = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    digest = row["datasets.d"]
    assert len(digest) == 71
    table = mlm(repo, "runs").stdout
    assert digest not in table and digest[:19] in table
    assert max(len(line) for line in table.splitlines()) < 160


def test_an_unreadable_series_note_is_a_warning(repo: Path) -> None:
    with gitmlm.start_run() as run:
        run.log_metric("loss", 1.0, step=0)
    git(repo, "notes", "--ref", refs.SERIES, "add", "-f", "-m", "not = [toml", "HEAD")
    proc = mlm(repo, "show", run.id)
    assert "warning" in proc.stderr and "loss" in proc.stderr and refs.SERIES in proc.stderr
    with pytest.warns(UserWarning, match="step series"):
        gitmlm.get_run(run.id)


def test_runs_after_a_clone_hints_at_fetch(repo: Path, tmp_path: Path) -> None:
    with gitmlm.start_run(name="far"):
        pass
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "remote.git"))
    mlm(repo, "push")
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), "clone")
    clone = tmp_path / "clone"
    proc = mlm(clone, "runs")
    assert "git mlm fetch" in proc.stderr
    mlm(clone, "fetch")
    proc = mlm(clone, "runs")
    assert "far" in proc.stdout and "git mlm fetch" not in proc.stderr
    # Fetched by plain git with gitmlm's refspecs, but not merged: still a hint.
    with gitmlm.start_run(name="later"):
        pass
    mlm(repo, "push")
    mlm(clone, "init")
    git(clone, "fetch", "-q", "origin")
    assert "git mlm fetch origin" in mlm(clone, "runs").stderr
