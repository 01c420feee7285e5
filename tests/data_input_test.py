"""`git mlm data` on bad input: a clear error and nothing written, or the problem of one
dataset reported beside the others' state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import git, mlm


def _two_datasets(repo: Path) -> None:
    for name in ("a", "b"):
        (repo / name).mkdir()
        (repo / name / "x.csv").write_text(f"{name}\n")
        mlm(repo, "data", "add", name, name)


def test_status_reports_a_broken_symlink_and_the_other_datasets(repo: Path) -> None:
    _two_datasets(repo)
    (repo / "b" / "x.csv").write_text("changed\n")
    os.symlink("nowhere", repo / "a" / "gone.csv")
    proc = mlm(repo, "data", "status", "--format", "json", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    rows = {r["dataset"]: r for r in json.loads(proc.stdout)}
    assert rows["a"]["status"] == "error" and "a/gone.csv is a broken symlink" in rows["a"]["note"]
    assert rows["b"]["status"] == "modified"
    table = mlm(repo, "data", "status", check=False)
    assert "a/gone.csv is a broken symlink" in table.stderr
    assert "modified" in table.stdout and "error" in table.stdout


def test_the_hook_names_the_broken_dataset(repo: Path) -> None:
    _two_datasets(repo)
    git(repo, "commit", "-qm", "data")
    os.symlink("nowhere", repo / "a" / "gone.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "gitmlm.hooks.data"], cwd=repo, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "dataset a (a): a/gone.csv is a broken symlink" in proc.stderr


def test_add_refuses_git_own_store(repo: Path) -> None:
    before = (repo / "mlm.toml").exists()
    for path in (".git", ".git/objects", "sub/../.git"):
        proc = mlm(repo, "data", "add", "x", path, check=False)
        assert proc.returncode == 1 and "inside .git" in proc.stderr, proc.stderr
    assert (repo / "mlm.toml").exists() == before and not (repo / "mlm.lock").exists()


def test_add_refuses_a_path_component_over_255_bytes(repo: Path) -> None:
    proc = mlm(repo, "data", "add", "x", "d/" + "n" * 300, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is 300 bytes long; file names are at most 255 bytes" in proc.stderr
    assert not (repo / "mlm.lock").exists()
    (repo / "mlm.toml").write_text(f'schema = 1\n[datasets.x]\npath = "{"é" * 200}"\n')
    proc = mlm(repo, "data", "status", check=False)
    assert proc.returncode == 1 and "is 400 bytes long" in proc.stderr


def test_rm_leaves_no_blank_line(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n\n[metrics]\nacc = "max"\n')
    before = (repo / "mlm.toml").read_text()
    _two_datasets(repo)
    mlm(repo, "data", "rm", "b")
    mlm(repo, "data", "rm", "a")
    assert (repo / "mlm.toml").read_text() == before
