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
    assert "pip install -q -e '.[test]'" in script and "python -m pytest" in script
