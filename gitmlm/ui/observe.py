"""`git mlm monitor --html FILE`: one observation as a single page, drawn by the ui's template
and script with the plotly.js the `plotly` package ships, all inside the file (no CDN, nothing
next to it), so it opens from file:// offline and can be attached to an incident as it is."""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import Markup

from gitmlm.core import page as pages
from gitmlm.monitor.monitor import Result
from gitmlm.ui import app as web
from gitmlm.ui import monitor_view, runs_view
from gitmlm.ui.site import StaticSite

_END_TAG = re.compile(r"</(script|style)", re.IGNORECASE)


class InlineSite(StaticSite):
    """A page that carries its own style and scripts: no links to other pages or files."""

    inline = True

    def text(self, name: str) -> Markup:
        """A static file's text for a <script> or <style> element; `</script` (or `</style`)
        inside it is written `<\\/…`, which JavaScript and CSS read the same, so the element
        cannot end early."""
        folder = web.plotly_dir() if name == "plotly.min.js" else web.HERE / "static"
        text = (folder / name).read_text(encoding="utf-8")
        return Markup(_END_TAG.sub(lambda m: "<\\/" + m.group(1), text))


def render(result: Result) -> str:
    flask = web.base_app()
    with flask.app_context():
        from flask import render_template

        return render_template(
            "observation.html",
            site=InlineSite(),
            cell=runs_view.cell,
            **monitor_view.observation_page(result),
        )


def write(result: Result, path: Path) -> None:
    pages.write(render(result), path)
