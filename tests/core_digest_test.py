"""One artifact digest for run records, the registry and the checkpoint hooks, Git LFS included
(real `git lfs`: the staged blob is a pointer, the working file is the content)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from gitmlm.core import digest
from tests.helpers import commit_all, git, git_proc, head, install_hooks, mlm

TRAIN = """\
import os
import gitmlm

with gitmlm.start_run() as run:
    os.makedirs("models", exist_ok=True)
    with open("models/model.pkl", "wb") as fh:
        fh.write(bytes(range(256)) * 64)
    run.log_metric("acc", 0.93)
    run.log_artifact("models/model.pkl")
"""


def test_a_pointer_and_its_content_have_one_digest(tmp_path: Path) -> None:
    content = b"weights" * 1000
    oid = hashlib.sha256(content).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(content)}\n"
    (tmp_path / "model.bin").write_bytes(content)
    (tmp_path / "pointer").write_text(pointer)
    want = "sha256:" + oid
    assert digest.of_bytes(content) == digest.of_file(tmp_path / "model.bin") == want
    assert digest.of_bytes(pointer.encode()) == digest.of_file(tmp_path / "pointer") == want
    # Text that merely starts like a pointer but names no oid is hashed as it is.
    odd = b"version https://git-lfs.github.com/spec/v1\nno oid here\n"
    assert digest.of_bytes(odd) == "sha256:" + hashlib.sha256(odd).hexdigest()


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="needs git-lfs (.ci/run installs it)")
def test_an_lfs_tracked_model_passes_the_hook_and_register_finds_its_run(repo: Path) -> None:
    git(repo, "lfs", "install", "--local")
    git(repo, "lfs", "track", "models/*.pkl")
    (repo / "mlm.toml").write_text(
        'schema = 1\n[checkpoint]\noutputs = ["models/*.pkl"]\n'
        '[models.churn]\npath = "models/model.pkl"\n'
    )
    (repo / "train.py").write_text(TRAIN)
    commit_all(repo, "project on LFS")
    install_hooks(repo)
    mlm(repo, "run", "--name", "lfs", "--", "python", "train.py")
    git(repo, "add", "models/model.pkl")
    proc = git_proc(repo, "commit", "-q", "-m", "model")
    assert proc.returncode == 0, proc.stderr
    staged = git(repo, "cat-file", "-p", f"{head(repo)}:models/model.pkl")
    assert staged.startswith("version https://git-lfs.github.com/spec/v1")  # git holds a pointer
    out = mlm(repo, "register", "churn").stdout
    assert "churn@v0.0.1" in out and "found by artifact digest" in out
    shown = mlm(repo, "model", "show", "churn", "--format", "json").stdout
    content = (repo / "models" / "model.pkl").read_bytes()
    assert "sha256:" + hashlib.sha256(content).hexdigest() in shown
    assert os.path.getsize(repo / "models" / "model.pkl") == 256 * 64
