"""What the tests share: `git` and `git mlm` as a user types them, hook shims of this checkout,
run records, and a small registry project. Test files import from here, never from each other."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gitmlm
from gitmlm.core import tags

ROOT = Path(__file__).resolve().parent.parent
DATE = "1700000000 +0000"


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def mlm(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`git mlm ARGS` as a user types it: through git, which finds our git-mlm on PATH."""
    proc = subprocess.run(["git", "mlm", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"git mlm {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
        )
    return proc


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
    # A copy per repository: git-lfs and others write hooks into whatever hooksPath names, and
    # must never write into this checkout.
    shims = repo.parent / f"{repo.name}-hooks"
    shutil.copytree(ROOT / "hooks", shims, dirs_exist_ok=True)
    git(repo, "config", "core.hooksPath", str(shims))


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


MLM_TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"
description = "churn classifier"

[metrics]
auc = "max"

[registry]
stages = ["dev", "staging", "production"]

[registry.gates.production]
require = ["metrics.auc >= 0.9"]
better_than_current = "auc"
"""


def setup_project(repo: Path, toml: str = MLM_TOML) -> None:
    (repo / "mlm.toml").write_text(toml)
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "declare churn")


def train(repo: Path, auc: float, tag: str = "") -> str:
    """A tracked run that writes and logs the model, then a commit of the model; the run id."""
    (repo / "models").mkdir(exist_ok=True)
    with gitmlm.start_run(params={"auc": auc}) as run:
        (repo / "models" / "churn.pkl").write_text(f"weights for auc {auc} {tag}")
        run.log_metric("auc", auc)
        run.log_artifact(repo / "models" / "churn.pkl")
    git(repo, "add", "models/churn.pkl")
    git(repo, "commit", "-q", "-m", f"model auc {auc}")
    return run.id


def tag_list(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


def body(repo: Path, tag: str) -> dict[str, Any]:
    """The TOML body of a tag, as git stores it (headers, blank line, message)."""
    raw = git(repo, "cat-file", "tag", f"refs/tags/{tag}")
    return tags.decode_message(raw.split("\n\n", 1)[1]).body


def models_json(repo: Path, *args: str) -> list[dict[str, object]]:
    return json.loads(mlm(repo, "models", "--format", "json", *args).stdout)


PEERS = Path(os.environ.get("PEERS_DIR", "/tmp/gitmlm-peers"))


def peer_python(tool: str) -> Path:
    """The python of a peer tool's venv; .ci/run installs them, so a missing one is a failure."""
    import pytest

    python = PEERS / tool / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{tool} is not installed: run `bash .ci/run` or the peers' install.sh {tool}")
    return python


# --- the ui's project ---------------------------------------------------------------------

XSS = "<img src=x onerror=alert(1)>"
UI_TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"
description = "churn classifier"

[metrics]
auc = "max"

[registry]
stages = ["dev", "staging", "production"]

[registry.gates.production]
require = ["metrics.auc >= 0.9"]
"""


def ui_project(repo: Path) -> dict[str, str]:
    """Three runs with step series (one named like an XSS attack), a registered, promoted
    model; returns run name -> id."""
    (repo / "mlm.toml").write_text(UI_TOML)
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "declare churn")
    (repo / "models").mkdir()
    ids = {}
    for i, (name, lr) in enumerate([("baseline", 0.1), ("fast", 0.3), (XSS, 0.03)]):
        params = {"lr": lr, "opt": "adam" if i else "sgd"}
        with gitmlm.start_run(name=name, params=params) as run:
            for step in range(60):
                run.log_metric("loss", math.exp(-lr * step) + 0.02 * i, step=step)
                run.log_metric("val_loss", math.exp(-lr * step) + 0.003 * step, step=step)
            run.log_metric("auc", 0.8 + 0.06 * i)
            (repo / "models" / "churn.pkl").write_text(f"weights {i}")
            run.log_artifact(repo / "models" / "churn.pkl")
        ids[name] = run.id
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train churn")
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "churn", "staging")
    return ids
