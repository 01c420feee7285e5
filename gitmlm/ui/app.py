"""`git mlm ui`: the Flask app. Read-only (GET only), bound to 127.0.0.1 unless told otherwise,
and then behind a token; every page is a server-side template with autoescaping on."""

from __future__ import annotations

import hmac
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import (
    Flask,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
)

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.ui import data_view, log_view, models_view, monitor_view, runs_view
from gitmlm.ui.site import ServerSite

HERE = Path(__file__).parent
TOKEN_COOKIE = "gitmlm_token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""No inline script runs, so an escaping mistake could still not run code (defence in depth);
plotly sets inline styles, hence 'unsafe-inline' for styles only."""


def plotly_dir() -> Path:
    """The folder of plotly.min.js as the `plotly` package ships it (no CDN, works offline)."""
    try:
        import plotly
    except ImportError as exc:
        raise MlmError("the ui needs its extra: pip install 'gitmlm[ui]'") from exc
    return Path(plotly.__file__).parent / "package_data"


def base_app() -> Flask:
    """Flask with our templates (autoescaped) and static files: the server's and the report's."""
    return Flask(
        __name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static")
    )


def create_app(path: str | os.PathLike[str] | None = None, token: str | None = None) -> Flask:
    """The app over the repository at `path`. With `token`, every request must carry it (as
    ?token= once, then a cookie); without, only requests addressed to a local host name are
    served, so a web page cannot reach this server through DNS rebinding."""
    root = str(Repo.open(path).workdir if path is None else path)
    vendor = plotly_dir()
    app = base_app()
    listings = runs_view.Listings()
    # Read the listing now, before the URL is shown: the first page then answers as fast as
    # any warm one (10,000 runs take a second or more to list).
    listings.get(Repo.open(root))
    site = ServerSite()

    def repo() -> Repo:
        return Repo.open(root)

    @app.before_request
    def guard() -> Any:
        if request.method not in ("GET", "HEAD"):
            abort(405)  # read-only: nothing here changes the repository
        if token is None:
            if hostname(request.host) not in LOCAL_HOSTS:
                abort(403)
            return None
        given = request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(403)
        if "token" in request.args:
            # Trade the token in the URL for a cookie, so links and history never carry it.
            args = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            rest = urlencode(args)
            reply = redirect(request.path + (f"?{rest}" if rest else ""))
            reply.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return reply
        return None

    @app.after_request
    def headers(reply: Response) -> Response:
        reply.headers["Content-Security-Policy"] = CSP
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Referrer-Policy"] = "no-referrer"
        return reply

    @app.errorhandler(MlmError)
    def mlm_error(exc: MlmError) -> tuple[str, int]:
        return page("error.html", message=str(exc)), 404

    def page(template: str, **context: Any) -> str:
        return render_template(template, site=site, cell=runs_view.cell, **context)

    @app.get("/vendor/plotly.min.js")
    def plotly_js() -> Response:
        return send_from_directory(vendor, "plotly.min.js", max_age=86400)

    @app.get("/")
    def runs() -> str:
        args = request.args
        try:
            number = int(args.get("page", "1"))
        except ValueError:
            number = 1
        columns = args.getlist("columns")
        view = runs_view.runs_page(
            listings.get(repo()),
            args.get("where", ""),
            args.get("order", ""),
            number,
            columns,
            args.get("group", ""),
        )
        return page("runs.html", view=view)

    @app.get("/run/<run_id>")
    def run(run_id: str) -> str:
        r = repo()
        return page("run.html", **runs_view.run_detail(r, listings.get(r), run_id))

    @app.get("/run/<run_id>/artifact/<path:name>")
    def artifact(run_id: str, name: str) -> Response:
        r = repo()
        got = runs_view.artifact_download(r, listings.get(r), run_id, name)
        if got.path is not None:
            body: Any = got.path
        else:
            # A folder: zipped from the object store into a temporary file first, so a missing
            # or tampered object is an error page, never a partial archive.
            body = tempfile.TemporaryFile()  # noqa: SIM115 -- send_file closes it once sent
            try:
                runs_view.zip_folder(r, run_id, name, got.folder, body)
            except BaseException:
                body.close()
                raise
            body.seek(0)
        return send_file(
            body,
            mimetype="application/zip" if got.folder else "application/octet-stream",
            as_attachment=True,
            download_name=got.name,
            max_age=0,
        )

    @app.get("/compare")
    def compare() -> str:
        r = repo()
        chosen, problems = runs_view.compare(r, listings.get(r), request.args.getlist("ids"))
        return page("compare.html", runs=chosen, problems=problems)

    @app.get("/log")
    def log() -> str:
        return page("log.html", **log_view.log_page(repo()))

    @app.get("/models")
    def models() -> str:
        return page("models.html", **models_view.models_page(repo()))

    @app.get("/model/<name>")
    def model(name: str) -> str:
        r = repo()
        return page("model.html", **models_view.model_page(r, name, listings.get(r).listing))

    @app.get("/data")
    def data() -> str:
        return page("data.html", **data_view.data_page(repo()))

    @app.get("/data/<name>")
    def dataset(name: str) -> str:
        a, b = request.args.get("a", ""), request.args.get("b", "")
        return page("dataset.html", **data_view.dataset_page(repo(), name, a, b))

    @app.get("/monitor")
    def monitor() -> str:
        return page("monitor.html", models=monitor_view.monitor_index(repo()))

    @app.get("/monitor/<name>")
    def watch(name: str) -> str:
        return page("watch.html", **monitor_view.monitor_page(repo(), name))

    return app


def hostname(host: str) -> str:
    """`127.0.0.1:8000` -> `127.0.0.1`, `[::1]:8000` -> `[::1]`."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]


def serve(
    app: Flask, host: str, port: int, on_ready: Callable[[str, int], None] | None = None
) -> None:
    """Serve until interrupted; `on_ready(host, port)` once listening (port 0 picks one)."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    if on_ready is not None:
        on_ready(host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
