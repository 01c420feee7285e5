from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import gitmlm
from tests.helpers import git, mlm

TRAIN = """\
import sys, gitmlm
with gitmlm.start_run() as run:
    lr = run.params.get("lr", 1.0)
    for step in range(3):
        run.log_metric("loss", lr / (step + 1), step=step)
    run.log_metric("acc", 1 - lr)
sys.exit(int(run.params.get("exit", 0)))
"""


def _runs_json(repo: Path, *args: str) -> list[dict[str, object]]:
    return json.loads(mlm(repo, "runs", "--format", "json", *args).stdout)  # type: ignore[no-any-return]


def test_version_and_help(repo: Path) -> None:
    assert mlm(repo, "--version").stdout.strip() == f"git-mlm, version {gitmlm.__version__}"
    out = mlm(repo, "-h").stdout  # `git mlm --help` is git's own: it looks for a man page
    for command in ("init", "run", "log", "runs", "show", "diff", "demo"):
        assert command in out
    assert "--where" in mlm(repo, "runs", "--help").stdout
    proc = subprocess.run(
        [sys.executable, "-m", "gitmlm", "--version"], capture_output=True, text=True, check=True
    )
    assert gitmlm.__version__ in proc.stdout


def test_init_is_idempotent_with_dry_run_and_remotes(repo: Path, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "remote.git"))
    dry = mlm(repo, "init", "--dry-run").stdout
    assert "would write mlm.toml" in dry and not (repo / "mlm.toml").exists()
    assert git(repo, "config", "--get-all", "notes.displayRef", check=False) == ""
    mlm(repo, "init")
    assert "[registry]" in (repo / "mlm.toml").read_text()
    assert git(repo, "config", "--get-all", "notes.displayRef").split() == ["refs/notes/mlm"]
    assert git(repo, "config", "--get-all", "notes.rewriteRef").split() == ["refs/notes/mlm*"]
    fetch = git(repo, "config", "--get-all", "remote.origin.fetch")
    assert "+refs/notes/mlm*:refs/notes/remotes/origin/mlm*" in fetch
    assert "HEAD" in git(repo, "config", "--get-all", "remote.origin.push").split()
    assert mlm(repo, "init").stdout.strip() == "already set up; nothing to change"
    assert git(repo, "config", "--get-all", "notes.displayRef").split() == ["refs/notes/mlm"]


def test_run_attaches_child_and_records_exit_code(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    mlm(repo, "run", "--name", "good", "-p", "lr=0.25", "-t", "team=x", "--", "python", "train.py")
    proc = mlm(repo, "run", "-p", "exit=3", "--", "python", "train.py", check=False)
    assert proc.returncode == 3 and "failed (exit code 3)" in proc.stderr
    rows = {r["name"]: r for r in _runs_json(repo)}
    assert len(rows) == 2  # the child's start_run joined the run instead of making its own
    good = rows["good"]
    assert good["status"] == "finished" and good["exit_code"] == 0
    assert good["params.lr"] == 0.25 and good["metrics.acc"] == 0.75 and good["tags.team"] == "x"
    [bad] = [r for n, r in rows.items() if n != "good"]
    assert bad["status"] == "failed" and bad["exit_code"] == 3
    shown = mlm(repo, "show", str(good["run_id"])[:14]).stdout
    assert 'command = [\n    "python",\n    "train.py",\n]' in shown or '"train.py"' in shown
    assert "# series loss: 3 steps" in shown


def test_run_killed_by_signal_is_failed(repo: Path) -> None:
    proc = mlm(repo, "run", "--", "sh", "-c", "kill -TERM $$", check=False)
    assert proc.returncode == 128 + 15 and "killed by signal 15" in proc.stderr
    [row] = _runs_json(repo)
    assert row["status"] == "failed" and row["exit_code"] == -15


def test_run_of_missing_program(repo: Path) -> None:
    proc = mlm(repo, "run", "--", "no-such-program-xyz", check=False)
    assert proc.returncode == 127 and "cannot run 'no-such-program-xyz'" in proc.stderr
    [row] = _runs_json(repo)
    assert row["status"] == "failed"


def test_log_shows_runs_under_their_commits(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "real training")
    mlm(repo, "run", "--name", "first", "--", "python", "train.py")
    git(repo, "commit", "-q", "--allow-empty", "-m", "later")
    mlm(repo, "run", "--name", "second", "-p", "lr=0.5", "--", "python", "train.py")
    out = mlm(repo, "log").stdout
    assert (
        out.index("later") < out.index("second") < out.index("real training") < out.index("first")
    )
    assert "acc=0.5" in out
    one = mlm(repo, "log", "-n", "1", "--metric", "acc").stdout
    assert "second" in one and "first" not in one and "loss" not in one
    ranged = mlm(repo, "log", "--oneline", "HEAD~2..HEAD~1").stdout.splitlines()
    assert ranged[0].endswith("real training") and "first" in ranged[1] and len(ranged) == 2
    plain = git(repo, "log", "--notes=mlm", "-1")
    assert "[runs." in plain


def test_runs_formats_where_and_errors(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    for lr in ("0.1", "0.2", "0.3"):
        mlm(repo, "run", "--name", f"lr{lr}", "-p", f"lr={lr}", "--", "python", "train.py")
    table = mlm(repo, "runs", "--where", "params.lr >= 0.2", "--order-by", "metrics.acc").stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["run_id", "name", "status", "commit"]
    assert [line.split()[1] for line in lines[1:]] == ["lr0.3", "lr0.2"]
    rows = list(csv.DictReader(io.StringIO(mlm(repo, "runs", "--format", "csv").stdout)))
    assert len(rows) == 3 and {r["params.lr"] for r in rows} == {"0.1", "0.2", "0.3"}
    md = mlm(repo, "runs", "--format", "md", "-n", "1").stdout.splitlines()
    assert md[0].startswith("| run_id |") and md[1].startswith("|---") and len(md) == 3
    bad = mlm(repo, "runs", "--where", "params.lr >> 1", check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("git mlm: bad --where expression at column 11")


def test_diff_shows_params_metrics_and_code(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    mlm(repo, "run", "--name", "a", "-p", "lr=0.1", "--", "python", "train.py")
    (repo / "model.py").write_text("x = 1\n")
    git(repo, "add", "model.py")
    git(repo, "commit", "-q", "-m", "model")
    mlm(repo, "run", "--name", "b", "-p", "lr=0.3", "--", "python", "train.py")
    ids = {r["name"]: str(r["run_id"]) for r in _runs_json(repo)}
    out = mlm(repo, "diff", ids["a"], ids["b"]).stdout
    assert "params.lr" in out and "metrics.acc" in out and "-0.2" in out
    assert "model.py" in out and "1 file changed" in out


def test_bad_input_errors_are_one_line(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    proc = subprocess.run(["git", "mlm", "runs"], cwd=outside, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("git mlm: not a git repository")
    proc = mlm(repo, "show", "zzzz", check=False)
    assert (
        proc.returncode == 1
        and proc.stderr == "git mlm: no run with id or name 'zzzz'; `git mlm runs` lists them\n"
    )
    proc = mlm(repo, "run", "-p", "novalue", "--", "true", check=False)
    assert proc.returncode == 1 and "is not KEY=VALUE" in proc.stderr
    (repo / "mlm.toml").write_text("[broken\n")
    proc = mlm(repo, "init", check=False)
    assert proc.returncode == 0  # init does not need to read mlm.toml


HEAVY = ("pandas", "numpy")
HASHING = ("gitmlm.data.hashing", "gitmlm.data.statcache", "gitmlm.data.manifest")


def imported_by(repo: Path, *args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "gitmlm", "--version"],
        ["-m", "gitmlm", "log", "-n", "10"],
        ["-m", "gitmlm", "models"],
        ["-m", "gitmlm.hooks.checkpoint"],
        ["-m", "gitmlm.hooks.post_commit"],
    ],
)
def test_fast_paths_never_import_pandas_numpy_or_data_hashing(repo: Path, args: list[str]) -> None:
    with gitmlm.start_run():
        pass
    imported = imported_by(repo, *args)
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, args
    assert not imported & set(HASHING), args


def test_the_data_hook_never_imports_pandas_or_numpy(repo: Path) -> None:
    imported = imported_by(repo, "-m", "gitmlm.hooks.data")
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_runs_never_imports_pandas(repo: Path) -> None:
    # numpy it does: `git mlm runs` filters and orders the column table (tracking.runlist).
    with gitmlm.start_run():
        pass
    imported = imported_by(repo, "-m", "gitmlm", "runs", "--where", "status = 'finished'")
    assert "numpy" in imported and not {m for m in imported if m.split(".")[0] == "pandas"}


def test_demo_creates_a_repository_with_runs(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    out = subprocess.run(
        ["git", "mlm", "demo", str(demo)], capture_output=True, text=True, check=True
    ).stdout
    assert "lr-0.5" in out and "metrics.acc" in out and "Track experiments and data" in out
    assert "tag: logreg@v0.0.1" in out and "logreg  v0.0.1" in out
    assert "FLAGGED: drift in x0\n" in out  # the serving data's shifted feature, and only it
    rows = _runs_json(demo)
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows)
    assert all(str(r["datasets.train"]).startswith("sha256:") for r in rows)
    assert git(demo, "status", "--porcelain") == ""
    # An earlier demo is replaced; any other non-empty folder is refused and left alone.
    subprocess.run(["git", "mlm", "demo", str(demo)], check=True, capture_output=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    again = subprocess.run(["git", "mlm", "demo", str(mine)], capture_output=True, text=True)
    assert again.returncode == 1 and "not empty" in again.stderr
    assert (mine / "keep.txt").exists()


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "md"])
def test_empty_listing_in_every_format(repo: Path, fmt: str) -> None:
    assert mlm(repo, "runs", "--format", fmt).returncode == 0


def _imports(repo: Path, *args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitmlm", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}


def test_log_fast_path_prints_what_the_full_path_prints(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "training\n\nwith a body")
    git(repo, "tag", "-a", "v1", "-m", "one")
    mlm(repo, "run", "--name", "first", "--", "python", "train.py")
    for args in (["log"], ["log", "-n", "1", "-m", "acc"], ["log", "--oneline", "HEAD~1..HEAD"]):
        (repo / ".git" / "mlm" / "cache" / "logview-1.marshal").unlink(missing_ok=True)
        full = mlm(repo, *args).stdout  # the full path, which leaves the cache
        assert {"pygit2", "click"}.isdisjoint(_imports(repo, *args))  # now the fast path
        assert mlm(repo, *args).stdout == full and "first" in full
    # A run recorded since: the notes moved, the cache is stale, the full path answers.
    mlm(repo, "run", "--name", "second", "--", "python", "train.py")
    assert "pygit2" in _imports(repo, "log")
    assert "second" in mlm(repo, "log").stdout
    assert {"pygit2", "click"}.isdisjoint(_imports(repo, "log", "-n", "2"))
    assert "click" in _imports(repo, "log", "--help")  # an option it leaves to the full path
    # A deleted run (a tombstone) is hidden by the fast path as by the full path.
    second = json.loads(mlm(repo, "runs", "--format", "json", "-w", "name = 'second'").stdout)
    mlm(repo, "runs", "rm", second[0]["run_id"])
    full = mlm(repo, "log").stdout
    assert {"pygit2", "click"}.isdisjoint(_imports(repo, "log"))
    assert mlm(repo, "log").stdout == full and "second" not in full and "first" in full
    # A run on uncommitted code needs its whole record (was its code committed since?).
    (repo / "dirty.py").write_text("x = 1\n")
    mlm(repo, "run", "--name", "snap", "--", "python", "train.py")
    mlm(repo, "log")
    assert "pygit2" in _imports(repo, "log")
    assert "[uncommitted code]" in mlm(repo, "log").stdout
