"""Running a command as a tracked run: the engine of `git mlm run` and `git mlm reproduce`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from gitmlm.checkpoints import checkpoint
from gitmlm.checkpoints import rules as coderules
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import record as tracking
from gitmlm.tracking.record import ActiveRun


def execute(
    repo: Repo, active: ActiveRun, command: list[str], cwd: Path | None = None
) -> tuple[Run, int]:
    """Run `command` as the process of `active` and finish the run with its exit code.

    The child sees GITMLM_RUN_ID, so its own start_run() joins this run. Declared outputs
    ([checkpoint] outputs) that the command created or changed are recorded as artifacts, so a
    commit of them can be traced to this run.
    """
    rules = coderules.load(repo.workdir)
    before = checkpoint.output_files(repo.workdir, rules)
    env = {**os.environ, tracking.RUN_ENV: active.id}
    try:
        child = subprocess.Popen(command, env=env, cwd=cwd)
    except OSError as exc:
        tracking.finish(repo, active.record, "failed", 127)
        raise MlmError(f"cannot run {command[0]!r}: {exc.strerror}", 127) from exc

    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = child.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    for path in checkpoint.changed_outputs(repo.workdir, rules, before):
        with contextlib.suppress(MlmError):  # removed again, or became a folder: not a result
            active.log_artifact(repo.workdir / path)
    status = "finished" if code == 0 else "failed"
    return tracking.finish(repo, active.record, status, code), code
