"""The command line: `git-mlm`, one module per part, joined in `root`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["log"]:
        # Before click and pygit2 load: `git mlm log` answered from plumbing and caches when
        # it can (tracking/fastlog.py), at close to `git log`'s own speed.
        from gitmlm.tracking import fastlog

        try:
            if fastlog.run(args[1:]):
                return 0
        except BrokenPipeError:
            # `git mlm log | head`: the reader left; say nothing, as git does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    # After the log's fast path, which never forks and need not load this.
    from gitmlm.data import forking

    forking.allow()  # this process runs nothing but the command: helpers may be forked
    if args[:2] == ["data", "status"]:
        # Before click and pygit2 load: unchanged data is answered from the stat cache's memos.
        from gitmlm.cli import datafast

        code = datafast.run(args[2:])
        if code is not None:
            return code
    from gitmlm.cli import root

    return root.main(argv)
