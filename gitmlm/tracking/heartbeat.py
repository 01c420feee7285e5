"""One heartbeat thread per process for all its live runs (liveness.py says why runs beat).

A thread per run cost about 3 ms to start (the new thread must win the GIL before `start`
returns), more than the rest of a small run in a sweep; one shared thread costs nothing per run.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

Beat = Callable[[], None]

_cond = threading.Condition()
_due: dict[str, tuple[float, float, Beat]] = {}
"""run id -> (next beat on the monotonic clock, seconds between beats, the beat)."""
_busy: set[str] = set()
"""Runs whose beat is being written right now (stop waits for it)."""
_owner_pid = 0
"""The process whose thread serves `_due` (a forked child starts its own)."""


def start(run_id: str, every: float, beat: Beat) -> None:
    """Call `beat` every `every` seconds until `stop(run_id)`; a failing beat is skipped."""
    global _owner_pid
    with _cond:
        if _owner_pid != os.getpid():
            _due.clear()
            _busy.clear()
            _owner_pid = os.getpid()
            threading.Thread(target=_loop, name="gitmlm-heartbeat", daemon=True).start()
        _due[run_id] = (time.monotonic() + every, every, beat)
        _cond.notify()


def stop(run_id: str) -> None:
    """No beat of `run_id` runs once this returns (one in progress is waited for)."""
    with _cond:
        _due.pop(run_id, None)
        while run_id in _busy:
            _cond.wait()


def _loop() -> None:
    me = os.getpid()
    with _cond:
        while _owner_pid == me:
            now = time.monotonic()
            ready = [rid for rid, (when, _, _) in _due.items() if when <= now]
            if not ready:
                wait = min((when for when, _, _ in _due.values()), default=now + 3600) - now
                _cond.wait(max(wait, 0.0))
                continue
            for rid in ready:
                if rid not in _due:
                    continue  # stopped while an earlier beat of this round was written
                _, every, beat = _due[rid]
                _due[rid] = (now + every, every, beat)
                _busy.add(rid)
                _cond.release()
                try:
                    with contextlib.suppress(
                        Exception
                    ):  # a missed beat is not fatal; other runs beat on
                        beat()
                finally:
                    _cond.acquire()
                    _busy.discard(rid)
                    _cond.notify_all()
