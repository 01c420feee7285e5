"""The mlm-checkpoint pre-commit hook, through real `git commit` and `pre-commit try-repo`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitmlm.hooks import checkpoint as hook
from tests.helpers import ROOT, commit_all, git, git_proc, head, install_hooks, mlm, note

TRAIN = """\
import os
import gitmlm

with gitmlm.start_run() as run:
    lr = run.params.get("lr", 0.1)
    os.makedirs("models", exist_ok=True)
    with open("models/model.pkl", "w") as fh:
        fh.write(f"weights lr={lr}\\n")
    run.log_metric("acc", 1 - lr / 10)
    if os.environ.get("LOG_ARTIFACT"):
        run.log_artifact("models/model.pkl")
"""


def project(repo: Path, mode: str = "block") -> None:
    (repo / "mlm.toml").write_text(
        f'schema = 1\n[checkpoint]\noutputs = ["models/*.pkl"]\nmode = "{mode}"\n'
    )
    (repo / "train.py").write_text(TRAIN)
    commit_all(repo, "project")


def commit(repo: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    git(repo, "add", *paths)
    proc: subprocess.CompletedProcess[str] = git_proc(repo, "commit", "-q", "-m", "results")
    return proc


def test_blocks_a_model_no_run_made_and_allows_it_after_a_run(repo: Path) -> None:
    install_hooks(repo)
    project(repo)
    (repo / "models").mkdir()
    (repo / "models" / "model.pkl").write_text("hand-made\n")
    before = head(repo)
    proc = commit(repo, "models/model.pkl")
    assert proc.returncode == 1
    assert "models/model.pkl: no recorded run of the staged code made this file" in proc.stderr
    assert "git mlm run -- <your training command>" in proc.stderr
    assert head(repo) == before

    mlm(repo, "run", "-p", "lr=0.2", "--", "python", "train.py")
    proc = commit(repo, "models/model.pkl")
    assert proc.returncode == 0, proc.stderr
    assert "lr = 0.2" in note(repo, head(repo))  # the run shows on the commit of its model


def test_blocks_a_model_made_from_other_code_and_names_the_difference(repo: Path) -> None:
    install_hooks(repo)
    project(repo)
    mlm(repo, "run", "--", "python", "train.py")
    (repo / "train.py").write_text(TRAIN + "# tweaked after the run\n")
    proc = commit(repo, "train.py", "models/model.pkl")
    assert proc.returncode == 1
    assert "from other code (differs in: train.py)" in proc.stderr
    assert "git mlm run -- python train.py" in proc.stderr


def test_a_run_on_uncommitted_code_allows_committing_code_and_model(repo: Path) -> None:
    install_hooks(repo)
    project(repo)
    (repo / "train.py").write_text(TRAIN.replace("0.1", "0.3"))  # uncommitted change
    # A plain script run (no `git mlm run`) records its output with run.log_artifact.
    env = {**os.environ, "LOG_ARTIFACT": "1"}
    subprocess.run(["python", "train.py"], cwd=repo, check=True, env=env)
    proc = commit(repo, "train.py", "models/model.pkl")
    assert proc.returncode == 0, proc.stderr
    assert "lr = 0.3" not in note(repo, head(repo))  # params were not given; metrics were
    assert "acc = 0.97" in note(repo, head(repo))


def test_warn_mode_reports_without_blocking(repo: Path) -> None:
    install_hooks(repo)
    project(repo, mode="warn")
    (repo / "models").mkdir()
    (repo / "models" / "model.pkl").write_text("hand-made\n")
    proc = commit(repo, "models/model.pkl")
    assert proc.returncode == 0
    assert "no recorded run of the staged code made this file" in proc.stderr
    assert 'mode = "warn"' in proc.stderr


def test_commits_without_outputs_pass_in_process(repo: Path) -> None:
    project(repo)
    (repo / "notes.txt").write_text("x\n")
    git(repo, "add", "notes.txt")
    assert hook.main([]) == 0
    (repo / "models").mkdir()
    (repo / "models" / "model.pkl").write_text("hand-made\n")
    git(repo, "add", "models/model.pkl")
    assert hook.main(["notes.txt"]) == 0  # filenames narrow the check (pre-commit passes them)
    assert hook.main([]) == 1


def test_the_hook_path_never_imports_pandas_or_data_hashing(repo: Path) -> None:
    # With an output staged the hook reads the runs: through tracking.listing, which loads
    # neither pandas nor the data-hashing modules.
    project(repo)
    (repo / "models").mkdir()
    (repo / "models" / "model.pkl").write_text("weights\n")
    git(repo, "add", "models/model.pkl")
    proc = subprocess.run(
        ["python", "-X", "importtime", "-m", "gitmlm.hooks.checkpoint", "models/model.pkl"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1  # no run made it: the check did read the runs
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    assert "gitmlm.tracking.listing" in imported
    assert "pandas" not in imported and "numpy" not in imported
    assert not imported & {"gitmlm.data.hashing", "gitmlm.data.statcache", "gitmlm.data.manifest"}


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One pre-commit store for the session, so the hook's environment is built once."""
    yield tmp_path_factory.mktemp("pre-commit-home")


def try_repo(repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pre-commit", "try-repo", str(ROOT), "mlm-checkpoint", "--verbose"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PRE_COMMIT_HOME": str(home)},
    )


def test_pre_commit_try_repo(repo: Path, pre_commit_home: Path) -> None:
    project(repo)
    (repo / "models").mkdir()
    (repo / "models" / "model.pkl").write_text("hand-made\n")
    git(repo, "add", "models/model.pkl")
    proc = try_repo(repo, pre_commit_home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/model.pkl: no recorded run of the staged code made this file" in proc.stdout
    mlm(repo, "run", "--", "python", "train.py")
    git(repo, "add", "models/model.pkl")
    proc = try_repo(repo, pre_commit_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
