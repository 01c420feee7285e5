"""Is a run still alive? A run `running` whose process on this host is gone has crashed.

Kept apart from tracking/record.py so `git mlm log` can ask without loading the tracking machinery.
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, so alive
    return True


def status(stored: str, host: str, pid: int | None) -> str:
    if stored == "running" and host == HOST and pid and not alive(pid):
        return "crashed"
    return stored
