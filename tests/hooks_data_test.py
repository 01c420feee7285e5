"""The mlm-data hook: through git shims installed by `git mlm install-hooks`, and through the
real pre-commit framework (`pre-commit try-repo`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from gitmlm.hooks import STAGES
from gitmlm.hooks import install as hookinstall
from tests.helpers import ROOT, git, mlm

REAL_HOME = os.environ.get("HOME", "")
"""Read at import, before the hermetic fixture swaps HOME: pip's download cache lives there."""


def make_data(repo: Path) -> None:
    (repo / "data/train").mkdir(parents=True)
    for i in range(5):
        (repo / f"data/train/{i}.csv").write_text(f"x\n{i}\n")
    (repo / ".gitignore").write_text("data/\n")  # data is usually not in git
    git(repo, "add", ".gitignore")


def commit(repo: Path, message: str) -> subprocess.CompletedProcess[str]:
    (repo / "train.py").write_text(f"print({message!r})\n")
    git(repo, "add", "train.py")
    return subprocess.run(
        ["git", "commit", "-m", message], cwd=repo, capture_output=True, text=True
    )


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_commit_blocked_by_shim_then_allowed_after_add(repo: Path) -> None:
    out = mlm(repo, "install-hooks").stdout
    assert "installed" in out
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    assert commit(repo, "v1").returncode == 0

    (repo / "data/train/3.csv").write_text("x\nchanged\n")
    (repo / "data/train/new.csv").write_text("x\n")
    before = head(repo)
    proc = commit(repo, "v2 code")
    assert proc.returncode != 0
    assert head(repo) == before
    assert "dataset train (data/train) differs from mlm.lock: 1 modified, 1 added, 0 removed" in (
        proc.stderr
    )
    assert "modified data/train/3.csv" in proc.stderr
    assert "fix: git mlm data add train" in proc.stderr

    mlm(repo, "data", "add", "train", "--no-stage")
    proc = commit(repo, "v2 code")
    assert proc.returncode != 0 and "fix: git add mlm.lock" in proc.stderr

    mlm(repo, "data", "add", "train")
    proc = commit(repo, "v2 code")
    assert proc.returncode == 0, proc.stderr
    committed = tomllib.loads(git(repo, "show", "HEAD:mlm.lock"))
    assert committed["datasets"]["train"]["files"] == 6


def test_hook_passes_silently_without_datasets(repo: Path) -> None:
    mlm(repo, "install-hooks")
    proc = commit(repo, "no data here")
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_existing_hook_is_chained_not_overwritten(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    mine = "#!/bin/sh\necho ran >> .git/chained.log\nexit ${FAIL:-0}\n"
    (hooks / "pre-commit").write_text(mine)
    (hooks / "pre-commit").chmod(0o755)

    out = mlm(repo, "install-hooks").stdout
    assert "pre-commit.pre-gitmlm" in out
    assert (hooks / "pre-commit.pre-gitmlm").read_text() == mine
    assert (hooks / "pre-commit").read_text() == hookinstall.shim("pre-commit")
    assert "installed already" in mlm(repo, "install-hooks").stdout

    assert commit(repo, "one").returncode == 0
    assert (repo / ".git/chained.log").read_text() == "ran\n"
    proc = subprocess.run(
        ["git", "commit", "--allow-empty", "-m", "two"],
        cwd=repo,
        capture_output=True,
        env={**os.environ, "FAIL": "1"},
    )
    assert proc.returncode != 0  # the chained hook still blocks

    mlm(repo, "install-hooks", "--uninstall")
    assert (hooks / "pre-commit").read_text() == mine
    assert not (hooks / "pre-commit.pre-gitmlm").exists()


def test_install_refuses_when_both_hooks_exist(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\n")
    (hooks / "pre-commit.pre-gitmlm").write_text("#!/bin/sh\n")
    proc = mlm(repo, "install-hooks", check=False)
    assert proc.returncode == 1 and "merge them" in proc.stderr
    assert (hooks / "pre-commit").read_text() == "#!/bin/sh\n"


def test_install_honours_core_hooks_path(repo: Path) -> None:
    git(repo, "config", "core.hooksPath", "githooks")
    mlm(repo, "install-hooks")
    assert (repo / "githooks/pre-commit").read_text() == hookinstall.shim("pre-commit")


def test_shims_in_hooks_folder_are_the_installed_ones() -> None:
    folder = ROOT / "hooks"
    assert sorted(p.name for p in folder.iterdir()) == sorted(STAGES)
    for stage in STAGES:
        shim = folder / stage
        assert shim.read_text() == hookinstall.shim(stage)
        assert os.access(shim, os.X_OK)


def test_hook_ids_are_console_scripts() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    docs = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    for h in hooks:
        assert h["entry"].split()[0] in scripts
        assert h["language"] == "python"
        assert h["id"] in docs
    (data_hook,) = [h for h in hooks if h["id"] == "mlm-data"]
    assert data_hook["pass_filenames"] is False and data_hook["always_run"] is True


def test_hook_never_imports_pandas(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    for args in (["-m", "gitmlm.hooks.data"], ["-m", "gitmlm", "hook", "pre-commit"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *args], cwd=repo, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
        assert not {m for m in imported if m.split(".")[0] in ("pandas", "numpy")}


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit home per test session: it builds gitmlm's hook environment once."""
    return tmp_path_factory.getbasetemp() / "pre-commit-home"


def snapshot_checkout(dest: Path) -> Path:
    """This checkout's files (tracked and untracked, not ignored) as a one-commit repository,
    so try-repo installs exactly this code whether or not the checkout is clean."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "snapshot")
    return dest


def test_pre_commit_try_repo(repo: Path, tmp_path: Path, pre_commit_home: Path) -> None:
    hook_repo = snapshot_checkout(tmp_path / "gitmlm-checkout")
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    git(repo, "commit", "-qm", "data")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the hook's own venv
    env["PRE_COMMIT_HOME"] = str(pre_commit_home)
    # The caches pip and virtualenv keep in the real home: the one build stays quick.
    env.setdefault("PIP_CACHE_DIR", str(Path(REAL_HOME) / ".cache" / "pip"))
    env.setdefault("VIRTUALENV_OVERRIDE_APP_DATA", str(Path(REAL_HOME) / ".cache" / "virtualenv"))

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pre-commit", "try-repo", str(hook_repo), "mlm-data"],
            cwd=repo,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )

    (repo / "data/train/0.csv").write_text("x\nedited\n")
    blocked = try_repo()
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "Failed" in blocked.stdout
    assert "dataset train (data/train) differs from mlm.lock" in blocked.stdout
    assert "fix: git mlm data add train" in blocked.stdout

    mlm(repo, "data", "add", "train")
    passed = try_repo()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
