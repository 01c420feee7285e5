"""Ref moves in-process (libgit2): a compare-and-swap under git's own lock file, with the reflog
git would write, safe beside git writing the same ref."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gitmlm.core import notes as store
from gitmlm.core.git import CasFailed, Repo
from gitmlm.errors import MlmError
from tests.helpers import git

REF = "refs/notes/mlm-test"


def _commits(r: Repo, n: int) -> list[str]:
    out: list[str] = []
    for i in range(n):
        out.append(r.write_commit(tuple(out[-1:]), f"c{i}"))
    return out


def test_a_ref_move_is_a_compare_and_swap_with_git_s_reflog(repo: Path) -> None:
    r = Repo.open(repo)
    a, b, c = _commits(r, 3)
    r.update_ref(REF, a, None, "gitmlm: one")
    with pytest.raises(CasFailed):
        r.update_ref(REF, b, None)  # exists already
    with pytest.raises(CasFailed):
        r.update_ref(REF, c, b)  # not where we think
    assert r.ref(REF) == a
    r.update_ref(REF, b, a, "gitmlm: two")
    git(repo, "update-ref", REF, c, b)  # git moves it under us
    with pytest.raises(CasFailed):
        r.update_ref(REF, a, b)
    assert r.ref(REF) == c
    with pytest.raises(CasFailed):
        r.update_ref("refs/notes/mlm-none", a, b)  # expected to exist
    # git reads the reflog we wrote (notes refs are logged in a repository with a work tree)
    shown = git(repo, "reflog", "show", "--format=%H %gs", REF).splitlines()
    assert shown[1:] == [f"{b} gitmlm: two", f"{a} gitmlm: one"]
    git(repo, "fsck", "--no-progress")


def test_a_lock_held_by_another_writer_makes_us_retry_never_clobber(repo: Path) -> None:
    r = Repo.open(repo)
    a, b = _commits(r, 2)
    r.update_ref(REF, a, None)
    lock = repo / ".git" / (REF + ".lock")
    lock.write_text(b + "\n")  # git update-ref in the middle of its own move
    with pytest.raises(CasFailed):
        r.update_ref(REF, b, a)
    assert lock.read_text() == b + "\n" and r.ref(REF) == a
    lock.unlink()
    r.update_ref(REF, b, a)
    assert r.ref(REF) == b


def test_a_bad_ref_name_is_an_error_not_a_retry(repo: Path) -> None:
    r = Repo.open(repo)
    (a,) = _commits(r, 1)
    with pytest.raises(MlmError):
        r.update_ref("refs/notes/bad..name", a, None)
    r.update_ref("refs/notes/x", a, None)
    with pytest.raises(MlmError):
        r.update_ref("refs/notes/x/y", a, None)  # refs/notes/x is a file, not a folder


def test_git_moving_the_same_ref_meanwhile_loses_nothing(repo: Path) -> None:
    """Our moves (libgit2) and git's (`git update-ref REF NEW OLD`) on one notes ref at once.

    (Plain `git notes add` moves its ref without comparing: it is no safe writer to race.)"""
    r = Repo.open(repo)
    theirs = _commits(r, 20)
    mine = r.head_commit()
    store.put_runs(r, REF, mine, {"01j0000000000000000000zzzz": {"name": "first"}}, "gitmlm")
    script = "".join(
        f"while :; do old=$(git rev-parse {REF}) && git update-ref refs/notes/tmp-x $old && "
        f"git notes --ref refs/notes/tmp-x add -m 'schema = 1' {c} && "
        f"git update-ref {REF} $(git rev-parse refs/notes/tmp-x) $old 2>/dev/null && break; done\n"
        for c in theirs
    )
    foreign = subprocess.Popen(["sh", "-c", script], cwd=repo)
    i = 0
    while i < 30 or foreign.poll() is None:  # ours keep coming for as long as git writes
        run_id = f"01j0000000000000000000{i:04d}"
        store.put_runs(r, REF, mine, {run_id: {"name": f"r{i}"}}, f"gitmlm: run {i}")
        i += 1
        time.sleep(0.005)  # a run's own work: git's writer gets its turns too
    assert foreign.wait() == 0
    entries = store.snapshot(r, REF).entries
    assert all(entries.get(c) for c in theirs)
    doc = store.read_doc(r, entries[mine])
    assert sorted(t["name"] for t in doc.values()) == sorted(
        ["first"] + [f"r{n}" for n in range(i)]
    )
