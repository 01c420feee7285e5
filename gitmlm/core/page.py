"""Self-contained HTML reports (`--html`), written atomically; matplotlib figures embedded as PNG.

`write` serves `git mlm monitor --html` (drawn by the ui's plotly charts, gitmlm/ui/observe.py)
and `git mlm scan --html`; the figures serve the scan's page only. matplotlib is optional
(`pip install 'gitmlm[html]'`) and imported only here, only when a scan page is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from gitmlm.errors import MlmError


def figure_class() -> Any:
    """matplotlib's Figure, drawing to files only; the clear error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MlmError("--html needs matplotlib: pip install 'gitmlm[html]'") from exc
    matplotlib.use("Agg")  # files only: never a window, works without a display
    from matplotlib.figure import Figure

    return Figure


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></figure>'


def write(text: str, path: Path) -> None:
    """Write the page to `path` (atomically: a half-written report never replaces a good one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MlmError(f"cannot write {path}: {exc.strerror or exc}") from exc
