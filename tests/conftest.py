"""Hermetic git for every test: temporary HOME, no system config, fixed identity and dates."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from tests.helpers import DATE, ROOT, S3_ENV, git, make_bucket, start_moto


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    for var in list(os.environ):
        if var.startswith(("GIT_", "GITMLM_", "AWS_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
        monkeypatch.setenv(f"GIT_{who}_DATE", DATE)
    # libgit2 reads its config search path once per process: point it at the temporary home.
    for level in (
        pygit2.enums.ConfigLevel.GLOBAL,
        pygit2.enums.ConfigLevel.XDG,
        pygit2.enums.ConfigLevel.SYSTEM,
    ):
        pygit2.settings.search_path[level] = str(home)
    # `git mlm` must run this checkout's code, whichever checkout the tests run from.
    bindir = home / "bin"
    bindir.mkdir()
    shim = bindir / "git-mlm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gitmlm "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository with one commit, as the current directory."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(path)
    yield path


def write_script(path: Path, body: str) -> Path:
    path.write_text("import gitmlm\n" + body)
    return path


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3 API on 127.0.0.1 (moto's standalone server, one per test process): its URL."""
    proc, url = start_moto()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the loopback S3 server, reached as a user's S3 is: credentials and
    endpoint (AWS_ENDPOINT_URL) from the environment. Its name."""
    import re

    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    make_bucket(moto_server, bucket)
    return bucket
