"""Benchmark of recording many runs on one commit (issue 12). Prints each figure beside its
reference, measured in the same run: the same workload on the code of BASELINE (the last commit
before index notes), extracted from this repository's history into a temp folder.

    python bench/runs_bench.py [--runs 10000] [--writers 16] [--per-writer 100]
                               [--baseline af30cf3] [--baseline-runs 300] [--baseline-per-writer 25]
                               [--query-runs 100000] [--query-commits 10000] [--compare REV]

1. RUNS small runs (one param, one metric) on one clean commit in one process: median cost per
   run, the first and the last 1,000; the baseline's cost grows with the note, so it records
   BASELINE_RUNS only (its growth is quoted per tenth).
2. WRITERS processes x PER_WRITER runs on one commit: wall time, runs per second, every run
   there; the baseline runs WRITERS x BASELINE_PER_WRITER (a smaller note, so its throughput is
   flattered: the ratio is a lower bound).
With --compare REV, RUNS runs in one process again on this checkout and on gitmlm at REV,
   taking turns 20 runs at a time (each sees the same load on a shared machine).
3. `gitmlm.runs(where=...)` over QUERY_RUNS runs on QUERY_COMMITS commits: cold (a new process,
   nothing under .git/mlm/cache; the median of three), warm (the same process again), and a
   new process once the first saved its table (.git/mlm/cache/runtable-*.bin); then after one
   more run: the query again in the process that made it, and in a new process after yet
   another run (it reads the table saved for an earlier tip and only the notes that changed).
4. `git mlm runs --where 'metrics.m0 > 0.5' -n 5 --format csv` over the same runs, process start
   included: cold (nothing under .git/mlm/cache) and warm (the best of 3 new processes once the
   first saved what it saves), from the column table and from the row path it replaced
   (GITMLM_RUNS_ROW_PATH=1, the same checkout) in the same run, beside `git log --notes=mlm
   -n 1000`; the two paths' outputs are compared byte for byte.
Every timed process starts as after `pip install`: with bytecode compiled (into a folder of the
temporary tree), whatever this shell's PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this checkout's gitmlm, and tracking_bench beside us

ONE_PROCESS = """\
import json, os, sys, time, gitmlm
def sched():  # Linux: (ns on a CPU, ns runnable but waiting for one) of this thread
    try:
        return [int(x) for x in open("/proc/thread-self/schedstat").read().split()[:2]]
    except OSError:
        return [0, 0]
n = int(sys.argv[1])
times = []
before = sched()
for i in range(n):
    t = time.perf_counter()
    with gitmlm.start_run(params={"lr": i / n}) as run:
        run.log_metric("acc", i / n)
    times.append(time.perf_counter() - t)
after = sched()
json.dump({"times": times, "oncpu": after[0] - before[0], "waiting": after[1] - before[1]},
          open(sys.argv[2], "w"))
"""

CHUNKED = """\
import json, sys, time, gitmlm
def sched():
    try:
        return [int(x) for x in open("/proc/thread-self/schedstat").read().split()[:2]]
    except OSError:
        return [0, 0]
i = 0
for line in sys.stdin:
    times, before = [], sched()
    for _ in range(int(line)):
        t = time.perf_counter()
        with gitmlm.start_run(params={"lr": i / 10000}) as run:
            run.log_metric("acc", i / 10000)
        times.append(time.perf_counter() - t)
        i += 1
    after = sched()
    print(json.dumps([times, after[0] - before[0]]), flush=True)
"""

WRITER = """\
import sys, gitmlm
for i in range(int(sys.argv[2])):
    with gitmlm.start_run(name=f"w{sys.argv[1]}-{i}", params={"writer": int(sys.argv[1])}) as run:
        run.log_metric("i", i)
"""

COUNT = """\
from gitmlm.core.git import Repo
from gitmlm.tracking import record
runs = record.list_runs(Repo.open()).runs
print(len(runs), sum(r.status == "finished" for r in runs))
"""

QUERY = """\
import json, sys, time, gitmlm
t = time.perf_counter()
df = gitmlm.runs(where="metrics.m0 > 0.5")
cold = time.perf_counter() - t
warm = []
for _ in range(3):
    t = time.perf_counter()
    gitmlm.runs(where="metrics.m0 > 0.5")
    warm.append(time.perf_counter() - t)
print(json.dumps([cold, min(warm), len(df)]))
"""

AFTER_RUN = """\
import json, sys, time, gitmlm
gitmlm.runs(where="metrics.m0 > 0.5")
with gitmlm.start_run(name="one more", params={"p0": 0.5}) as run:
    run.log_metric("m0", 0.9)
t = time.perf_counter()
df = gitmlm.runs(where="metrics.m0 > 0.5")
print(json.dumps([time.perf_counter() - t, len(df)]))
"""

ONE_MORE = """\
import gitmlm
with gitmlm.start_run(name="one more", params={"p0": 0.5}) as run:
    run.log_metric("m0", 0.9)
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def new_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.com")
    (path / "train.py").write_text("print('train')\n")
    (path / "writer.py").write_text(WRITER)
    (path / "one.py").write_text(ONE_PROCESS)
    (path / "chunked.py").write_text(CHUNKED)  # committed: a clean tree, no checkpoints
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "code")
    return path


def extract(rev: str, dest: Path) -> Path:
    """The gitmlm package as it was at `rev`, importable from `dest`."""
    data = subprocess.run(
        ["git", "archive", rev, "gitmlm"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


PYCACHE: list[Path] = []
"""Where timed processes keep bytecode (main sets it): they start as after `pip install`, which
compiles it, whatever this shell's PYTHONDONTWRITEBYTECODE says."""


def env_for(code_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code_root)
    if PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE[0])
    return env


def python(code_root: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env_for(code_root),
        check=True,
        capture_output=True,
        text=True,
    )


def one_process(code_root: Path, repo: Path, runs: int) -> tuple[list[float], str]:
    """Seconds per run, and where the time went: on a CPU, and runnable but waiting for one
    (a loaded machine's share; this process only, not a git it waits for)."""
    out = repo.parent / f"{repo.name}-times.json"
    python(code_root, "one.py", str(runs), str(out), cwd=repo)
    got = json.loads(out.read_text())
    times: list[float] = got["times"]
    where = ""
    if got["oncpu"]:
        where = (
            f"; per run {got['oncpu'] / runs / 1e6:.1f} ms on a CPU, "
            f"{got['waiting'] / runs / 1e6:.1f} ms waiting for one (load {_load()})"
        )
    return times, where


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def interleaved(codes: dict[str, Path], base: Path, runs: int, chunk: int = 20) -> None:
    """The one-process workload on several versions of gitmlm at once, each in its own repo,
    taking turns `chunk` runs at a time: on a shared machine each sees the same load."""
    procs = {}
    for label, code_root in codes.items():
        repo = new_repo(base / f"turns-{label}")
        procs[label] = subprocess.Popen(
            [sys.executable, "chunked.py"],
            cwd=repo,
            env=env_for(code_root),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    times: dict[str, list[float]] = {label: [] for label in codes}
    oncpu = dict.fromkeys(codes, 0)
    for _ in range(0, runs, chunk):
        for label, proc in procs.items():
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{chunk}\n")
            proc.stdin.flush()
            got, cpu = json.loads(proc.stdout.readline())
            times[label] += got
            oncpu[label] += cpu
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    k = min(1000, max(1, runs // 3))
    print(f"taking turns, {chunk} runs at a time (load {_load()}):")
    for label, ts in times.items():
        cpu = f", {oncpu[label] / len(ts) / 1e6:.1f} ms on a CPU" if oncpu[label] else ""
        print(
            f"  {label}: median {ms(ts):.1f} ms per run, first {k} {ms(ts[:k]):.1f} ms, "
            f"last {k} {ms(ts[-k:]):.1f} ms{cpu} (this process only)"
        )


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def writers(code_root: Path, repo: Path, count: int, each: int) -> tuple[float, int, int]:
    env = env_for(code_root)
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "writer.py", str(w), str(each)], cwd=repo, env=env)
        for w in range(count)
    ]
    if any(p.wait() for p in procs):
        raise SystemExit("a writer failed")
    wall = time.perf_counter() - start
    total, finished = map(int, python(code_root, "-c", COUNT, cwd=repo).stdout.split())
    return wall, total, finished


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--per-writer", type=int, default=100)
    parser.add_argument("--baseline", default="af30cf3")
    parser.add_argument("--baseline-runs", type=int, default=300)
    parser.add_argument("--baseline-per-writer", type=int, default=25)
    parser.add_argument("--query-runs", type=int, default=100000)
    parser.add_argument("--query-commits", type=int, default=10000)
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: one,writers,query,cli"
    )
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also run the one-process workload on gitmlm at REV (e.g. main), taking turns "
        "with this checkout: a same-run reference on a shared machine",
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        PYCACHE.append(base / "pycache")
        old = extract(args.baseline, base / "baseline")
        for code in (ROOT, old):  # compiled before anything is timed, as pip does
            python(code, "-m", "compileall", "-q", str(code / "gitmlm"), cwd=base)
        print(f"baseline: gitmlm at {args.baseline}; new: {ROOT}")

        if "one" not in skip:
            tenth = max(1, args.baseline_runs // 10)
            before, _ = one_process(old, new_repo(base / "old-one"), args.baseline_runs)
            after, where = one_process(ROOT, new_repo(base / "new-one"), args.runs)
            k = min(1000, max(1, args.runs // 3))
            first, last = ms(after[:k]), ms(after[-k:])
            print(
                f"{args.runs} runs on one commit, one process: median {ms(after):.1f} ms per run "
                f"(target <= 5 ms); first {k} {first:.1f} ms, last {k} {last:.1f} ms, "
                f"last/first {last / first:.2f} (target <= 1.5); total {sum(after):.1f} s{where}"
            )
            print(
                f"  baseline, {args.baseline_runs} runs: median {ms(before):.1f} ms; first "
                f"{tenth} {ms(before[:tenth]):.1f} ms, last {tenth} {ms(before[-tenth:]):.1f} ms "
                f"(grows with the note); same-size new/baseline median "
                f"{ms(after[: args.baseline_runs]) / ms(before):.2f}x"
            )

        if args.compare:
            other = extract(args.compare, base / "compare")
            interleaved({"this checkout": ROOT, args.compare: other}, base, args.runs)

        if "writers" not in skip:
            new_w = new_repo(base / "new-w")
            wall, total, done = writers(ROOT, new_w, args.writers, args.per_writer)
            n = args.writers * args.per_writer
            owall, ototal, _ = writers(
                old, new_repo(base / "old-w"), args.writers, args.baseline_per_writer
            )
            on = args.writers * args.baseline_per_writer
            print(
                f"{args.writers} writers x {args.per_writer} runs on one commit: {wall:.1f} s, "
                f"{n / wall:.1f} runs/s, {total}/{n} runs there, {done} finished"
            )
            print(
                f"  baseline {args.writers} x {args.baseline_per_writer}: {owall:.1f} s, "
                f"{on / owall:.1f} runs/s, {ototal}/{on} there; throughput ratio "
                f"{(n / wall) / (on / owall):.1f}x (target >= 4x; the baseline's smaller note "
                f"flatters it)"
            )

        repo = base / "query"
        if not {"query", "cli"} <= skip:
            from tracking_bench import build

            t0 = time.perf_counter()
            build(repo, args.query_commits, args.query_runs)
            print(
                f"built {args.query_runs} runs on {args.query_commits} commits in "
                f"{time.perf_counter() - t0:.1f} s"
            )

        if "query" not in skip:
            # Cold three times (a new process each, nothing under .git/mlm/cache): the median,
            # after one untimed run that compiles what the query imports (pandas...).
            colds, warms = [], []
            for i in range(4):
                subprocess.run(["rm", "-rf", str(repo / ".git" / "mlm" / "cache")], check=True)
                one, warm, rows = json.loads(python(ROOT, "-c", QUERY, cwd=repo).stdout)
                if i == 0:
                    continue
                colds.append(one)
                warms.append(warm)
            cold, warm = statistics.median(colds), min(warms)
            again, _, _ = json.loads(python(ROOT, "-c", QUERY, cwd=repo).stdout)
            ocold, owarm, _ = json.loads(
                python(old, "-c", QUERY, cwd=_fresh_copy(repo, base / "query-old")).stdout
            )
            print(
                f"gitmlm.runs(where='metrics.m0 > 0.5') over {args.query_runs} runs ({rows} rows):"
                f" cold {cold:.2f} s (median of {', '.join(f'{c:.2f}' for c in colds)}: new "
                f"processes, no parse cache; target <= 2 s), warm "
                f"{warm:.2f} s (same process; target <= 0.3 s), new process with the cache "
                f"{again:.2f} s"
            )
            print(f"  baseline: cold {ocold:.2f} s, warm {owarm:.2f} s")
            same, _ = json.loads(python(ROOT, "-c", AFTER_RUN, cwd=repo).stdout)
            python(ROOT, "-c", ONE_MORE, cwd=repo)
            fresh, _, _ = json.loads(python(ROOT, "-c", QUERY, cwd=repo).stdout)
            print(
                f"  after one more run: {same:.2f} s in the process that made it (reads the "
                f"changed note only), {fresh:.2f} s in a new process after another (the table "
                f"saved for an earlier tip, and the changed notes); cold above {cold:.2f} s"
            )
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(
                f"  load average (1, 5, 15 min) after the queries: {load} on {os.cpu_count()} cores"
            )

        if "cli" not in skip:
            cli_runs(repo, args.query_runs)


CLI = ["runs", "--where", "metrics.m0 > 0.5", "-n", "5", "--format", "csv"]
ROW_PATH = "GITMLM_RUNS_ROW_PATH"
"""gitmlm.cli.tracking.ROW_PATH_ENV: `git mlm runs` by the row path."""


def timed(cmd: list[str], repo: Path, env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout + out.stderr


def cli_runs(repo: Path, runs: int) -> None:
    """`git mlm runs ...` cold and warm by both paths, beside `git log --notes=mlm -n 1000`."""
    cache = repo / ".git" / "mlm" / "cache"
    cmd = [sys.executable, "-m", "gitmlm", *CLI]
    env = env_for(ROOT)
    env.pop(ROW_PATH, None)
    figures, outputs = {}, {}
    for label, extra in (("table", {}), ("rows", {ROW_PATH: "1"})):
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        cold, outputs[label] = timed(cmd, repo, {**env, **extra})
        warm = min(timed(cmd, repo, {**env, **extra})[0] for _ in range(3))
        figures[label] = (cold, warm)
    log = min(timed(["git", "log", "--notes=mlm", "-n", "1000"], repo, env)[0] for _ in range(3))
    same = "identical" if outputs["table"] == outputs["rows"] else "DIFFERENT"
    (tcold, twarm), (rcold, rwarm) = figures["table"], figures["rows"]
    print(f"git mlm {' '.join(CLI)} over {runs} runs (new processes; outputs {same}):")
    print(
        f"  column table: cold {tcold:.2f} s, warm {twarm:.2f} s; row path (before): cold "
        f"{rcold:.2f} s, warm {rwarm:.2f} s; {rcold / tcold:.1f}x and {rwarm / twarm:.1f}x"
    )
    print(f"  git log --notes=mlm -n 1000: {log:.2f} s (load {_load()})")


def _fresh_copy(repo: Path, dest: Path) -> Path:
    """A clone of the notes without the parse cache, so the baseline starts cold too."""
    subprocess.run(["cp", "-a", str(repo), str(dest)], check=True)
    subprocess.run(["rm", "-rf", str(dest / ".git" / "mlm" / "cache")], check=True)
    return dest


if __name__ == "__main__":
    main()
