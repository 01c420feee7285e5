"""Trees edited as bytes (core/treebytes.py) are the trees git writes for the same entries."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from gitmlm.core import treebytes
from gitmlm.core.git import Repo
from tests.helpers import git

BLOB, TREE, EXEC, LINK = 0o100644, 0o040000, 0o100755, 0o120000


def _git_tree(repo: Path, entries: dict[str, tuple[int, str]]) -> bytes:
    """The content of the tree `git mktree` writes for these entries (git sorts them itself)."""
    kinds = {BLOB: "blob", EXEC: "blob", LINK: "blob", TREE: "tree"}
    lines = "".join(f"{m:06o} {kinds[m]} {oid}\t{n}\n" for n, (m, oid) in entries.items())
    run = {"cwd": repo, "check": True, "capture_output": True}
    tree = subprocess.run(["git", "mktree"], input=lines.encode(), **run).stdout.decode().strip()
    return subprocess.run(["git", "cat-file", "tree", tree], **run).stdout


def test_random_edits_write_the_tree_git_writes(repo: Path) -> None:
    r = Repo.open(repo)
    blob = r.write_blob(b"x")
    sub = r.write_fanout(None, {"f/g": blob})
    rng = random.Random(12)
    # Names that sort differently as folders ("a/" > "a-b") and as files, and non-ASCII ones.
    names = ["a", "a-b", "a.b", "a0", "ab", "b", "é", "z", "zz"] + [
        f"{rng.randrange(1024):03x}" for _ in range(60)
    ]
    entries: dict[str, tuple[int, str]] = {}
    current = treebytes.EMPTY
    for _ in range(40):
        changes: dict[str, tuple[int, str] | None] = {}
        for name in rng.sample(names, 6):
            changes[name] = rng.choice(
                [None, (BLOB, blob), (TREE, sub), (EXEC, blob), (LINK, blob)]
            )
        current = treebytes.edit(current, changes)
        for name, entry in changes.items():
            entries.pop(name, None)
            if entry is not None:
                entries[name] = entry
        raw = _git_tree(repo, entries)
        assert treebytes.data(current) == raw
        assert treebytes.parse(raw) == current
        for name in names:
            assert treebytes.find(current, name) == entries.get(name)


def test_notes_written_by_bytes_read_back_in_git(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    blobs = [r.write_blob(f"schema = 1\n# {i}\n".encode()) for i in range(3)]
    tip = r.write_notes("refs/notes/t", None, {head: blobs[0], "mlm-runs/x": _empty(r)}, "one")
    tip = r.write_notes("refs/notes/t", tip, {head: blobs[1]}, "two")
    r.update_ref("refs/notes/t", tip, None)
    assert git(repo, "notes", "--ref", "refs/notes/t", "show", head) == "schema = 1\n# 1\n"
    git(repo, "fsck", "--strict", "--no-progress")
    tip = r.write_notes("refs/notes/t", tip, {head: None, "mlm-runs/x": None}, "three")
    assert git(repo, "ls-tree", "-r", tip) == ""


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(ValueError):
        treebytes.edit(treebytes.EMPTY, {"a/b": (BLOB, "0" * 40)})


def _empty(r: Repo) -> str:
    return r.write_fanout(None, {})
