from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitmlm.core.git import Repo
from tests.helpers import commit_all, git


def _git_says_clean(repo: Path) -> bool:
    return git(repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_the_in_process_verdict_agrees_with_git_status(repo: Path) -> None:
    """`unchanged` (libgit2's status) decides whether a run needs a checkpoint: it must never
    call a tree clean that git calls dirty."""
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "m.py").write_text("x = 1\n")
    commit_all(repo, "base")
    r = Repo.open(repo)
    steps = [
        ("clean", lambda: None),
        ("ignored file", lambda: (repo / "out.log").write_text("log\n")),
        ("same-size edit", lambda: (repo / "pkg" / "m.py").write_text("x = 2\n")),
        ("staged", lambda: git(repo, "add", "pkg/m.py")),
        ("committed", lambda: commit_all(repo, "edit")),
        ("untracked in a new folder", lambda: (repo / "new" / "deep").mkdir(parents=True)),
        ("untracked file", lambda: (repo / "new" / "deep" / "a.py").write_text("a\n")),
        ("removed again", lambda: os.remove(repo / "new" / "deep" / "a.py")),
        ("deleted tracked", lambda: os.remove(repo / "pkg" / "m.py")),
        ("restored", lambda: git(repo, "checkout", "--", "pkg/m.py")),
        (
            "intent to add",
            lambda: (repo / "i.py").write_text("i\n") or git(repo, "add", "-N", "i.py"),
        ),
    ]
    for what, step in steps:
        step()
        assert r.unchanged() is _git_says_clean(repo), what


def test_a_hook_index_or_a_submodule_file_defers_to_git(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Repo.open(repo)
    assert r.unchanged() is True
    with monkeypatch.context() as m:
        m.setenv("GIT_INDEX_FILE", str(repo / ".git" / "index"))
        assert r.unchanged() is None
    (repo / ".gitmodules").write_text("")
    assert r.unchanged() is None
