"""Benchmark of `git mlm ui`, measured in headless Chromium. Prints each figure beside its
reference measured in the same run.

    python bench/ui_bench.py [--commits 500] [--runs 10000] [--steps 10000]

Builds a repository with RUNS runs (10 params, 5 metrics each; tracking_bench's builder) and
gives 5 of them 3 metrics x STEPS steps, starts `git mlm ui` on a free port, then times:
  0. `git mlm ui` starting until it answers (it reads the listing first), vs `git mlm runs`;
  1. the server answering a Runs page, warm (median of 20), vs a static file from the same
     server (the framework's floor);
  2. the Runs page in Chromium until its first rows show, cold (the browser's first visit)
     and warm, vs a static file from the same server;
  3. Compare of the 5 runs until every curve is drawn, vs Compare of 2 runs with no series
     (plotly's own load and start);
  4. the static report (`git mlm report`): its Runs page's first rows from file://, and its
     --where filter in the page (first use, which decodes every run's values, and again).
Needs Debian's chromium (`apt-get install chromium`) and `pip install 'gitmlm[ui]' playwright`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tracking_bench import build  # one builder for a repository of many runs

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.tracking import record as runs


def add_series(root: Path, count: int, metrics: int, steps: int) -> list[str]:
    """Give `count` runs `metrics` step series of `steps` points; their ids."""
    repo = Repo.open(root)
    chosen = runs.list_runs(repo).runs[:count]
    rng = random.Random(1)
    for run in chosen:
        series = {}
        for m in range(metrics):
            values, v = [], 1.0
            for _ in range(steps):
                v = max(1e-6, v * 0.9995 + rng.gauss(0, 0.002))
                values.append(round(v, 6))
            series[f"loss{m}"] = {"step": list(range(steps)), "value": values}
        run.series = sorted(series)
        run.updated = codec.now()
        store.put_runs(repo, refs.SERIES, run.commit, {run.id: codec.encode_series(series)}, "b")
        store.put_runs(repo, refs.RUNS, run.commit, {run.id: codec.run_to_dict(run)}, "b")
    return [r.id for r in chosen]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url) as reply:
        reply.read()
    return time.perf_counter() - start


def row(what: str, ours: float, ref_name: str, ref: float, target: float | None) -> None:
    verdict = "" if target is None else ("ok" if ours <= target else "OVER TARGET")
    goal = "" if target is None else f"target <= {target * 1000:.0f} ms  {verdict}"
    print(
        f"{what:<44} {ours * 1000:8.1f} ms   {ref_name:<30} {ref * 1000:8.1f} ms   "
        f"ratio {ours / ref:6.2f}   {goal}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Debian's chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="gitmlm-uibench-") as tmp:
        root = Path(tmp) / "repo"
        t = time.perf_counter()
        build(root, args.commits, args.runs)
        ids = add_series(root, 5, 3, args.steps)
        plain = [r.id for r in runs.list_runs(Repo.open(root)).runs[-2:]]
        print(
            f"built {args.runs} runs on {args.commits} commits, 5 with 3 x {args.steps} steps "
            f"in {time.perf_counter() - t:.1f} s"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        listing_cmd = [sys.executable, "-m", "gitmlm", "runs", "--format", "json"]

        def list_all() -> float:
            start = time.perf_counter()
            subprocess.run(listing_cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)
            return time.perf_counter() - start

        list_all()  # parsed notes are cached by blob id, as after any listing
        listed = statistics.median(list_all() for _ in range(3))
        port = free_port()
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "gitmlm", "ui", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    fetch(base + "/static/ui.css")
                    ready = time.perf_counter() - started
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})

                def first_rows() -> float:
                    start = time.perf_counter()
                    page.goto(base + "/", wait_until="commit")
                    page.wait_for_selector("#runs tr.run")
                    return time.perf_counter() - start

                def empty_page() -> float:
                    start = time.perf_counter()
                    page.goto(base + "/static/ui.css", wait_until="load")
                    return time.perf_counter() - start

                cold = first_rows()
                warm_browser = statistics.median(first_rows() for _ in range(5))
                blank = statistics.median(empty_page() for _ in range(5))

                warm = statistics.median(fetch(base + "/") for _ in range(20))
                floor = statistics.median(fetch(base + "/static/ui.css") for _ in range(20))

                def compare(chosen: list[str]) -> float:
                    query = "&".join(f"ids={i}" for i in chosen)
                    start = time.perf_counter()
                    page.goto(f"{base}/compare?{query}", wait_until="commit")
                    page.wait_for_selector("body[data-ready=true]")
                    return time.perf_counter() - start

                compare(ids)  # plotly.min.js into the browser's cache, as on any second visit
                drawn = statistics.median(compare(ids) for _ in range(5))
                lines = page.locator("#curves .scatterlayer .trace path.js-line").count()
                bare = statistics.median(compare(plain) for _ in range(5))

                # 4. the static report: its Runs page and its --where filter, from file://
                site = Path(tmp) / "site"
                built = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "gitmlm", "report", "-o", str(site)],
                    cwd=root, env=env, stdout=subprocess.DEVNULL, check=True,
                )  # fmt: skip
                report_s = time.perf_counter() - built
                index_mb = (site / "index.html").stat().st_size / 1e6

                def static_rows() -> float:
                    start = time.perf_counter()
                    page.goto(site.joinpath("index.html").as_uri(), wait_until="commit")
                    page.wait_for_selector("#runs tr.run")
                    return time.perf_counter() - start

                static_first = statistics.median(static_rows() for _ in range(3))
                page.wait_for_load_state("load")  # the script that runs the filter is last

                def static_filter(text: str) -> float:
                    # In the page: the filter's first use decodes every run's values, then each
                    # submit parses, binds and runs the expression over all rows.
                    return (
                        float(
                            page.evaluate(
                                """(text) => { const t = performance.now();
                            document.getElementById("where").value = text;
                            document.getElementById("filter-form").requestSubmit();
                            return performance.now() - t; }""",
                                text,
                            )
                        )
                        / 1000
                    )

                where_text = "metrics.m0 > 0.5 and params.p1 < 0.5"
                filter_first = static_filter(where_text)
                filter_warm = statistics.median(static_filter(where_text) for _ in range(5))
                shown = page.locator("#runs tr.run:not([hidden])").count()
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print()
    row(
        "server: start until ready (reads listing)",
        ready,
        "git mlm runs --format json",
        listed,
        None,
    )
    row("server: Runs page (100 rows), warm", warm, "server: a static file", floor, 0.2)
    row("chromium: Runs first rows, cold", cold, "chromium: a static file", blank, 1.0)
    row("chromium: Runs first rows, warm", warm_browser, "chromium: a static file", blank, 1.0)
    row(
        f"chromium: Compare 5 x 3 x {args.steps} drawn",
        drawn,
        "chromium: Compare, no series",
        bare,
        1.0,
    )
    print(
        f"(compare drew {lines} curves; the server sends <= 1000 points a series: "
        "min/max of 500 buckets)"
    )
    print()
    print(f"static report: written in {report_s:.1f} s; index.html {index_mb:.1f} MB")
    row(
        "chromium: report Runs first rows (file://)",
        static_first,
        "chromium: server Runs, warm",
        warm_browser,
        None,  # the targets are the server's
    )
    row(
        "chromium: report --where, first use",
        filter_first,
        "chromium: server Runs, warm",
        warm_browser,
        None,  # the targets are the server's
    )
    row(
        "chromium: report --where, again",
        filter_warm,
        "chromium: server Runs, warm",
        warm_browser,
        None,  # the targets are the server's
    )
    print(f"(the filter `{where_text}` showed {shown} of {args.runs} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
