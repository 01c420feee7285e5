"""The one way gitmlm runs the `git` program (for what pygit2 does not do: tags git signs,
pushes, fetches, many-ref `update-ref` transactions, plumbing whose speed beats libgit2's).

Never prompts: a remote that wants credentials fails with git's message instead of hanging a
hook or a sync.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import overload

from gitmlm.errors import MlmError

Cwd = str | os.PathLike[str] | None


def _env(git_dir: Path | None, env: Mapping[str, str] | None) -> dict[str, str]:
    out = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if git_dir is not None:
        out["GIT_DIR"] = str(git_dir)
    if env:
        out.update(env)
    return out


@overload
def proc(
    args: Sequence[str],
    *,
    cwd: Cwd = None,
    git_dir: Path | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]: ...


@overload
def proc(
    args: Sequence[str],
    *,
    cwd: Cwd = None,
    git_dir: Path | None = None,
    input: bytes,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]: ...


def proc(
    args: Sequence[str],
    *,
    cwd: Cwd = None,
    git_dir: Path | None = None,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """`git ARGS`, whole result (exit code, stdout, stderr) for callers that explain failures.
    Text in and out unless `input` is bytes."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        env=_env(git_dir, env),
        capture_output=True,
        text=not isinstance(input, bytes),
    )


def run(
    args: Sequence[str],
    *,
    cwd: Cwd = None,
    git_dir: Path | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """`git ARGS`'s stdout; MlmError with git's own message when it fails."""
    done = proc(args, cwd=cwd, git_dir=git_dir, input=input, env=env)
    if done.returncode != 0:
        raise MlmError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def run_bytes(args: Sequence[str], *, cwd: Cwd = None) -> bytes:
    """`git ARGS` whose output is binary (archive, cat-file)."""
    done = subprocess.run(["git", *args], cwd=cwd, env=_env(None, None), capture_output=True)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise MlmError(f"git {' '.join(args)} failed: {err}")
    return done.stdout


def start(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """`git ARGS` started, not waited for: several read at once (`git mlm log`'s fast path)."""
    return subprocess.Popen(
        ["git", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(None, None),
    )
