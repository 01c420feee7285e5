"""The command line: `git-mlm`, one module per part, joined in `root`."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from gitmlm.cli import root

    return root.main(argv)
