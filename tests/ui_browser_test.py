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

    page.fill("#quickfilter", "adam")
    visible = page.locator("#runs tr.run:visible")
    expect(visible).to_have_count(2)
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
