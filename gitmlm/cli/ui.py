"""`git mlm ui` and `git mlm report`: the browser's front door (gitmlm/ui)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from gitmlm.cli.common import need_ui_extra, open_repo

LOCAL = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option(
    "--port", type=int, default=8765, show_default=True, help="Port (0 picks a free one)."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Any other than 127.0.0.1 requires the printed token.",
)
@click.option("--open", "open_", is_flag=True, help="Open the page in the default browser.")
def ui(port: int, host: str, open_: bool) -> None:
    """A read-only web app over this repository: runs, curves, compare, log, models, data and
    monitors, at http://127.0.0.1:8765/ (Ctrl-C stops it)."""
    import secrets

    need_ui_extra()
    from gitmlm.ui import app as web

    repo = open_repo()
    token = None if host in LOCAL else secrets.token_urlsafe(24)
    application = web.create_app(repo.workdir, token)

    def ready(host_: str, port_: int) -> None:
        shown = f"[{host_}]" if ":" in host_ else host_
        url = f"http://{shown}:{port_}/" + (f"?token={token}" if token else "")
        click.echo(f"gitmlm ui: {url}  (read-only; Ctrl-C stops it)", err=True)
        if token:
            click.echo(
                "gitmlm ui: listening beyond this machine: share the link with care", err=True
            )
        if open_:
            import webbrowser

            webbrowser.open(url)

    with contextlib.suppress(KeyboardInterrupt):
        web.serve(application, host, port, ready)


@click.command()
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write (replaced if it holds an earlier report).",
)
@click.option(
    "--where", "where_", default="", help="Only the runs that match (the --where language)."
)
def report(out: str, where_: str) -> None:
    """Write the ui's pages as a static site into OUT: open OUT/index.html from disk, attach it
    to CI, or host it as pages; no server needed."""
    need_ui_extra()
    from gitmlm.ui import report as static_report

    pages = static_report.write_report(open_repo(), Path(out), where_)
    click.echo(f"wrote {pages} pages to {out} (open {Path(out) / 'index.html'})", err=True)


COMMANDS = [ui, report]
