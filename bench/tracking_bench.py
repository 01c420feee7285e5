"""Benchmark of experiment tracking (issue: foundation). Prints each figure beside its reference.

    python bench/tracking_bench.py [--commits 2000] [--runs 10000] [--repeat 21] [--log-only]

Builds a repository with COMMITS commits and RUNS runs (10 params, 5 metrics each) in a temp
folder, then times: `git mlm log -n 1000` against `git log --notes=mlm -n 1000` on the same
repository (process start included: `git mlm` is the console script of this checkout installed
as the README says, `pip install -e .`, into a temporary venv that sees this Python's packages;
bytecode compiled, as after any install; medians of interleaved repeats, load average printed);
`gitmlm.runs(where=...)` over every run; one run with 10 params and 3 metrics x 1000 steps
in-process; cold starts of `git mlm --version` and `git mlm log -n 10`; the cost of one
`log_metric` (journalled before it returns, so a SIGKILL loses nothing) against a bare
`write` of the same line and against a list append (what buffering cost).
`--log-metric-only` measures the last alone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This checkout's gitmlm, here and in the commands timed (not whichever one pip installed).
ROOT = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)

import gitmlm
from gitmlm.core import codec, ids, refs
from gitmlm.core.git import Repo
from gitmlm.core.records import Run


def interleaved(cmds: list[list[str]], cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    """Median wall time of each command, run in turns so that load from other work on the
    machine falls on all of them alike."""
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(repeat):
        for cmd, out in zip(cmds, times, strict=True):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def installed(tmp: Path) -> dict[str, str]:
    """The environment of a user who ran `python -m pip install -e .` in a venv: its bin first
    on PATH, no PYTHONPATH. Bytecode is written (to a folder of the temporary tree), whatever
    this shell's PYTHONDONTWRITEBYTECODE says, as pip compiles it on install."""
    venv = tmp / "venv"
    python = str(venv / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    # This Python's pip and setuptools (the venv sees them): no download.
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", ROOT],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHOME")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    found = subprocess.run(
        [python, "-c", "import gitmlm; print(gitmlm.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).parent.parent == Path(ROOT), f"the venv imports another gitmlm: {found}"
    return env


def build(root: Path, commits: int, runs: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    lines = []
    for i in range(commits):
        msg = f"commit {i}\n"
        lines.append(
            f"commit refs/heads/main\nmark :{i + 1}\n"
            f"committer Bench <b@example.com> {1700000000 + i} +0000\n"
            f"data {len(msg)}\n{msg}"
        )
        if i:
            lines.append(f"from :{i}\n")
        content = f"v{i}\n"
        lines.append(f"M 644 inline train.py\ndata {len(content)}\n{content}\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=root, input="".join(lines).encode(), check=True
    )
    repo = Repo.open(root)
    shas = [c.oid for c in repo.walk(["main"])]
    rng = random.Random(0)
    per_commit: dict[str, dict[str, dict[str, object]]] = {}
    base_ms = 1_760_000_000_000
    for i in range(runs):
        commit = shas[i % len(shas)]
        rid = ids.new_run_id(base_ms + i)
        run = Run(
            id=rid,
            name=f"run-{i}",
            status="finished",
            started=codec.now(),
            ended=codec.now(),
            updated=codec.now(),
            commit=commit,
            branch="main",
            user="bench",
            host="bench",
            command=["python", "train.py"],
            exit_code=0,
            params={f"p{j}": rng.random() for j in range(10)},
            metrics={f"m{j}": rng.random() for j in range(5)},
            env={"python": "3.11", "platform": "Linux"},
        )
        per_commit.setdefault(commit, {})[rid] = codec.run_to_dict(run)
    updates: dict[str, str | None] = {
        c: repo.write_blob(codec.encode_doc(doc)) for c, doc in per_commit.items()
    }
    tip = repo.write_notes(refs.RUNS, None, updates, "bench")
    repo.update_ref(refs.RUNS, tip, None)


def log_metric_cost(n: int = 20000) -> None:
    """Microseconds per log_metric, beside the floor (a bare append of the line) in this run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        (root / "train.py").write_text("pass\n")
        subprocess.run(["git", "add", "."], cwd=root, check=True)
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"],
            cwd=root,
            check=True,
        )
        here = os.getcwd()
        os.chdir(root)
        try:
            with gitmlm.start_run(name="cost") as run:
                start = time.perf_counter()
                for step in range(n):
                    run.log_metric("loss", 1 / (step + 1), step=step)
                ours = (time.perf_counter() - start) / n * 1e6
            line = b'{"k":"metrics","v":[["loss",0.5,12345]]}\n'
            floor_file = root / "floor.jsonl"
            start = time.perf_counter()
            for _ in range(n):
                fd = os.open(floor_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(fd, line)
                os.close(fd)
            reopen = (time.perf_counter() - start) / n * 1e6
            fd = os.open(floor_file, os.O_WRONLY | os.O_APPEND, 0o644)
            start = time.perf_counter()
            for _ in range(n):
                os.write(fd, line)
            floor = (time.perf_counter() - start) / n * 1e6
            os.close(fd)
            buffered: list[list[object]] = []
            start = time.perf_counter()
            for step in range(n):
                buffered.append(["loss", 1 / (step + 1), step])
            memory = (time.perf_counter() - start) / n * 1e6
        finally:
            os.chdir(here)
    print(
        f"log_metric, journalled before it returns: {ours:.1f} us per call over {n} calls "
        f"(floor, a bare write(2) of the line to an open file: {floor:.1f} us, ratio "
        f"{ours / floor:.1f}x; open/write/close per line: {reopen:.1f} us; a list append, as "
        f"the old 1-second buffer did: {memory:.2f} us)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--log-metric-only", action="store_true")
    parser.add_argument("--log-only", action="store_true", help="stop after `git mlm log`")
    parser.add_argument("--repeat", type=int, default=21, help="repeats of `git mlm log`")
    args = parser.parse_args()
    if not args.log_only:
        log_metric_cost()
    if args.log_metric_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        t0 = time.perf_counter()
        build(root, args.commits, args.runs)
        print(
            f"built {args.commits} commits / {args.runs} runs in {time.perf_counter() - t0:.1f} s"
        )
        env = installed(Path(tmp))
        mlm_log = ["git", "mlm", "log", "-n", "1000"]
        start = time.perf_counter()
        subprocess.run(mlm_log, cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)
        cold = time.perf_counter() - start
        git_log = ["git", "log", "--notes=mlm", "-n", "1000"]
        ours, ref = interleaved([mlm_log, git_log], root, env, args.repeat)
        print(
            f"git mlm log -n 1000: {ours:.3f} s (first, parsing TOML: {cold:.3f} s) | "
            f"git log --notes=mlm -n 1000: {ref:.3f} s | ratio {ours / ref:.2f}x (target <= 2x; "
            f"medians of {args.repeat}, load average {os.getloadavg()[0]:.1f})"
        )
        if args.log_only:
            return

        os.chdir(root)
        gitmlm.runs()  # warm the parse cache, as any earlier listing has
        times = []
        for _ in range(5):
            start = time.perf_counter()
            df = gitmlm.runs(where="metrics.m0 > 0.5")
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        mlflow = 0.13 * args.runs / 1000
        print(
            f"gitmlm.runs(where='metrics.m0 > 0.5') over {args.runs} runs: {t:.3f} s "
            f"({len(df)} rows; target <= 0.5 s; MLflow sqlite: 0.13 s per 1,000 runs = "
            f"{mlflow:.2f} s at this size, ratio {t / mlflow:.2f}x)"
        )

        times = []
        for _ in range(5):
            start = time.perf_counter()
            with gitmlm.start_run(name="bench", params={f"p{j}": j for j in range(10)}) as run:
                for step in range(1000):
                    run.log_metrics(
                        {"loss": 1 / (step + 1), "acc": step / 1000, "lr": 0.1}, step=step
                    )
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        print(
            f"one run, 10 params, 3 metrics x 1000 steps: {t:.3f} s "
            f"(target <= 0.1 s; MLflow file store 1.9 s: ratio {t / 1.9:.3f}x)"
        )

        for label, cmd in (
            ("git mlm --version", ["git", "mlm", "--version"]),
            ("git mlm log -n 10", ["git", "mlm", "log", "-n", "10"]),
        ):
            t, py = interleaved([cmd, [sys.executable, "-c", "pass"]], root, env, 5)
            imports = subprocess.run(
                [sys.executable, "-X", "importtime", "-m", "gitmlm", *cmd[2:]],
                cwd=root,
                capture_output=True,
                text=True,
            ).stderr
            pandas = "pandas" in {ln.split("|")[-1].strip() for ln in imports.splitlines()}
            print(
                f"{label} cold start: {t:.3f} s (target <= 0.25 s; bare python start "
                f"{py:.3f} s, ratio {t / py:.1f}x; imports pandas: {pandas})"
            )


if __name__ == "__main__":
    main()
