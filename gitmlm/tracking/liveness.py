"""Is a run still alive? A live run's owner refreshes its record's `updated` stamp every
`heartbeat_every` seconds (a heartbeat); a run `running` whose heartbeat is older than the
timeout has crashed, on every host and clone alike. On the run's own host and PID namespace a
process that is gone (or a zombie) is known crashed at once.

Kept apart from tracking/record.py so `git mlm log` can ask without loading the tracking machinery.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from gitmlm.errors import MlmError

HOST = os.uname().nodename
"""socket.gethostname()'s answer, without importing socket (`git mlm log` starts faster)."""
TIMEOUT_ENV = "GITMLM_RUN_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
"""Seconds of silence after which a running run is crashed (GITMLM_RUN_TIMEOUT overrides)."""


def _pid_namespace() -> str:
    # A container has its own PID numbers (a run there may record pid 1): a pid means
    # something here only when it was recorded in this namespace.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


PID_NS = _pid_namespace()


def timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise MlmError(f"{TIMEOUT_ENV}={text!r} must be a number of seconds above 0")
    return value


def beat_every(limit: float | None = None) -> float:
    """How often a live run refreshes its heartbeat: four beats per timeout."""
    return (limit if limit is not None else timeout()) / 4


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, so alive
    try:  # a zombie still answers kill(0) but runs nothing
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _age(stamp: str, now: datetime | None) -> float | None:
    try:
        then = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - then).total_seconds()


def status(
    stored: str,
    host: str,
    pid: int | None,
    updated: str | None = None,
    pid_ns: str | None = None,
    every: float | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """The status to show: `stored`, or `crashed` for a running run that is gone."""
    if stored != "running":
        return stored
    here = host == HOST and (pid_ns or PID_NS) == PID_NS
    if here and pid and not alive(pid):
        return "crashed"
    if updated:
        age = _age(updated, now)
        # The writer's own beat interval bounds the wait too: a reader with a short timeout
        # must not call a slower-beating writer crashed between two beats.
        limit = max(timeout(), 2 * every if every else 0.0)
        if age is not None and age > limit:
            return "crashed"
    return stored
