"""The README is the front door: its commands and hook ids must stay true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_hook_id_is_in_the_readme() -> None:
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    ids = re.findall(r"^-\s+id:\s*(\S+)", hooks, flags=re.M)
    readme = (ROOT / "README.md").read_text()
    assert ids and all(f"id: {i}" in readme for i in ids), ids


def test_every_hook_entry_is_a_console_script() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entries = re.findall(
        r"^\s+entry:\s*(\S+)", (ROOT / ".pre-commit-hooks.yaml").read_text(), flags=re.M
    )
    assert entries and all(e in scripts for e in entries), entries


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash tests/run.sh"
    assert command in ci and command in readme
    script = (ROOT / "tests" / "run.sh").read_text()
    # the test extra, and the extras of what the tests drive (the deep-learning autologs)
    assert "pip install -q -e '.[test,autolog-dl]'" in script and "python -m pytest" in script


def _yaml_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)


def test_the_readme_pre_commit_config_works_as_pasted(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    local = next(b for b in _yaml_blocks() if "repo: local" in b)
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    pasted = yaml.safe_load(local)["repos"][0]["hooks"]
    # The local hooks are the published ones, run from the installed console scripts.
    published = {h["id"]: h for h in hooks}
    assert sorted(published) == sorted(h["id"] for h in pasted)
    for ours in pasted:
        theirs = published[ours["id"]]
        assert {k: v for k, v in theirs.items() if k not in ("language", "description")} == {
            k: v for k, v in ours.items() if k != "language"
        }
    repo = tmp_path / "project"
    repo.mkdir()
    bindir = Path(os.environ["HOME"]) / "bin"
    for script, module in (("mlm-data", "data"), ("mlm-checkpoint", "checkpoint")):
        (bindir / script).write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m gitmlm.hooks.{module}\n'
        )
        (bindir / script).chmod(0o755)
    (repo / ".pre-commit-config.yaml").write_text(local)
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "datasets match mlm.lock (gitmlm)" in proc.stdout


def test_the_readme_pre_commit_rev_exists() -> None:
    # No release tag exists yet: a `rev` naming one fails on copy-paste.
    revs = re.findall(r"^\s*rev:\s*(\S+)", "".join(_yaml_blocks()), flags=re.M)
    assert revs == ["main"], revs
