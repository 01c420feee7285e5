"""Protected stages: ssh-signed tags checked against an allowed-signers file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import gitmlm
from tests.helpers import git, mlm, setup_project, train

TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"

[registry]
stages = ["dev", "production"]
allowed_signers = ".mlm/allowed_signers"

[registry.gates.production]
signed = true
"""


def keygen(path: Path) -> Path:
    assert shutil.which("ssh-keygen"), "ssh-keygen is needed (apt-get install openssh-client)"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(path)], check=True
    )
    return path


def test_signed_stage_accepts_allowed_signers_only(repo: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "key")
    other = keygen(tmp_path / "other")
    (repo / ".mlm").mkdir()
    pub = (tmp_path / "key.pub").read_text().split()
    (repo / ".mlm" / "allowed_signers").write_text(f"test@example.com {pub[0]} {pub[1]}\n")
    git(repo, "add", ".mlm")
    setup_project(repo, TOML)
    train(repo, 0.9)
    mlm(repo, "register", "churn")
    train(repo, 0.95)
    mlm(repo, "register", "churn")

    unkeyed = mlm(repo, "promote", "churn", "production", "v0.0.1", check=False)
    assert unkeyed.returncode == 1 and "user.signingkey" in unkeyed.stderr
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key))
    mlm(repo, "promote", "churn", "production", "v0.0.1")
    mlm(repo, "promote", "churn", "dev", "v0.0.2")  # dev is not protected: a plain tag
    assert "SSH SIGNATURE" in git(repo, "cat-file", "tag", "churn#production#3")
    assert "SSH SIGNATURE" not in git(repo, "cat-file", "tag", "churn#dev#4")
    verified = mlm(repo, "models", "--verify", "--format", "json")
    assert json.loads(verified.stdout)[0]["stages"]["production"] == "v0.0.1"
    assert mlm(repo, "ci", "check").returncode == 0

    # Tags that would move production to v0.0.2 without a valid signature: a hand-made
    # unsigned one, one signed by a key the allowed-signers file does not list, and a forgery
    # (a good signature pasted onto a changed body). Every read path ignores them, says so,
    # and answers the last validly signed holder; --verify and ci check fail on them.
    v2 = git(repo, "rev-parse", "churn@v0.0.2^{commit}").strip()
    later = {**os.environ, "GIT_COMMITTER_DATE": "1700000900 +0000"}  # newest by GTO's clock
    good = git(repo, "cat-file", "tag", "churn#production#3")
    forged = good.replace(git(repo, "rev-parse", "churn@v0.0.1^{commit}").strip(), v2)
    forged = forged.replace("tag churn#production#3", "tag churn#production#9")
    forged = forged.replace('version = "v0.0.1"', 'version = "v0.0.2"')
    makers = {
        "not signed": ["git", "tag", "-a", "churn#production#9", "-m", "sneaky", v2],
        "other key": [
            *("git", "-c", f"user.signingkey={other}", "tag", "-s", "churn#production#9"),
            *("-m", "x", v2),
        ],
        "forged": None,
    }
    for what, argv in makers.items():
        if argv is None:
            made = subprocess.run(
                ["git", "mktag"], cwd=repo, input=forged, capture_output=True, text=True
            )
            assert made.returncode == 0, made.stderr
            git(repo, "update-ref", "refs/tags/churn#production#9", made.stdout.strip())
        else:
            subprocess.run(argv, cwd=repo, env=later, check=True, capture_output=True)
        shown = mlm(repo, "models", "--format", "json")
        assert json.loads(shown.stdout)[0]["stages"]["production"] == "v0.0.1", what
        assert "ignored churn#production#9" in shown.stderr, what
        info = mlm(repo, "model", "show", "churn#production", "--format", "json")
        assert json.loads(info.stdout)["version"] == "v0.0.1", what
        assert "ignored churn#production#9" in info.stderr, what
        with pytest.warns(UserWarning, match="ignored churn#production#9"):
            assert gitmlm.resolve("churn#production", path=str(repo)).version == "v0.0.1"
        with pytest.warns(UserWarning, match="ignored churn#production#9"):
            frame = gitmlm.registry(path=str(repo))
        assert frame.set_index("version").loc["v0.0.1", "stages"] == "production", what
        rejected = mlm(repo, "models", "--verify", "--format", "json", check=False)
        assert rejected.returncode == 1, what
        assert json.loads(rejected.stdout)[0]["stages"]["production"] == "v0.0.1"
        assert "rejected churn#production#9" in rejected.stderr
        check = mlm(repo, "ci", "check", check=False)
        assert check.returncode == 1 and "| churn#production#9 |" in check.stdout, what
        git(repo, "tag", "-d", "churn#production#9")

    # Demoting a protected stage signs too.
    mlm(repo, "demote", "churn", "production")
    assert "SSH SIGNATURE" in git(repo, "cat-file", "tag", "churn#production!#5")
    assert mlm(repo, "models", "--verify").returncode == 0

    # Withdrawing the production version by hand, unsigned, is rejected as well.
    mlm(repo, "promote", "churn", "production", "v0.0.2")
    v2_tag = "churn@v0.0.2!"
    later = {**os.environ, "GIT_COMMITTER_DATE": "1700000900 +0000"}  # GTO's tags: by time
    subprocess.run(
        ["git", "tag", "-a", v2_tag, "-m", "Deregistering churn v0.0.2", v2],
        cwd=repo,
        env=later,
        check=True,
    )
    assert (
        json.loads(mlm(repo, "models", "--format", "json").stdout)[0]["stages"]["production"]
        == "v0.0.2"
    )
    rejected = mlm(repo, "models", "--verify", "--format", "json", check=False)
    assert rejected.returncode == 1 and f"rejected {v2_tag}: not signed" in rejected.stderr
    assert json.loads(rejected.stdout)[0]["stages"]["production"] == "v0.0.2"
    git(repo, "tag", "-d", v2_tag)
    mlm(repo, "deprecate", "churn@v0.0.2")  # made by gitmlm: signed
    assert "SSH SIGNATURE" in git(repo, "cat-file", "tag", v2_tag)
    verified = mlm(repo, "models", "--verify", "--format", "json")
    assert json.loads(verified.stdout)[0]["stages"]["production"] is None
