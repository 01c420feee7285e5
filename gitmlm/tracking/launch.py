"""Running a command as a tracked run: the engine of `git mlm run` and `git mlm reproduce`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from gitmlm.checkpoints import checkpoint
from gitmlm.checkpoints import rules as coderules
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import artifacts
from gitmlm.tracking import record as tracking
from gitmlm.tracking.record import ActiveRun


def _pump(source: IO[bytes], sink: int, tail: artifacts.Tail) -> None:
    """Copy the child's stream to ours as it comes (the user still sees it) and keep its end."""
    while chunk := source.read1(1 << 16):  # type: ignore[attr-defined]
        tail.add(chunk)
        with contextlib.suppress(OSError):  # our own output closed: keep recording
            os.write(sink, chunk)


def execute(
    repo: Repo,
    active: ActiveRun,
    command: list[str],
    cwd: Path | None = None,
    *,
    capture: bool = True,
    system_metrics: bool = True,
) -> tuple[Run, int]:
    """Run `command` as the process of `active` and finish the run with its exit code.

    The child sees GITMLM_RUN_ID, so its own start_run() joins this run. Declared outputs
    ([checkpoint] outputs) that the command created or changed are recorded as artifacts, so a
    commit of them can be traced to this run. With `capture`, the child's stdout and stderr
    still reach ours and their last OUTPUT_CAP bytes are kept as the artifacts `stdout.log`
    and `stderr.log`. With `system_metrics`, CPU, memory and GPU use are sampled as step
    series while the command runs (tracking/sysmetrics.py).
    """
    rules = coderules.load(repo.workdir)
    before = checkpoint.output_files(repo.workdir, rules)
    env = {**os.environ, tracking.RUN_ENV: active.id}
    if capture:
        # Through a pipe Python would buffer its output in blocks: keep it live for the user.
        env.setdefault("PYTHONUNBUFFERED", "1")
    pipe = subprocess.PIPE if capture else None
    try:
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=pipe, stderr=pipe)
    except OSError as exc:
        tracking.finish(repo, active.record, "failed", 127)
        raise MlmError(f"cannot run {command[0]!r}: {exc.strerror}", 127) from exc

    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    if system_metrics:
        active.sample_system_metrics()
    tails: dict[str, artifacts.Tail] = {}
    pumps = []
    for name, stream, sink in (("stdout.log", child.stdout, 1), ("stderr.log", child.stderr, 2)):
        if stream is not None:
            tails[name] = artifacts.Tail()
            pump = threading.Thread(target=_pump, args=(stream, sink, tails[name]), daemon=True)
            pump.start()
            pumps.append(pump)
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = child.wait()
        for pump in pumps:
            pump.join()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    for name, tail in tails.items():
        if tail.total:
            active.log_bytes(tail.value(), name)
    active._stop_flusher()  # stops the sampler and journals everything before the fold
    for path in checkpoint.changed_outputs(repo.workdir, rules, before):
        with contextlib.suppress(MlmError):  # removed again, or became a folder: not a result
            active.log_artifact(repo.workdir / path)
    status = "finished" if code == 0 else "failed"
    return tracking.finish(repo, active.record, status, code), code
