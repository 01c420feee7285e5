"""What every command module shares: output formats, opening the repository, KEY=VALUE pairs."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from gitmlm.core import fmt
from gitmlm.errors import MlmError

F = TypeVar("F", bound=Callable[..., Any])


def format_option(f: F) -> F:
    return click.option(
        "--format",
        "fmt_",
        type=click.Choice(fmt.FORMATS),
        default="table",
        show_default=True,
        help="Output as an aligned table, JSON, CSV, or Markdown (for pull-request comments).",
    )(f)


def open_repo() -> Any:
    from gitmlm.core.git import Repo

    return Repo.open()


def parse_value(text: str) -> Any:
    """`-p lr=0.1` gives a float, `-p deep=true` a bool, `-p arch=resnet` a string."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text
    return value if isinstance(value, (int, float, bool, list)) else text


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """`-p opt.lr=1` gives the nested table opt = {lr = 1}. A key given twice takes its last
    value; a key that is both a value and a table (`-p a=1 -p a.b=2`) is an error."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or "" in key.split("."):
            raise MlmError(f"{what} {pair!r} is not KEY=VALUE (for example -p lr=0.01)")
        for other in given:
            if key != other and (key.startswith(other + ".") or other.startswith(key + ".")):
                raise MlmError(
                    f"{what} {pair!r} conflicts with {given[other]!r}: {min(key, other)!r} "
                    "cannot be both a value and a table"
                )
        given[key] = pair
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(value)
    return out


def size_text(n: int | None) -> str:
    """Bytes for people: `1.2 MB`; blank when unknown."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def need_ui_extra(what: str = "the ui") -> None:
    """One clear line, not a traceback, when the ui's extra (flask, plotly) is not installed:
    the ui, `git mlm report` and `git mlm monitor --html` draw with it."""
    import importlib.util

    missing = [m for m in ("flask", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise MlmError(f"{what} needs {' and '.join(missing)}: pip install 'gitmlm[ui]'")
