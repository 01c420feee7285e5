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
from gitmlm.tracking import logged
from gitmlm.tracking import record as tracking
from gitmlm.tracking.record import ActiveRun


def _pump(source: IO[bytes], sink: int, tail: logged.Tail) -> None:
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
    still reach ours and their last OUTPUT_CAP bytes are kept as the artifacts `stdout.log` and
    `stderr.log`. With `system_metrics`, CPU, memory and GPU use are sampled as step series
    while the command runs (tracking/sysmetrics.py).

    Signals: SIGINT and SIGHUP come from the terminal to the whole foreground process group,
    the child included (and git, which runs us, passes its own on to us once more), so they are
    not forwarded: the child sees one Ctrl-C, and we wait for it and record what it logged.
    SIGTERM, which is sent to one process, is forwarded. To interrupt a `git mlm run` from a
    script, signal its process group: `kill -INT -PGID`.
    """
    rules = coderules.load(repo.workdir)
    before = checkpoint.output_files(repo.workdir, rules)
    env = {**os.environ, tracking.RUN_ENV: active.id}
    env.pop(tracking.NAMED_ENV, None)
    if active.named:
        env[tracking.NAMED_ENV] = "1"
    if capture:
        # Through a pipe Python would buffer its output in blocks: keep it live for the user.
        env.setdefault("PYTHONUNBUFFERED", "1")
    pipe = subprocess.PIPE if capture else None
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def wait_for_child(_signum: int, _frame: Any) -> None:
        """The child got this one too; we outlive it to record what it logged."""

    # A handler, not SIG_IGN: an ignored signal stays ignored in the child across exec, and
    # the script would never see its Ctrl-C.
    old = {
        signal.SIGINT: signal.signal(signal.SIGINT, wait_for_child),
        signal.SIGHUP: signal.signal(signal.SIGHUP, wait_for_child),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
    }
    active.start_heartbeat()
    try:
        try:
            child = subprocess.Popen(command, env=env, cwd=cwd, stdout=pipe, stderr=pipe)
        except OSError as exc:
            active.stop_heartbeat()
            tracking.finish(repo, active.record, "failed", 127)
            raise MlmError(f"cannot run {command[0]!r}: {exc.strerror}", 127) from exc
        if system_metrics:
            active.sample_system_metrics()
        tails: dict[str, logged.Tail] = {}
        pumps = []
        streams = (("stdout.log", child.stdout, 1), ("stderr.log", child.stderr, 2))
        for name, stream, sink in streams:
            if stream is not None:
                tails[name] = logged.Tail()
                pump = threading.Thread(target=_pump, args=(stream, sink, tails[name]), daemon=True)
                pump.start()
                pumps.append(pump)
        code = child.wait()
        for pump in pumps:
            pump.join()
        active.stop_heartbeat()
        for name, tail in tails.items():
            if tail.total:
                active.log_bytes(tail.value(), name)
        for path in checkpoint.changed_outputs(repo.workdir, rules, before):
            with contextlib.suppress(MlmError):  # removed again, or became a folder: not a result
                active.log_artifact(repo.workdir / path)
        active.close()
        status = "finished" if code == 0 else "failed"
        return tracking.finish(repo, active.record, status, code), code
    finally:
        active.close()
        for s, handler in old.items():
            signal.signal(s, handler)
