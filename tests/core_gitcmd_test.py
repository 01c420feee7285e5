"""gitcmd.Started: git started without subprocess (`git mlm log`'s fast path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitmlm.core import gitcmd


def test_started_git_gives_its_output_or_none_when_it_fails(repo: Path) -> None:
    head = gitcmd.Started(["rev-parse", "HEAD"]).output()
    assert head is not None and len(head.strip()) == 40
    assert gitcmd.Started(["rev-parse", "no-such-rev"]).output() is None  # and no stderr shown
    # What git runs sees neither our stdin nor our stderr.
    seen = gitcmd.Started(["-c", "alias.fds=!ls -l /proc/self/fd/0 /proc/self/fd/2", "fds"])
    out = seen.output()
    assert out is not None and out.decode().count("/dev/null") == 2
    stopped = gitcmd.Started(["log", "--all"])
    stopped.stop()  # not read: git ends at its next write, and is reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(stopped.pid, os.WNOHANG)
