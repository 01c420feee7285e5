"""Where each page lives: URLs on the server, relative file names in the static report. The
templates ask `site.href(page, ...)` and `site.asset(name)` and never build a link themselves."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol
from urllib.parse import quote, urlencode

PAGES = ("runs", "run", "compare", "log", "models", "model", "data", "dataset", "monitor", "watch")
"""Page names; `watch` is one model's monitor page."""
_ONE = {"run": "run", "model": "model", "dataset": "data", "watch": "monitor"}
"""Pages about one thing, and the folder (URL path) they live under."""


class Site(Protocol):
    static: bool
    inline: bool
    """A single page with its style, script and plotly.js inside it (`git mlm monitor --html`)."""

    def href(self, page: str, name: str = "", /, **query: str | list[str]) -> str: ...

    def asset(self, name: str) -> str: ...

    def artifact(self, run_id: str, path: str) -> str: ...


def _query(query: dict[str, str | list[str]]) -> str:
    kept = {k: v for k, v in query.items() if v not in ("", [], None)}
    return "?" + urlencode(kept, doseq=True) if kept else ""


class ServerSite:
    static = False
    inline = False

    def href(self, page: str, name: str = "", /, **query: str | list[str]) -> str:
        if page not in PAGES:
            raise KeyError(page)
        if page in _ONE:
            return f"/{_ONE[page]}/{quote(name, safe='')}" + _query(query)
        return ("/" if page == "runs" else f"/{page}") + _query(query)

    def asset(self, name: str) -> str:
        return f"/static/{name}"

    def artifact(self, run_id: str, path: str) -> str:
        return f"/run/{quote(run_id, safe='')}/artifact/{quote(path, safe='/')}"


def slug(name: str) -> str:
    """A file name for any user name: safe characters only, never a path, never `..`; a name
    that had to change gets a short hash so two names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe[:120]


class StaticSite:
    """Links between the report's files, relative to the page being written (`depth` folders
    below the report's root), so the report opens from file:// or any web host."""

    static = True
    inline = False

    def __init__(self, depth: int = 0) -> None:
        self.up = "../" * depth

    def href(self, page: str, name: str = "", /, **query: str | list[str]) -> str:
        if page not in PAGES:
            raise KeyError(page)
        if page in _ONE:
            return f"{self.up}{_ONE[page]}/{quote(slug(name))}.html" + _query(query)
        file = "index.html" if page == "runs" else f"{page}.html"
        return self.up + file + _query(query)

    def asset(self, name: str) -> str:
        return f"{self.up}static/{name}"

    def artifact(self, run_id: str, path: str) -> str:
        """No link: the report carries no artifact bytes (they can be large; docs/ui.md)."""
        return ""


def page_file(page: str, name: str = "") -> str:
    """The report's file for a page, relative to its root."""
    return StaticSite(0).href(page, name)
