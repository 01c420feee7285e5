"""`git mlm install-hooks` and `git mlm hook STAGE`: plain git hooks without the pre-commit
framework. The shims hold no logic; an existing hook is kept and run after ours."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.hooks import ARGS, STAGES, STDIN_STAGES

MARK = "# gitmlm hook shim"
CHAINED = ".pre-gitmlm"
"""Suffix of a hook that was in place before ours; `git mlm hook` runs it after our checks."""


def shim(stage: str) -> str:
    """The text of a shim; the files in the top-level hooks/ folder are exactly this."""
    return (
        "#!/bin/sh\n"
        f"{MARK} for git's {stage}: `git mlm hook {stage}` runs gitmlm's {stage} hooks,\n"
        f"# then the hook that was here before, if any ({stage}{CHAINED}). No logic here.\n"
        f'exec git mlm hook {stage} "$@"\n'
    )


def _is_ours(path: Path) -> bool:
    try:
        return MARK in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


@dataclass(frozen=True)
class Action:
    stage: str
    what: str


def install(repo: Repo, stages: Sequence[str] | None = None) -> list[Action]:
    """Write a shim per stage into git's hooks folder (core.hooksPath honoured)."""
    folder = repo.git_path("hooks")
    wanted = list(stages or STAGES)
    for stage in wanted:
        if stage not in STAGES:
            raise MlmError(f"gitmlm has no {stage} hook; it has {', '.join(STAGES)}")
    # Check every stage before writing any, so a refusal changes nothing.
    for stage in wanted:
        hook, kept = folder / stage, folder / (stage + CHAINED)
        if (hook.exists() or hook.is_symlink()) and not _is_ours(hook) and kept.exists():
            raise MlmError(
                f"{hook} and {kept.name} both exist; merge them into {kept.name} by hand, "
                "remove the first, and run `git mlm install-hooks` again"
            )
    folder.mkdir(parents=True, exist_ok=True)
    actions = []
    for stage in wanted:
        hook, kept = folder / stage, folder / (stage + CHAINED)
        if hook.exists() and _is_ours(hook):
            if hook.read_text(encoding="utf-8") == shim(stage) and os.access(hook, os.X_OK):
                actions.append(Action(stage, f"{hook} is installed already"))
                continue
            what = f"updated {hook}"
        elif hook.exists() or hook.is_symlink():
            os.replace(hook, kept)
            what = f"installed {hook}; your previous hook moved to {kept.name} and runs after ours"
        else:
            what = f"installed {hook}"
        tmp = hook.with_name(f".{stage}.gitmlm-tmp")
        tmp.write_text(shim(stage), encoding="utf-8")
        tmp.chmod(0o755)
        os.replace(tmp, hook)
        actions.append(Action(stage, what))
    return actions


def uninstall(repo: Repo) -> list[Action]:
    """Remove our shims and put back the hooks they chained."""
    folder = repo.git_path("hooks")
    actions = []
    for stage in STAGES:
        hook, kept = folder / stage, folder / (stage + CHAINED)
        if not (hook.exists() and _is_ours(hook)):
            continue
        if kept.exists() or kept.is_symlink():
            os.replace(kept, hook)
            actions.append(Action(stage, f"restored your previous {hook}"))
        else:
            hook.unlink()
            actions.append(Action(stage, f"removed {hook}"))
    return actions


def run(repo: Repo | None, stage: str, argv: Sequence[str]) -> int:
    """Run a stage's checks (all of them, so every problem shows), then the chained hook."""
    if stage not in STAGES:
        raise MlmError(f"gitmlm has no {stage} hook; it has {', '.join(STAGES)}")
    stdin = sys.stdin.buffer.read() if stage in STDIN_STAGES else b""
    code = 0
    saved = sys.stdin
    try:
        for module, args in STAGES[stage]:
            if stage in STDIN_STAGES:
                sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
            full = [a for arg in args for a in (argv if arg == ARGS else [arg])]
            result = importlib.import_module(module).main(full)
            code = code or result
    finally:
        sys.stdin = saved
    if repo is not None:
        kept = repo.git_path("hooks") / (stage + CHAINED)
        if kept.exists() and os.access(kept, os.X_OK):
            sys.stdout.flush()
            sys.stderr.flush()
            chained = subprocess.run([str(kept), *argv], input=stdin if stdin else None)
            code = code or chained.returncode
    return code
