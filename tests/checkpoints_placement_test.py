"""Runs attached to the commits that hold their code: post-commit, squash merges, rewrites."""

from __future__ import annotations

from pathlib import Path

from gitmlm.core import codec
from gitmlm.core.git import Repo
from gitmlm.tracking import record as tracking
from tests.helpers import commit_all, git, git_proc, head, install_hooks, mlm, note, runs


def run_lines(repo: Path, *args: str) -> list[str]:
    out = mlm(repo, "log", *args).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith("run ")]


def test_run_on_dirty_tree_shows_on_the_commit_of_its_code(repo: Path) -> None:
    install_hooks(repo)
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "helper.py").write_text("H = 1\n")
    mlm(repo, "run", "-n", "exp", "--", "true")
    [rec] = runs(repo)
    assert rec["checkpoint"] == "snapshot"
    out = commit_all(repo, "v2")
    assert "now also shows on" in out
    c = head(repo)
    assert rec["run_id"] in note(repo, c)
    [line] = run_lines(repo, "-n", "2")  # on the commit, and no longer on its base
    assert "exp" in line and "[uncommitted code]" not in line
    # The listing still has one run, carried by the checkpoint and the commit.
    listing = tracking.list_runs(Repo.open(repo))
    assert [r.id for r in listing.runs] == [rec["run_id"]]
    assert set(listing.commits[rec["run_id"]]) == {rec["commit"], c}
    assert listing.runs[0].extra["attached"] == [c]


def test_different_code_is_not_attached(repo: Path) -> None:
    install_hooks(repo)
    (repo / "train.py").write_text("print('v2')\n")
    mlm(repo, "run", "--", "true")
    (repo / "train.py").write_text("print('v3')\n")
    commit_all(repo, "v3")
    assert note(repo, head(repo)) == ""


def test_a_run_still_running_at_commit_time_ends_on_every_copy(repo: Path) -> None:
    install_hooks(repo)
    (repo / "train.py").write_text("print('long')\n")
    r = Repo.open(repo)
    active = tracking.begin(r, "long", {"lr": 0.1})
    commit_all(repo, "long")
    c = head(repo)
    assert 'status = "running"' in note(repo, c)
    active.log_metric("acc", 0.9)
    active.flush()
    tracking.finish(r, active.record, "finished", 0)
    for commit in (active.record.commit, c):
        doc = codec.decode_doc(note(repo, commit).encode())
        assert doc[active.id]["status"] == "finished"
        assert doc[active.id]["metrics"] == {"acc": 0.9}
        assert doc[active.id]["attached"] == [c]


def test_later_commits_with_the_same_code_do_not_repeat_runs(repo: Path) -> None:
    install_hooks(repo)
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\ncode = ["*.py"]\n')
    commit_all(repo, "config")
    (repo / "train.py").write_text("print('v2')\n")
    mlm(repo, "run", "--", "true")
    commit_all(repo, "v2")
    assert note(repo, head(repo)) != ""
    (repo / "README.md").write_text("docs only\n")
    commit_all(repo, "docs")
    assert note(repo, head(repo)) == ""


def test_squash_merge_shows_the_branch_runs_and_keeps_them(repo: Path) -> None:
    install_hooks(repo)
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "train.py").write_text("print('feature 1')\n")
    commit_all(repo, "f1")
    (repo / "train.py").write_text("print('feature 2')\n")
    commit_all(repo, "f2")
    f2 = head(repo)
    mlm(repo, "run", "-n", "on-branch", "--", "true")
    (repo / "extra.py").write_text("E = 1\n")
    mlm(repo, "run", "-n", "dirty-branch", "--", "true")  # a snapshot, never committed
    (repo / "extra.py").unlink()
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--squash", "feature")
    commit_all(repo, "feature (squashed)")
    squash = head(repo)
    [line] = run_lines(repo, "-n", "1")
    assert "on-branch" in line
    git(repo, "branch", "-q", "-D", "feature")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert git(repo, "cat-file", "-t", f2).strip() == "commit"  # kept by refs/mlm/keep/
    # A squash made elsewhere and pulled: `git mlm attach` does what the hooks do.
    git(repo, "notes", "--ref", "refs/notes/mlm", "remove", squash)
    out = mlm(repo, "attach").stdout
    assert "same code as" in out
    assert 'name = "on-branch"' in note(repo, squash)


def test_a_commit_of_an_output_shows_the_run_that_made_it(repo: Path) -> None:
    install_hooks(repo)
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\noutputs = ["model.bin"]\n')
    (repo / "train.py").write_text("open('model.bin', 'w').write('weights')\n")
    commit_all(repo, "code")
    mlm(repo, "run", "-n", "maker", "--", "python", "train.py")
    code_commit = head(repo)
    commit_all(repo, "model")
    [line] = run_lines(repo, "-n", "1")
    assert "maker" in line
    assert note(repo, code_commit) != ""


def test_amend_and_rebase_keep_notes_after_init(repo: Path) -> None:
    mlm(repo, "init")
    commit_all(repo, "init gitmlm")
    mlm(repo, "run", "-n", "first", "--", "true")
    git(repo, "commit", "-q", "--amend", "-m", "amended")
    assert "first" in note(repo, head(repo))
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "t.py").write_text("T = 1\n")
    commit_all(repo, "topic")
    mlm(repo, "run", "-n", "topic-run", "--", "true")
    git(repo, "checkout", "-q", "main")
    (repo / "m.py").write_text("M = 1\n")
    commit_all(repo, "main moves")
    git(repo, "checkout", "-q", "topic")
    git(repo, "rebase", "-q", "main")
    assert "topic-run" in note(repo, head(repo))
    assert len(runs(repo)) == 2


def test_interactive_squash_merges_both_notes_with_the_post_rewrite_hook(repo: Path) -> None:
    mlm(repo, "init")
    commit_all(repo, "init gitmlm")
    install_hooks(repo)
    for i in (1, 2):
        (repo / f"f{i}.py").write_text(f"X = {i}\n")
        commit_all(repo, f"c{i}")
        mlm(repo, "run", "-n", f"run{i}", "--", "true")
    env_editor = {"GIT_SEQUENCE_EDITOR": "sed -i '2s/^pick/squash/'", "GIT_EDITOR": "true"}
    import os
    import subprocess

    proc = subprocess.run(
        ["git", "rebase", "-q", "-i", "HEAD~2"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **env_editor},
    )
    assert proc.returncode == 0, proc.stderr
    doc = codec.decode_doc(note(repo, head(repo)).encode())  # one valid TOML document
    assert sorted(t["name"] for t in doc.values()) == ["run1", "run2"]


def test_post_commit_hook_never_fails_the_commit(repo: Path) -> None:
    install_hooks(repo)
    mlm(repo, "run", "--", "true")
    (repo / "mlm.toml").write_text("not toml [")
    git(repo, "add", "-A")
    # (--no-verify: the pre-commit check refuses a broken mlm.toml; post-commit still runs)
    proc = git_proc(repo, "commit", "-q", "--no-verify", "-m", "broken config")
    assert proc.returncode == 0
    assert "mlm-post-commit: " in proc.stderr and "invalid TOML" in proc.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "broken config"


def test_a_squash_merged_elsewhere_shows_after_git_pull(repo: Path, tmp_path: Path) -> None:
    server = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(server))
    a = tmp_path / "a"
    git(tmp_path, "clone", "-q", str(server), str(a))
    mlm(a, "init")
    commit_all(a, "init gitmlm")
    git(a, "push", "-q", "origin", "HEAD:main")
    git(a, "checkout", "-q", "-b", "feature")
    (a / "train.py").write_text("print('feature')\n")
    commit_all(a, "feature")
    mlm(a, "run", "-n", "reviewed", "--", "true")
    git(
        a,
        "push",
        "-q",
        "origin",
        "feature",
        "refs/notes/mlm:refs/notes/mlm",
        "refs/mlm/*:refs/mlm/*",
    )
    # The forge squash-merges the pull request (here: another clone) and deletes the branch.
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(server), str(b))
    git(b, "merge", "-q", "--squash", "origin/feature")
    git(b, "commit", "-q", "-m", "Feature (#1)")
    git(b, "push", "-q", "origin", "main", ":feature")
    install_hooks(a)
    git(a, "checkout", "-q", "main")
    git(a, "pull", "-q", "--ff-only", "origin", "main")
    [line] = run_lines(a, "-n", "1")
    assert "reviewed" in line
