"""Code checkpointing benchmark: `python bench/checkpoint_bench.py [--files 10000] [--modified 50]`.

Prints each figure beside a reference measured in the same run on the same tree, the ratio,
and the target:
  1. a checkpoint of a dirty tree (N tracked files, M modified, one untracked) vs
     `git stash create` (which builds the same kind of commit, but only of tracked files);
  2. the `mlm-checkpoint` hook, as a new process, on a commit that touches no outputs, vs the
     bare interpreter start;
  3. the `mlm-post-commit` hook, as a new process, after a commit, with K snapshot runs around.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitmlm.checkpoints import checkpoint
from gitmlm.core.git import Repo
from gitmlm.tracking import record as tracking

ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_repo(base: Path, files: int, modified: int) -> Path:
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    per_dir = 100
    for i in range(files):
        d = repo / "src" / f"pkg{i // per_dir:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i % per_dir:03d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 20)
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\noutputs = ["models/*.pkl"]\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "10k files")
    step = max(1, files // modified)
    for i in range(0, step * modified, step):
        d = repo / "src" / f"pkg{i // per_dir:03d}"
        (d / f"mod{i % per_dir:03d}.py").write_text(f"# module {i}\nVALUE = {i + 1}\n")
    (repo / "scratch.py").write_text("print('untracked')\n")
    git(repo, "status", "--porcelain")  # a warm index, as after any editor or git status
    return repo


def row(what: str, ours: float, ref_name: str, ref: float, target: float) -> None:
    verdict = "ok" if ours <= target else "OVER TARGET"
    print(
        f"{what:<44} {ours * 1000:8.1f} ms   {ref_name:<26} {ref * 1000:8.1f} ms   "
        f"ratio {ours / ref:5.2f}   target <= {target * 1000:.0f} ms  {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--modified", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitmlm-bench-") as tmp:
        repo = make_repo(Path(tmp), args.files, args.modified)
        os.chdir(repo)
        os.environ.update({k: v for k, v in ENV.items() if k.startswith(("GIT_", "PYTHON"))})
        r = Repo.open(repo)
        counter = iter(range(10**6))

        def snapshot() -> None:
            code = checkpoint.capture(r, f"01bench{next(counter):019d}")
            assert code.checkpoint == "snapshot"

        stash = median_time(lambda: git(repo, "stash", "create"), args.repeat)
        ours = median_time(snapshot, args.repeat)
        print(f"tree: {args.files} tracked files, {args.modified} modified, 1 untracked")
        row("checkpoint (capture, in process)", ours, "git stash create", stash, 0.2)

        # A whole `git mlm run -- true` on this tree, for scale (process start + notes).
        run_cmd = [sys.executable, "-m", "gitmlm", "run", "--", "true"]
        whole = median_time(
            lambda: subprocess.run(run_cmd, env=ENV, check=True, capture_output=True), 3
        )
        print(f"{'git mlm run -- true (whole command)':<44} {whole * 1000:8.1f} ms")

        # The pre-commit hook on a commit touching no outputs, as git would start it.
        git(repo, "add", "src/pkg000/mod000.py")
        bare = median_time(
            lambda: subprocess.run([sys.executable, "-c", "pass"], env=ENV, check=True), 10
        )
        hook_cmd = [sys.executable, "-m", "gitmlm.hooks.checkpoint"]
        hook = median_time(lambda: subprocess.run(hook_cmd, env=ENV, check=True), 10)
        row("mlm-checkpoint hook, no outputs (process)", hook, "python -c pass", bare, 0.2)

        # The post-commit hook after a commit, with the snapshot runs made above around.
        for _ in range(20):
            tracking.finish(r, tracking.begin(r, "bench").record, "finished", 0)
        git(repo, "commit", "-q", "-m", "commit")
        post_cmd = [sys.executable, "-m", "gitmlm.hooks.post_commit"]
        post = median_time(lambda: subprocess.run(post_cmd, env=ENV, check=True), 5)
        commit_time = median_time(lambda: git(repo, "commit", "-q", "--allow-empty", "-m", "e"), 5)
        n = len(r.refs("refs/mlm/checkpoints/"))
        what = f"mlm-post-commit hook, {n} checkpoints"
        row(what, post, "git commit --allow-empty", commit_time, 0.2)
        os.chdir(ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
