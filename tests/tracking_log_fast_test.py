"""`git mlm log`'s fast path (tracking/fastlog.py, from caches and git plumbing) against its full
path (pygit2 and click), byte for byte: the fast path must never print something else."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

import gitmlm
from tests.helpers import git

CACHE = Path(".git") / "mlm" / "cache"
VIEW = "logview-1.marshal"
LINES = "loglines-1.marshal"


def _log(repo: Path, args: list[str]) -> tuple[str, bool]:
    """`git mlm log ARGS`: (its output, whether the fast path answered (pygit2 never loaded))."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitmlm", "log", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    return proc.stdout, "pygit2" not in imported


def _full_then_fast(repo: Path, args: list[str]) -> tuple[str, str]:
    """The full path's output (the log view cache removed first: it answers and rewrites the
    caches), then the fast path's, which must answer."""
    (repo / CACHE / VIEW).unlink(missing_ok=True)
    full, fast_path = _log(repo, args)
    assert not fast_path, args
    fast, fast_path = _log(repo, args)
    assert fast_path, args
    return full, fast


def _commit(repo: Path, name: str, message: str, env: dict[str, str] | None = None) -> None:
    (repo / name).write_text(f"{name}\n")
    git(repo, "add", name)
    subprocess.run(
        ["git", "commit", "-q", "-F", "-"],
        cwd=repo,
        input=message,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )


def _sweep(n: int, acc: float) -> None:
    for i in range(n):
        with gitmlm.start_run(name=f"trial-{i}", params={"lr": i / 10}) as run:
            run.log_metrics({"acc": acc + i / 100, "loss": 1 / (i + 1), "f1": 0.5, "auc": 0.7})
            run.log_metric("zz_last", 1e-9 * i)  # a fifth metric: not shown unless named


@pytest.fixture
def history(repo: Path) -> Path:
    """Commits with and without runs, every kind of decoration, a body with blank lines, a
    non-ASCII author in a negative time zone, failed and deleted runs."""
    _sweep(3, 0.8)
    with pytest.raises(RuntimeError), gitmlm.start_run(name="broken"):
        raise RuntimeError("boom")
    _commit(repo, "a.py", "second\n\nA body:\n\n  indented line\n\nlast paragraph\n")
    git(repo, "tag", "-a", "v1", "-m", "release one")
    git(repo, "tag", "light")
    _commit(
        repo,
        "b.py",
        "third: no runs\n",
        {"GIT_AUTHOR_NAME": "Zoë Ünïcode", "GIT_AUTHOR_DATE": "2024-02-29T23:59:59-0530"},
    )
    _commit(repo, "c.py", "fourth")
    _sweep(2, 0.9)
    doomed = gitmlm.runs(where="name = 'trial-1' and `metrics.acc` > 0.85")
    gitmlm.delete_runs(str(doomed["run_id"].iloc[0]))
    git(repo, "branch", "other", "HEAD~1")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD~2")
    blob = git(repo, "hash-object", "-w", "a.py").strip()
    git(repo, "tag", "-a", "blobtag", blob, "-m", "a tag of a blob: decorates no commit")
    return repo


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-n", "2"],
        ["-n3"],
        ["--max-count=1"],
        ["--oneline"],
        ["-m", "acc"],
        ["--metric", "zz_last", "-m", "loss"],
        ["--metric=acc", "--oneline"],
        ["HEAD~2..HEAD"],
        ["^HEAD~3", "other"],
        ["other", "v1"],
    ],
)
def test_the_fast_path_prints_what_the_full_path_prints(history: Path, args: list[str]) -> None:
    full, fast = _full_then_fast(history, args)
    assert fast == full


def test_the_log_shows_what_it_should(history: Path) -> None:
    """Not only alike: right (a check of the fixture and of what both paths print)."""
    full, fast = _full_then_fast(history, [])
    assert fast == full
    assert "Author: Zoë Ünïcode <test@example.com>" in full
    assert "Date:   Thu Feb 29 23:59:59 2024 -0530" in full
    assert "(origin/main, tag: light, tag: v1)" in full and "blobtag" not in full
    assert "(HEAD -> main)" in full and "(other)" in full
    assert "\n    \n    A body:\n    \n      indented line\n" in full
    assert full.count("    run ") == 5  # three and two trials and the failed run, less one deleted
    assert "broken  failed" in full and "zz_last" not in full


def test_colors_on_a_terminal_are_the_same(history: Path) -> None:
    def on_terminal() -> tuple[bytes, bool]:
        """Output on a terminal (colored), and whether the fast path answered."""
        main, child = pty.openpty()
        errors = history.parent / "importtime.txt"  # a file: a full pipe would block the child
        with errors.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-X", "importtime", "-m", "gitmlm", "log"],
                cwd=history,
                stdout=child,
                stderr=err,
            )
        os.close(child)
        out = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        os.close(main)
        assert proc.wait() == 0
        return out, b"pygit2" not in errors.read_bytes()

    (history / CACHE / VIEW).unlink(missing_ok=True)
    full, fast_path = on_terminal()
    assert not fast_path and b"\x1b[32mfinished\x1b[0m" in full and b"\x1b[31mfailed" in full
    assert on_terminal() == (full, True)


def test_damaged_caches_are_not_trusted(history: Path) -> None:
    full, _ = _full_then_fast(history, [])
    (history / CACHE / LINES).write_bytes(b"\x00garbage")
    assert _log(history, []) == (full, True)  # from the briefs pack instead
    (history / CACHE / VIEW).write_bytes(b"\xffnot marshal")
    out, fast_path = _log(history, [])
    assert out == full and not fast_path
    assert _log(history, []) == (full, True)  # the full path rewrote the caches


def test_a_renamed_run_is_never_shown_under_its_old_name(history: Path) -> None:
    _full_then_fast(history, [])
    rid = str(gitmlm.runs(where="name = 'broken'")["run_id"].iloc[0])
    gitmlm.rename_run(rid, "mended")
    out, fast_path = _log(history, [])
    assert "mended" in out and "broken" not in out and not fast_path
    assert _log(history, []) == (out, True)


def test_what_git_refuses_is_said_by_the_full_path(history: Path, tmp_path: Path) -> None:
    _full_then_fast(history, [])
    bad = subprocess.run(
        [sys.executable, "-m", "gitmlm", "log", "nosuchrev"], cwd=history, capture_output=True
    )
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr == b"git mlm: unknown revision 'nosuchrev': not a commit in this repository\n"
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    outside = subprocess.run(
        [sys.executable, "-m", "gitmlm", "log"], cwd=elsewhere, capture_output=True, text=True
    )
    assert outside.returncode == 1 and "not a git repository" in outside.stderr
