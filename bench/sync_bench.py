"""Benchmark `git mlm sync` / `fetch` and the run-level notes merge.

    python bench/sync_bench.py [--runs 10000] [--commits 2000]

1. Sync of N runs (default 10,000 on 2,000 commits) from one clone into a fresh clone over a
   real `git daemon` on 127.0.0.1: `git mlm fetch` (fetch + merge) against a plain
   `git fetch` of the same refs into another fresh clone, as a ratio. The first push
   (`git mlm sync` from the recording clone) is shown beside a plain `git push` likewise.
2. A merge of two notes refs, each with 5,000 runs on the same 1,000 commits (every note
   differs on the two sides): target <= 1 s; git's own `git notes merge -s cat_sort_uniq`
   (a line-wise text merge, which scrambles TOML) on the same refs is the reference.

Notes are generated in bulk (one notes commit, one `write_notes` call), not run by run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitmlm.core import (
    codec,
    ids,
    refs,
)
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.sync import merge, sync
from tests.gitdaemon import GitDaemon

ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, input=input
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def mlm(cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gitmlm", *args],
        cwd=cwd,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"git mlm {' '.join(args)} failed: {proc.stderr}")


def make_history(path: Path, commits: int) -> list[str]:
    """A linear history of `commits` commits on main, made by one `git fast-import`."""
    git(path.parent, "init", "-q", "-b", "main", str(path))
    lines = []
    for i in range(commits):
        body = f"step {i}\n"
        msg = f"commit {i}"
        lines += [
            "commit refs/heads/main",
            f"mark :{i + 1}",
            f"committer bench <bench@example.com> {1700000000 + i} +0000",
            f"data {len(msg)}",
            msg,
        ]
        if i:
            lines.append(f"from :{i}")
        lines += [f"M 100644 inline train_{i % 50}.py", f"data {len(body)}", body]
    git(path, "fast-import", "--quiet", input="\n".join(lines) + "\n")
    return git(path, "rev-list", "--reverse", "main").split()


def fake_run(commit: str, n: int) -> tuple[str, dict[str, object]]:
    rid = ids.new_run_id(1_700_000_000_000 + n)
    now = codec.now()
    run = Run(
        id=rid,
        name=f"run-{n}",
        status="finished",
        started=now,
        ended=now,
        updated=now,
        commit=commit,
        user="bench",
        host="bench-host",
        pid=1000 + n,
        command=["python", "train.py", "--lr", "0.1"],
        exit_code=0,
        branch="main",
        params={"lr": 0.1 * (n % 7 + 1), "epochs": 10 + n % 5, "model": {"depth": n % 9}},
        metrics={"acc": (n % 100) / 100, "loss": 1 / (n + 1), "f1": 0.5},
        tags={"team": "bench"},
        env={"python": "3.11", "packages": {"gitmlm": "0.1.0", "numpy": "2.0"}},
    )
    return rid, codec.run_to_dict(run)


def write_runs(path: Path, ref: str, commits: list[str], per_commit: int, offset: int) -> int:
    """Notes with `per_commit` runs on each commit, written as one notes commit."""
    repo = Repo.open(path)
    updates: dict[str, str | None] = {}
    n = offset
    for c in commits:
        doc = {}
        for _ in range(per_commit):
            rid, table = fake_run(c, n)
            doc[rid] = table
            n += 1
        updates[c] = repo.write_blob(codec.encode_doc(doc))
    base = repo.ref(ref)
    tip = repo.write_notes(ref, base, updates, "bench runs")
    repo.update_ref(ref, tip, base)
    return n - offset


def timed(fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn: object) -> tuple[float, float]:
    """(wall, CPU) seconds, CPU counting this process and the git processes it waited for.

    On a shared machine the wall time swings with other load; CPU time barely moves.
    """
    assert callable(fn)
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(fn)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    return wall, cpu


def line(label: str, value: float, ref_label: str, ref: float, target: str = "") -> None:
    ratio = value / ref if ref else float("inf")
    extra = f"   target {target}" if target else ""
    print(f"{label:<44} {value:7.3f} s   {ref_label} {ref:7.3f} s   ratio {ratio:5.2f}x{extra}")


def bench_sync(work: Path, runs: int, commits: int) -> None:
    srv = work / "srv"
    srv.mkdir()
    git(srv, "init", "-q", "--bare", "-b", "main", "remote.git")
    git(srv, "init", "-q", "--bare", "-b", "main", "plain.git")
    src = work / "src"
    history = make_history(src, commits)
    per = max(1, runs // len(history))
    made = write_runs(src, refs.RUNS, history, per, 0)
    with GitDaemon(srv) as daemon:
        git(src, "remote", "add", "origin", daemon.url("remote.git"))
        git(src, "remote", "add", "plain", daemon.url("plain.git"))
        git(src, "push", "-q", "origin", "main")
        git(src, "push", "-q", "plain", "main")
        t_push = timed(lambda: mlm(src, "sync", "origin"))
        t_plain_push = timed(
            lambda: git(
                src,
                "push",
                "-q",
                "plain",
                f"{refs.NOTES_GLOB}:{refs.NOTES_GLOB}",
                f"{refs.PREFIX}*:{refs.PREFIX}*",
            )
        )
        # Two fresh clones of the code; one fetches the records with gitmlm, one with git.
        a, b = work / "fresh-mlm", work / "fresh-git"
        git(work, "clone", "-q", daemon.url("remote.git"), str(a))
        git(work, "clone", "-q", daemon.url("remote.git"), str(b))
        t_fetch = timed(lambda: mlm(a, "fetch"))
        specs = [
            f"+{refs.NOTES_GLOB}:refs/notes/remotes/origin/mlm*",
            f"+{refs.PREFIX}*:refs/mlm-remotes/origin/*",
        ]
        t_plain = timed(lambda: git(b, "fetch", "-q", "origin", *specs))
        fresh = Repo.open(a)
        assert len(fresh.notes(fresh.ref(refs.RUNS))) == len(history)  # every note is ours
        # A second sync with nothing new: the everyday case.
        t_noop = timed(lambda: mlm(a, "sync"))
        t_plain_noop = timed(lambda: git(b, "fetch", "-q", "origin", *specs))
    print(f"sync: {made} runs on {len(history)} commits over git daemon on 127.0.0.1")
    line("git mlm fetch into a fresh clone", t_fetch, "git fetch", t_plain)
    line("git mlm sync, first push to empty remote", t_push, "git push", t_plain_push)
    line("git mlm sync, nothing new", t_noop, "git fetch", t_plain_noop)


def bench_merge(work: Path) -> None:
    path = work / "merge"
    history = make_history(path, 1000)
    write_runs(path, "refs/notes/mlm-ours", history, 5, 0)
    write_runs(path, "refs/notes/mlm-theirs", history, 5, 100_000)
    repo = Repo.open(path)
    theirs = repo.ref("refs/notes/mlm-theirs")
    assert theirs is not None
    ours = repo.ref("refs/notes/mlm-ours")
    git(path, "update-ref", "refs/notes/mlm-git", ours or "")

    def ours_merge() -> None:
        change = sync.merge_notes_ref(repo, "refs/notes/mlm-ours", theirs, "bench")
        assert change is not None and change.runs_added == 5000, change

    def git_merge() -> None:
        git(path, "notes", "--ref", "mlm-git", "merge", "-q", "-s", "cat_sort_uniq", theirs)

    t_git, c_git = cpu_timed(git_merge)
    t_cold, c_cold = cpu_timed(ours_merge)
    # Again from the same start, with our notes parsed and cached as `git mlm runs` leaves them.
    repo.update_ref("refs/notes/mlm-ours", ours or "", repo.ref("refs/notes/mlm-ours"))
    store.read_all(repo, store.snapshot(repo, "refs/notes/mlm-ours"))
    t_warm, c_warm = cpu_timed(ours_merge)
    merged = repo.notes(repo.ref("refs/notes/mlm-ours"))
    total = sum(len(codec.decode_doc(repo.blob(b))) for b in merged.values())
    assert total == 10_000, total
    # The pure record merge alone, without git, for scale.
    mine, their_notes = repo.notes(ours), repo.notes(theirs)
    docs = [
        (codec.decode_doc(repo.blob(blob)), codec.decode_doc(repo.blob(their_notes[c])))
        for c, blob in mine.items()
    ]
    t_pure = timed(lambda: [merge.merge_docs(x, y) for x, y in docs])
    print("merge: two notes refs, 5,000 runs each on the same 1,000 commits")
    line("gitmlm run-level merge (cold)", t_cold, "git notes merge", t_git, "<= 1 s")
    line("  the same, CPU time", c_cold, "git notes merge", c_git, "<= 1 s")
    line("gitmlm run-level merge (ours listed before)", t_warm, "git notes merge", t_git, "<= 1 s")
    line("  the same, CPU time", c_warm, "git notes merge", c_git, "<= 1 s")
    print(f"{'  of which merge_docs on parsed notes':<44} {t_pure:7.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitmlm-sync-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        ENV["HOME"] = str(home)
        os.environ["HOME"] = str(home)
        os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
        for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME"):
            os.environ[key] = ENV[key]
        os.environ["GIT_COMMITTER_EMAIL"] = ENV["GIT_COMMITTER_EMAIL"]
        bench_sync(Path(tmp), args.runs, args.commits)
        bench_merge(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
