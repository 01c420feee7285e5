"""Reading blobs: a loose one straight from its file, anything else through libgit2, with the
same bytes and the same refusals either way."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pygit2
import pytest

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from tests.helpers import git


def _write_blob(repo: Path, data: bytes) -> str:
    got = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True
    )
    return got.stdout.decode().strip()


def _loose(repo: Path, oid: str) -> Path:
    return repo / ".git" / "objects" / oid[:2] / oid[2:]


def test_loose_and_packed_blobs_read_the_same(repo: Path) -> None:
    datas = [b"", b"schema = 1\n", os.urandom(100_000), b"\0 a nul first\n"]
    oids = [_write_blob(repo, data) for data in datas]
    r = Repo.open(repo)
    assert all(_loose(repo, oid).exists() for oid in oids)
    assert [r.blob(oid) for oid in oids] == datas
    assert [r._loose_blob(oid) for oid in oids] == datas  # the file was read, not libgit2
    for i, oid in enumerate(oids):
        git(repo, "update-ref", f"refs/keep/{i}", oid)  # kept by gc, into its pack
    git(repo, "gc", "-q", "--prune=now")
    assert not any(_loose(repo, oid).exists() for oid in oids)
    r = Repo.open(repo)
    assert [r._loose_blob(oid) for oid in oids] == [None] * len(oids)
    assert [r.blob(oid) for oid in oids] == datas


def test_what_is_not_a_good_loose_blob_goes_to_libgit2(repo: Path) -> None:
    r = Repo.open(repo)
    tree = git(repo, "write-tree").strip()
    assert r._loose_blob(tree) is None  # another kind
    with pytest.raises(MlmError, match="not a blob"):
        r.blob(tree)
    oid = _write_blob(repo, b"right bytes\n")
    path = _loose(repo, oid)
    path.chmod(0o644)
    for damaged in (b"not zlib", zlib.compress(b"blob 99\0right bytes\n")):
        path.write_bytes(damaged)
        assert r._loose_blob(oid) is None
        with pytest.raises(pygit2.GitError):  # libgit2 reads the same file and says why
            r.blob(oid)
    with pytest.raises(KeyError):
        r.blob("0" * 40)  # missing, as before
    for odd in ("../../config", oid.upper(), oid[:20], f"{oid}/x"):
        assert r._loose_blob(odd) is None  # never a path outside objects/


def test_a_moved_object_directory_is_left_to_libgit2(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = _write_blob(repo, b"here\n")
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(repo / ".git" / "objects"))
    r = Repo.open(repo)
    assert r._loose_blob(oid) is None
    assert r.blob(oid) == b"here\n"
