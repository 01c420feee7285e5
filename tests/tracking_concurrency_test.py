from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gitmlm.core import notes as store
from gitmlm.core import refs
from gitmlm.core.git import Repo
from gitmlm.tracking import record as tracking
from tests.helpers import git

WRITER = """\
import sys, gitmlm
for i in range(25):
    with gitmlm.start_run(name=f"w{sys.argv[1]}-{i}", params={"writer": int(sys.argv[1])}) as run:
        run.log_metric("i", i, step=0)
"""


def test_eight_writers_lose_no_run(repo: Path) -> None:
    script = repo / "writer.py"
    script.write_text(WRITER)
    # Committed: an untracked script would make every run a checkpoint of uncommitted code.
    git(repo, "add", "writer.py")
    git(repo, "commit", "-q", "-m", "writer")
    procs = [subprocess.Popen([sys.executable, str(script), str(w)], cwd=repo) for w in range(8)]
    assert [p.wait() for p in procs] == [0] * 8
    listing = tracking.list_runs(Repo.open(repo))
    assert len(listing.runs) == 200
    assert {r.name for r in listing.runs} == {f"w{w}-{i}" for w in range(8) for i in range(25)}
    assert all(
        r.status == "finished" and r.metrics == {"i": float(r.name.split("-")[1])}
        for r in listing.runs
    )
    # 200 runs on one commit: an index note whose run store holds every series.
    r = Repo.open(repo)
    snap = store.snapshot(r, refs.SERIES)
    series = store.read_doc(r, snap.entries[r.head_commit()])
    assert sum(1 for table in series.values() if "i" in table) == 200
    shown = git(repo, "log", "-1", "--notes=mlm")
    assert "200 runs on this commit" in shown and "[latest." in shown


def test_a_foreign_notes_writer_is_not_overwritten(repo: Path) -> None:
    """A ref moved by something that is not gitmlm (plain git notes) makes us retry, not clobber."""
    r = Repo.open(repo)
    active = tracking.begin(r, "mine")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    git(repo, "notes", "--ref", "refs/notes/mlm", "add", "-m", "schema = 1\n", "HEAD")
    tracking.finish(r, active.record, "finished", 0)
    assert git(repo, "notes", "--ref", "refs/notes/mlm", "show", "HEAD").strip() == "schema = 1"
    assert [x.name for x in tracking.list_runs(r).runs] == ["mine"]
