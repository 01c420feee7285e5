"""The one way gitmlm runs the `git` program (for what pygit2 does not do: tags git signs,
pushes, fetches, many-ref `update-ref` transactions, plumbing whose speed beats libgit2's).

Never prompts: a remote that wants credentials fails with git's message instead of hanging a
hook or a sync.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, overload

from gitmlm.errors import MlmError

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from pathlib import Path

# `subprocess` is imported where it is used: `git mlm log`'s fast path starts its git processes
# with `Started` alone and need not load it (nor pathlib, for annotations only).

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
    import subprocess

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
    import subprocess

    done = subprocess.run(["git", *args], cwd=cwd, env=_env(None, None), capture_output=True)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise MlmError(f"git {' '.join(args)} failed: {err}")
    return done.stdout


class Started:
    """`git ARGS` started with its output piped, not waited for: several read at once
    (`git mlm log`'s fast path). No stdin, stderr discarded. Raises OSError when git cannot
    be started."""

    def __init__(self, args: Sequence[str]) -> None:
        read, write = os.pipe()  # both close on exec: other children never hold them
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawnp(
                "git",
                ["git", *args],
                _env(None, None),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, write, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2),
                ],
                # Python ignores these, and a child would inherit that: back to the default,
                # as subprocess's restore_signals does.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
            os.close(null)
        self._read = read

    def output(self) -> bytes | None:
        """Everything git printed, once it exited; None if it failed."""
        chunks = []
        try:
            while chunk := os.read(self._read, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(self._read)
            _, status = os.waitpid(self.pid, 0)
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None

    def stop(self) -> None:
        """Not wanted after all: git stops at its next write (a broken pipe), and is reaped."""
        os.close(self._read)
        os.waitpid(self.pid, 0)
