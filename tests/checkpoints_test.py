from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitmlm.checkpoints import checkpoint
from gitmlm.checkpoints import rules as coderules
from gitmlm.core.git import Repo
from gitmlm.core.globs import Globs
from gitmlm.errors import MlmError
from gitmlm.tracking import record as tracking
from tests.helpers import git, head, mlm, runs


def files_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root (the index too) with its bytes and mtime."""
    out = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("mlm", "objects", "refs", "logs")]
        for name in names:
            p = Path(folder) / name
            if p.name in ("ORIG_HEAD", "FETCH_HEAD", "packed-refs") or p.suffix == ".lock":
                continue
            out[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def tree_files(repo: Path, commit: str) -> dict[str, str]:
    out = {}
    for line in git(repo, "ls-tree", "-r", commit).splitlines():
        meta, path = line.split("\t", 1)
        out[path] = meta.split()[2]
    return out


def test_clean_tree_runs_on_head(repo: Path) -> None:
    (repo / ".gitignore").write_text("out/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / "out").mkdir()
    (repo / "out" / "log.txt").write_text("ignored files are not code\n")
    mlm(repo, "run", "--", "true")
    [r] = runs(repo)
    assert r["checkpoint"] == "clean"
    assert r["commit"] == head(repo)
    assert git(repo, "for-each-ref", "refs/mlm/checkpoints/") == ""
    # The commit is kept reachable for when its branch is squashed away.
    assert git(repo, "rev-parse", f"refs/mlm/keep/{head(repo)}").strip() == head(repo)


def test_snapshot_leaves_index_and_work_tree_byte_identical(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "util.py").write_text("A = 1\n")
    git(repo, "add", ".gitignore", "util.py")
    git(repo, "commit", "-q", "-m", "more")
    (repo / "train.py").write_text("print('changed')\n")  # modified, unstaged
    (repo / "util.py").write_text("A = 2\n")
    git(repo, "add", "util.py")  # staged ...
    (repo / "util.py").write_text("A = 3\n")  # ... and changed again
    (repo / "staged_new.py").write_text("NEW = 1\n")
    git(repo, "add", "staged_new.py")
    (repo / "helper.py").write_text("def f(): ...\n")  # untracked
    (repo / "run.log").write_text("ignored\n")
    status = git(repo, "status", "--porcelain")  # (git status itself may refresh the index)
    before = files_state(repo)

    r = Repo.open(repo)
    code = checkpoint.capture(r, "01testrun0000000000000000")

    assert files_state(repo) == before
    assert code.checkpoint == "snapshot"
    assert code.base == head(repo)
    assert git(repo, "rev-parse", "refs/mlm/checkpoints/01testrun0000000000000000").strip() == (
        code.commit
    )
    assert git(repo, "rev-parse", f"{code.commit}^").strip() == head(repo)
    files = tree_files(repo, code.commit)
    assert set(files) == {".gitignore", "train.py", "util.py", "staged_new.py", "helper.py"}
    assert git(repo, "show", f"{code.commit}:util.py") == "A = 3\n"
    assert git(repo, "show", f"{code.commit}:train.py") == "print('changed')\n"

    # The same through `git mlm run`: the run's note goes on the checkpoint commit.
    mlm(repo, "run", "--", "true")
    assert files_state(repo) == before
    assert git(repo, "status", "--porcelain") == status
    [rec] = runs(repo)
    assert rec["checkpoint"] == "snapshot"
    show = mlm(repo, "show", rec["run_id"]).stdout
    assert f'base = "{head(repo)}"' in show
    assert git(repo, "rev-parse", f"{rec['commit']}^").strip() == head(repo)


def test_log_shows_snapshot_runs_on_their_base_marked(repo: Path) -> None:
    mlm(repo, "run", "-n", "clean", "--", "true")
    (repo / "train.py").write_text("print('dirty')\n")
    mlm(repo, "run", "-n", "dirty", "--", "true")
    out = mlm(repo, "log", "-n", "1").stdout
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("run ")]
    assert len(lines) == 2
    assert any("clean" in line and "[uncommitted code]" not in line for line in lines)
    assert any("dirty" in line and line.endswith("[uncommitted code]") for line in lines)


def test_code_globs_decide_what_is_dirty(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\ncode = ["*.py"]\n')
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "config")
    (repo / "README.md").write_text("notes\n")
    mlm(repo, "run", "--", "true")
    assert runs(repo)[0]["checkpoint"] == "clean"
    (repo / "model_def.py").write_text("x = 1\n")
    mlm(repo, "run", "--", "true")
    assert runs(repo)[0]["checkpoint"] == "snapshot"


def test_huge_untracked_file_is_skipped_and_recorded(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\nmax_size = "1 KB"\n')
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "config")
    (repo / "weights.bin").write_bytes(b"\0" * 5000)
    (repo / "train.py").write_text("print('v2')\n")
    mlm(repo, "run", "--", "true")
    [rec] = runs(repo)
    assert rec["checkpoint"] == "snapshot"
    assert "weights.bin" not in tree_files(repo, rec["commit"])
    show = mlm(repo, "show", rec["run_id"]).stdout
    assert '"weights.bin" = "size"' in show


def test_huge_file_alone_leaves_the_tree_clean(repo: Path) -> None:
    (repo / "mlm.toml").write_text("schema = 1\n[checkpoint]\nmax_size = 100\n")
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "config")
    (repo / "big.bin").write_bytes(b"x" * 1000)
    code = checkpoint.capture(Repo.open(repo), "01testrun0000000000000001")
    assert code.checkpoint == "clean"
    assert code.extra["skipped"] == {"big.bin": "size"}


def test_datasets_excludes_and_outputs_are_not_snapshot(repo: Path) -> None:
    (repo / "mlm.toml").write_text(
        'schema = 1\n[datasets.train]\npath = "data/train"\n'
        '[checkpoint]\nexclude = ["scratch/**"]\noutputs = ["models/*.pkl"]\n'
    )
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "config")
    for rel in ("data/train/a.csv", "scratch/x.txt", "models/m.pkl"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    code = checkpoint.capture(Repo.open(repo), "01testrun0000000000000002")
    assert code.checkpoint == "clean"  # only non-code paths changed
    assert code.extra["skipped"] == {"data/train/a.csv": "dataset", "scratch/x.txt": "exclude"}
    (repo / "train.py").write_text("print('v3')\n")
    code = checkpoint.capture(Repo.open(repo), "01testrun0000000000000003")
    assert code.checkpoint == "snapshot"
    assert set(tree_files(repo, code.commit)) == {"mlm.toml", "train.py"}


def test_submodule_is_recorded_by_commit(repo: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "lib.py").write_text("V = 1\n")
    git(lib, "add", ".")
    git(lib, "commit", "-q", "-m", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(repo, "commit", "-q", "-m", "add lib")
    sub = repo / "lib"
    (sub / "lib.py").write_text("V = 2\n")
    git(sub, "commit", "-q", "-am", "v2")
    (sub / "lib.py").write_text("V = 3  # uncommitted inside the submodule\n")
    new = git(sub, "rev-parse", "HEAD").strip()
    code = checkpoint.capture(Repo.open(repo), "01testrun0000000000000004")
    assert code.checkpoint == "snapshot"
    line = git(repo, "ls-tree", code.commit, "lib")
    assert line.split()[:3] == ["160000", "commit", new]
    assert git(repo, "diff", "--cached", "--name-only") == ""  # user's index untouched


def test_outside_a_repository_and_in_a_bare_one(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = mlm(plain, "run", "--", "true", check=False)
    assert proc.returncode == 1
    assert "not a git repository" in proc.stderr
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    proc = mlm(bare, "run", "--", "true", check=False)
    assert proc.returncode == 1
    assert "bare repository" in proc.stderr


def test_malformed_checkpoint_section_is_one_clear_line(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\nmode = "loud"\n')
    proc = mlm(repo, "run", "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        'git mlm: mlm.toml: [checkpoint] mode must be "block" or "warn", not \'loud\''
    )
    assert git(repo, "for-each-ref", "refs/notes/", "refs/mlm/") == ""


def test_api_run_records_cwd_and_start_run_snapshot(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "m.py").write_text("pass\n")
    monkeypatch.chdir(repo / "src")
    with tracking.start_run(name="api") as run:
        pass
    assert run.record.checkpoint == "snapshot"
    assert run.record.extra["cwd"] == "src"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pkl", "models/a.pkl", True),
        ("*.pkl", "a.pkl", True),
        ("models/*.pkl", "models/a.pkl", True),
        ("models/*.pkl", "models/sub/a.pkl", False),
        ("models/**/*.pkl", "models/sub/a.pkl", True),
        ("models/**", "models/sub/a.pkl", True),
        ("**/*.py", "a.py", True),
        ("**/*.py", "a/b/c.py", True),
        ("data", "data/x/y.csv", True),
        ("data/", "data/x.csv", True),
        ("./data", "data/x.csv", True),
        ("data", "database.csv", False),
        ("src/*.py", "other/src/a.py", False),
        ("m?.txt", "m1.txt", True),
        ("m[0-9].txt", "m7.txt", True),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert Globs([pattern]).match(path) is expected


def test_globs_touches_is_conservative() -> None:
    g = Globs(["models/*.pkl"])
    assert g.touches("models")
    assert not g.touches("src")
    assert Globs(["*.pkl"]).touches("anything/deep")


def test_rules_parse_sizes_and_reject_bad_values() -> None:
    assert coderules.parse_size("10 MB") == 10_000_000
    assert coderules.parse_size("2KiB") == 2048
    assert coderules.parse_size(5) == 5
    with pytest.raises(MlmError, match="max_size"):
        coderules.parse_size("ten")
    with pytest.raises(MlmError, match="list of globs"):
        coderules.from_config({"checkpoint": {"outputs": [1]}})


def test_concurrent_runs_on_a_dirty_tree_each_get_a_checkpoint(repo: Path) -> None:
    import subprocess
    import sys

    (repo / "writer.py").write_text(
        "import sys, gitmlm\n"
        "for i in range(5):\n"
        "    with gitmlm.start_run(name=f'w{sys.argv[1]}-{i}'):\n"
        "        pass\n"
    )
    index = (repo / ".git" / "index").read_bytes()
    procs = [subprocess.Popen([sys.executable, "writer.py", str(w)], cwd=repo) for w in range(4)]
    assert [p.wait() for p in procs] == [0] * 4
    listing = tracking.list_runs(Repo.open(repo))
    assert len(listing.runs) == 20
    assert all(r.checkpoint == "snapshot" and r.status == "finished" for r in listing.runs)
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/mlm/checkpoints/").split()
    assert sorted(refs) == sorted(f"refs/mlm/checkpoints/{r.id}" for r in listing.runs)
    assert (repo / ".git" / "index").read_bytes() == index
    assert not list((repo / ".git" / "mlm" / "tmp").iterdir())  # private indexes cleaned up
