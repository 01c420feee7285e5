"""`git mlm ui` and `git mlm report` in a real browser: Debian's chromium driven by Playwright.

With GITMLM_UI_SCREENSHOTS=DIR the tests also write the README's pictures into DIR
(`GITMLM_UI_SCREENSHOTS=docs python -m pytest tests/ui_browser_test.py`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.helpers import XSS, mlm, monitor_project, ui_project

DOCS = os.environ.get("GITMLM_UI_SCREENSHOTS")
"""Read at import: the hermetic fixture clears GITMLM_* variables before each test."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium (tests/run.sh does)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Debian's own build, never a download; --no-sandbox because CI runs as root.
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(repo: Path) -> Iterator[tuple[str, dict[str, str]]]:
    ids = ui_project(repo)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitmlm", "ui", "--port", str(port)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/static/ui.css", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise AssertionError(f"git mlm ui did not start: {out}") from None
                time.sleep(0.1)
        yield base, ids
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def watch_dialogs(page: Any) -> list[str]:
    fired: list[str] = []

    def on_dialog(d: Any) -> None:
        fired.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    return fired


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if DOCS:
        if name == "compare":  # the README shows the metrics, the curves and what follows
            page.evaluate(
                "window.scrollTo(0, document.getElementById('metrics-table').offsetTop - 60)"
            )
        page.screenshot(path=str(Path(DOCS) / f"ui-{name}.png"))


def check_compare(page: Any) -> None:
    """Both runs' curves drawn, for each metric; their params' difference highlighted."""
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#compare-error").is_hidden()
    charts = page.locator("#curves .js-plotly-plot")
    assert charts.count() == 2  # loss and val_loss
    for i in range(2):
        lines = charts.nth(i).locator(".scatterlayer .trace path.js-line")
        assert lines.count() == 2
        for j in range(2):
            assert len(lines.nth(j).get_attribute("d") or "") > 100  # a drawn curve, not a dot
    expect(page.locator("#params-diff tr.differs th", has_text="lr")).to_have_count(1)
    expect(page.locator("#parcoords .scatterlayer .trace")).to_have_count(2)  # a line per run
    assert "params.lr" in page.inner_text("#parcoords")
    expect(page.locator("#scatter .scatterlayer .trace")).to_have_count(2)


def check_xss(page: Any, fired: list[str]) -> None:
    cell = page.locator("#runs td", has_text="onerror")
    assert cell.first.inner_text() == XSS  # shown as text...
    expect(page.locator("img")).to_have_count(0)  # ...never an element
    assert fired == []


def test_ui_in_a_browser(browser: Any, server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, ids = server
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    fired = watch_dialogs(page)
    page.goto(base + "/")
    expect(page.locator("#runs tr.run")).to_have_count(3)
    check_xss(page, fired)
    shot(page, tmp_path, "runs")

    # A filter the language cannot read, and an unknown column, are shown inline.
    page.fill("#where", "metrics.acu > 0.5")
    with page.expect_navigation():
        page.click("#filter-form button[type=submit]")
    assert "did you mean metrics.auc" in page.inner_text("#where-error")
    expect(page.locator("#runs tr.run")).to_have_count(0)

    page.fill("#where", "params.lr >= 0.1")
    with page.expect_navigation():
        page.click("#filter-form button[type=submit]")
    rows = page.locator("#runs tr.run")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-run") for i in range(2)} == {
        ids["baseline"],
        ids["fast"],
    }
    assert page.locator("#compare").is_disabled()
    page.locator("input.pick").nth(0).check()
    page.locator("input.pick").nth(1).check()
    with page.expect_navigation():
        page.click("#compare")
    check_compare(page)
    shot(page, tmp_path, "compare")

    page.goto(base + "/models")
    with page.expect_navigation():
        page.get_by_role("link", name="churn").click()
    assert page.inner_text("#model-name") == "churn"
    assert "staging" in page.inner_text("#board")
    assert "metrics.auc >= 0.9" in page.inner_text("main")
    shot(page, tmp_path, "model")

    page.goto(f"{base}/run/{ids[XSS]}")
    assert page.inner_text("#run-name") == XSS
    expect(page.locator("#curves .js-plotly-plot")).to_have_count(2)
    expect(page.locator("img")).to_have_count(0)
    assert fired == []
    page.close()


def watch_console(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def drawn_charts(page: Any, box: str) -> int:
    """How many plotly charts in `box` drew their svg with something on it."""
    page.wait_for_selector(f"{box}[data-drawn]")
    charts = page.locator(f"{box} .js-plotly-plot")
    for i in range(charts.count()):
        assert charts.nth(i).locator("svg.main-svg .trace path").count(), f"{box} chart {i}"
    return int(charts.count())


def test_report_from_file_urls(browser: Any, repo: Path, tmp_path: Path) -> None:
    ids = ui_project(repo)
    observed = tmp_path / "observed.html"
    monitor_project(repo, ids["fast"], observed)
    out = tmp_path / "site"
    mlm(repo, "report", "-o", str(out))
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    fired = watch_dialogs(page)
    console = watch_console(page)

    # `git mlm monitor --html`: one file, the same charts, plotly.js inside it, from file://.
    page.goto(observed.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    assert drawn_charts(page, "#monitor-charts") == 4  # age, city, label, pred: training vs serving
    assert drawn_charts(page, "#window-charts") == 2  # quality and latency per window
    assert "DRIFT" in page.inner_text("#features") and XSS in page.inner_text("#monitor-charts")
    expect(page.locator("script[src], link[rel=stylesheet]")).to_have_count(0)  # nothing fetched
    shot(page, tmp_path, "monitor-html")
    # The report's Monitor page draws the recorded observation with the same script.
    page.goto((out / "monitor" / "churn.html").as_uri())
    assert drawn_charts(page, "#monitor-charts") == 6  # 4 features, quality, latency
    assert console == [] and fired == []
    page.goto((out / "index.html").as_uri())
    expect(page.locator("#runs tr.run")).to_have_count(3)
    check_xss(page, fired)

    # The --where language, run in the page (static/where.js), errors inline as on the server.
    page.fill("#where", "metrics.acu > 0.5")
    page.click("#filter-form button[type=submit]")
    assert "did you mean metrics.auc" in page.inner_text("#where-error")
    expect(page.locator("#runs tr.run:visible")).to_have_count(0)
    page.fill("#where", "params.opt = 'adam'")
    page.click("#filter-form button[type=submit]")
    visible = page.locator("#runs tr.run:visible")
    expect(visible).to_have_count(2)
    assert page.locator("#where-error").is_hidden()
    page.locator("#runs tr.run:visible input.pick").nth(0).check()
    page.locator("#runs tr.run:visible input.pick").nth(1).check()
    with page.expect_navigation():
        page.click("#compare")
    check_compare(page)
    assert page.url.startswith("file://")
    shot(page, tmp_path, "report-compare")

    page.goto((out / "models.html").as_uri())
    with page.expect_navigation():
        page.get_by_role("link", name="churn").click()
    assert page.inner_text("#model-name") == "churn"

    page.goto((out / "run" / f"{ids['fast']}.html").as_uri())
    assert page.inner_text("#run-name") == "fast"
    expect(page.locator("#curves .js-plotly-plot")).to_have_count(2)
    assert fired == []
    page.close()


# --- the static report's --where filter against the Python language ---------------------------

PARITY_RUNS: list[dict[str, Any]] = [
    {
        "name": "alpha",
        "params": {"lr": 0.1, "batch_size": 32, "opt": "adam", "ratio": 1.0, "flag": True,
                   "n": "2", "net": {"depth": 3, "act": "relu"}, "big": 2**60 + 1,
                   "sizes": [1, 2]},
        "metrics": {"acc": 0.91, "loss": float("nan")},
        "tags": {"team": "vision"},
    },
    {
        "name": "beta",
        "params": {"lr": 0.01, "batch_size": "64", "opt": "sgd", "ratio": 0.5, "flag": False,
                   "n": 2},
        "metrics": {"acc": 0.85, "loss": 0.3, "f1 score": 0.7},
        "tags": {"team": "Vis%ion"},
    },
    {
        "name": "gamma élan",
        "params": {"lr": 1e-05, "opt": "Adam", "ratio": 1e16, "flag": "True"},
        "metrics": {"acc": float("inf"), "loss": 1e-07},
        "tags": {},
    },
    {
        "name": "delta",
        "params": {"lr": "0.1", "weird key": "a'b\"c", "emoji": "🚀x"},
        "metrics": {"acc": -0.0},
        "tags": {"team": "data"},
        "fail": True,
    },
    {"name": "eps", "params": {}, "metrics": {}, "tags": {}},
]  # fmt: skip

PARITY_EXPRESSIONS = [
    "", "   ", "metrics.acc > 0.9", "metrics.acc >= 0.85 and params.opt = 'adam'",
    "params.batch_size = 64", "params.batch_size = '32'", "params.batch_size > 40",
    "params.batch_size < '40'", "params.n = 2", "params.n = '2'", "params.n != 2",
    "params.flag = true", "params.flag = 'true'", "params.flag != false", "params.flag like 'T%'",
    "params.lr in (0.1, 0.01)", "params.lr in ('0.1', 1e-5)", "params.lr not in (0.1)",
    "params.opt not in ('adam', 'sgd')", "params.opt like 'a%'", "params.opt ilike 'A%'",
    "params.opt not like '%d%'", "params.opt not ilike '%D%'", "params.ratio like '1.0'",
    "params.ratio like '1e+16'", "params.ratio = 1", "params.lr like '1e-05'",
    "params.big like '%1'", "params.big > 1152921504606846000", "metrics.loss = nan",
    "metrics.loss != nan", "metrics.loss is null", "metrics.loss is not null",
    "metrics.loss like 'nan'", "metrics.acc = inf", "metrics.acc > -inf", "metrics.acc = 0",
    "metrics.acc < 0", "metrics.acc like '-0.0'", "metrics.loss like '1e-07'",
    "params.net.depth >= 3", "params.`net`.act = 'relu'", "metrics.`f1 score` > 0.5",
    'metrics."f1 score" > 0.5', "metric.acc > 0.5", "param.opt = 'sgd'",
    "attributes.run_name = 'beta'", "run_name like '%a'", "tags.mlflow.runName = 'delta'",
    "status = 'FAILED'", "status = 'finished'", "status in ('FINISHED')", "status ilike 'fin%'",
    "status not in ('Failed')", "start_time > 0", "created > 0", "end_time is null",
    "tags.team like 'Vis\\%ion'", "tags.team like 'vis%'", "tags.team ilike 'VIS%'",
    "tag.team = 'data'", "not params.opt = 'adam'", "not (metrics.acc > 0.9 or params.lr < 0.05)",
    "(params.lr > 0.01) and not params.flag", "params.`weird key` = 'a\\'b\"c'",
    "params.emoji like '_x'", "params.emoji like '🚀%'", "name = 'gamma élan'", "name > 'c'",
    "params.opt < 'b'", "params.sizes is not null", "params.sizes = 1", "params.sizes like '%'",
    "params.lr = 0.1", "params.lr == 0.1", "params.lr <> 0.1", "params.lr > '0.05'",
    "params.opt = 1", "run_id like '%'", "NOT params.opt IS NULL AND metrics.acc IS NOT NULL",
    "params.opt in ('adam')\tor\u3000params.n = 2", "params.lr = .1", "params.lr = +0.1",
    "params.lr >= 1E-5 and params.lr <= 1e-5",
    # errors: unknown columns (with and without a suggestion) and syntax, shown inline
    "metrics.acu > 0.5", "params.lrr = 1", "foo = 1", "acc > 1", "metrics.ac = 1",
    "params.bacth_size = 1", "params.émoji = 1", "名前 = 1", "metrics.f1 = 1", "metrics.acc >",
    "metrics.acc > = 1", "metrics.acc => 1", "(metrics.acc > 1", "metrics.acc > 1)",
    "metrics.acc > 1 and", "metrics.acc = null", "params.opt = adam", "params.opt like 3",
    "params.opt not = 'a'", "params.opt is 'a'", "params.opt in 'a'", "params.opt in ('a' 'b')",
    "params.`opt = 1", 'params."opt = 1', "params.opt = 'abc", "metrics. = 1", ".acc = 1",
    "metrics.acc = 1abc", "metrics.acc = 1.2.3", "not " * 101 + "metrics.acc > 1",
    "(" * 101 + "metrics.acc > 1" + ")" * 101, "metrics.acc\t>\x0b\x1c'x", "émoji 🚀 = = 1",
    "params.opt = 'a' or", "params.opt = 'a' xor params.n = 1",
    # suggestions: near and far (difflib's cutoff 0.6), ties (the larger name wins)
    "user_name = 1", "zz_host_zz = 1", "stat = 1", "ended_at = 1", "metrics.accuracy > 1",
    "params.lrate = 1", "hosts = 'a'", "metrics.f1_score > 1", "exit = 0",
]  # fmt: skip


def test_static_filter_agrees_with_the_python_language(
    browser: Any, repo: Path, tmp_path: Path
) -> None:
    import gitmlm
    from gitmlm.core.git import Repo
    from gitmlm.errors import MlmError
    from gitmlm.tracking import query
    from gitmlm.ui import runs_view

    for spec in PARITY_RUNS:
        try:
            with gitmlm.start_run(name=spec["name"], params=spec["params"]) as run:
                for k, v in spec["metrics"].items():
                    run.log_metric(k, v)
                for k, v in spec["tags"].items():
                    run.set_tag(k, v)
                if spec.get("fail"):
                    raise RuntimeError("a failed run")
        except RuntimeError:
            pass
    mlm(repo, "report", "-o", str(tmp_path / "site"))
    rows = runs_view.Listings().get(Repo.open(repo)).rows
    assert len(rows) == len(PARITY_RUNS)
    expected = []
    for text in PARITY_EXPRESSIONS:
        try:
            chosen = query.select_rows(rows, text.strip() or None)
            expected.append({"ids": sorted(r["run_id"] for r in chosen), "error": ""})
        except MlmError as exc:
            expected.append({"ids": [], "error": str(exc)})
    page = browser.new_page()
    console = watch_console(page)
    page.goto((tmp_path / "site" / "index.html").as_uri())
    got = page.evaluate(
        """(texts) => texts.map((text) => {
            document.getElementById("where").value = text;  // (an input drops \\n and \\r)
            document.getElementById("filter-form").requestSubmit();
            const error = document.getElementById("where-error");
            const ids = [...document.querySelectorAll("#runs tr.run")]
                .filter((tr) => !tr.hidden).map((tr) => tr.dataset.run).sort();
            return {ids, error: error.hidden ? "" : error.textContent};
        })""",
        PARITY_EXPRESSIONS,
    )
    differ = [
        (t, e, g) for t, e, g in zip(PARITY_EXPRESSIONS, expected, got, strict=True) if e != g
    ]
    assert differ == [], "\n".join(map(repr, differ))
    # Enough of each kind to mean something: matches, non-matches, and errors.
    assert sum(bool(e["error"]) for e in expected) >= 30
    assert sum(0 < len(e["ids"]) < len(rows) for e in expected) >= 50
    assert console == []
    page.close()


def test_concurrent_first_requests_leave_the_server_alive(
    server: tuple[str, dict[str, str]],
) -> None:
    """Browsers ask for several pages at once, each reading notes on a cold start: every
    answer comes, and the server lives on. (toml_rs, once tried as the notes' parser, crashed
    a server under such load, though rarely: this is no proof against that, only a floor.)"""
    base, ids = server
    run_ids = list(ids.values())
    urls = [
        "/",
        *(f"/run/{rid}" for rid in run_ids),
        f"/compare?ids={run_ids[0]}&ids={run_ids[1]}",
        "/models",
    ]
    failures: list[str] = []

    def ask(k: int) -> None:
        for i in range(30):
            url = base + urls[(i + k) % len(urls)]
            try:
                with urllib.request.urlopen(url, timeout=20) as answer:
                    if answer.status != 200:
                        failures.append(f"{url}: {answer.status}")
            except OSError as exc:
                failures.append(f"{url}: {exc}")

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with urllib.request.urlopen(base + "/", timeout=20) as answer:
        assert answer.status == 200
