"""Shared by the checkpoint tests: hook console scripts of this checkout, run records."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, git, mlm


def install_hooks(repo: Path) -> None:
    """Use the shims in hooks/ as this repository's git hooks, and put console scripts that
    run this checkout's hook modules on PATH (the shims call them by name)."""
    bindir = Path(os.environ["HOME"]) / "bin"
    for script, module in (
        ("mlm-checkpoint", "gitmlm.hooks.checkpoint"),
        ("mlm-post-commit", "gitmlm.hooks.post_commit"),
    ):
        shim = bindir / script
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    git(repo, "config", "core.hooksPath", str(ROOT / "hooks"))


def runs(repo: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    return out


def note(repo: Path, commit: str) -> str:
    return git(repo, "notes", "--ref", "refs/notes/mlm", "show", commit, check=False)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def commit_all(repo: Path, message: str, check: bool = True) -> str:
    git(repo, "add", "-A")
    proc = git_proc(repo, "commit", "-q", "-m", message)
    if check and proc.returncode != 0:
        raise AssertionError(f"commit failed: {proc.stdout}{proc.stderr}")
    return proc.stderr + proc.stdout


def git_proc(repo: Path, *args: str) -> Any:
    import subprocess

    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
