"""`git mlm report -o DIR`: the ui's pages as a static site (no server), for CI artifacts and
pages hosting. The same templates and script as the server; links are relative files, so the
report opens from file:// as well as from any web host."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.ui import app as web
from gitmlm.ui import data_view, log_view, models_view, monitor_view, runs_view
from gitmlm.ui.site import StaticSite, page_file

MARKER = ".gitmlm-report"
"""A file in every report: a folder that has it may be replaced by the next report."""


def write_report(
    repo: Repo,
    out: Path,
    where_text: str = "",
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write every page into `out` (replaced whole, never half-written); the number of pages."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise MlmError(f"{out} is not empty and not an earlier report; choose another -o folder")
    listed = runs_view.Listings().get(repo)
    view = runs_view.runs_page(listed, where_text, per_page=max(1, len(listed.rows)))
    if view.error:
        raise MlmError(view.error)
    flask = web.base_app()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    written = 0

    def page(file: str, template: str, **context: Any) -> None:
        nonlocal written
        depth = file.count("/")
        with flask.app_context():
            from flask import render_template

            text = render_template(template, site=StaticSite(depth), cell=runs_view.cell, **context)
        target = tmp / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written += 1
        if progress is not None:
            progress(file)

    try:
        (tmp / MARKER).write_text("written by git mlm report\n")
        static = tmp / "static"
        shutil.copytree(web.HERE / "static", static)
        shutil.copy(web.plotly_dir() / "plotly.min.js", static / "plotly.min.js")
        page("index.html", "runs.html", view=view, filter=runs_view.static_filter(view.rows))
        (tmp / "runs-data").mkdir()
        for row in view.rows:
            detail = runs_view.run_detail(repo, listed, row["run_id"])
            page(page_file("run", row["run_id"]), "run.html", **detail)
            # Compare reads each run from a script: pages opened from file:// cannot fetch.
            data = json.dumps(detail["chart"][0], allow_nan=False)
            (tmp / "runs-data" / f"{row['run_id']}.js").write_text(
                f"window.gitmlmRuns = window.gitmlmRuns || {{}};\n"
                f"window.gitmlmRuns[{json.dumps(row['run_id'])}] = {data};\n"
            )
        page("compare.html", "compare.html", runs=None, problems=[])
        page("log.html", "log.html", **log_view.log_page(repo))
        models = models_view.models_page(repo)
        page("models.html", "models.html", **models)
        for row in models["rows"]:
            info = models_view.model_page(repo, row["model"], listed.listing)
            page(page_file("model", row["model"]), "model.html", **info)
        data_info = data_view.data_page(repo)
        page("data.html", "data.html", **data_info)
        for d in data_info["datasets"]:
            page(
                page_file("dataset", d.name), "dataset.html", **data_view.dataset_page(repo, d.name)
            )
        watched = monitor_view.monitor_index(repo)
        page("monitor.html", "monitor.html", models=watched)
        for m in watched:
            info = monitor_view.monitor_page(repo, m["model"])
            page(page_file("watch", m["model"]), "watch.html", **info)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written
