"""git mlm fetch/push/sync against real remotes: a bare repository over file:// and a real
`git daemon` on loopback. Nothing is mocked; every check reads refs and notes back from git."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core import remote as transport
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.sync import keep, sync
from gitmlm.tracking import record as tracking
from tests.gitdaemon import GitDaemon
from tests.helpers import git, mlm

# --- helpers ---------------------------------------------------------------------------------


def make_remote(tmp_path: Path, name: str = "remote.git") -> Path:
    """A bare repository with one commit on main, like a fresh project on a server."""
    bare = tmp_path / name
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / f"seed-{name}"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "train.py").write_text("print('train')\n")
    git(seed, "add", "train.py")
    git(seed, "commit", "-q", "-m", "initial")
    git(seed, "push", "-q", str(bare), "main")
    return bare


def clone(url: str, dest: Path, *args: str) -> Path:
    git(dest.parent, "clone", "-q", *args, url, str(dest))
    return dest


def record(path: Path, name: str, **params: Any) -> dict[str, Any]:
    """One finished run made through the tracking API; returns its record as stored."""
    repo = Repo.open(path)
    active = tracking.begin(repo, name, params, command=["train", name])
    active.log_metric("acc", random.random())
    active.log_metric("loss", 1.0, step=0)  # a step series: the second notes ref syncs too
    active.log_metric("loss", 0.5, step=1)
    active.flush()
    done = tracking.finish(repo, active.record, "finished", 0)
    return {"id": done.id, **codec.run_to_dict(done)}


def listed(path: Path) -> dict[str, dict[str, Any]]:
    """Run id -> stored record, as `git mlm runs` sees them in a clone or a bare remote."""
    return {
        r.id: {"id": r.id, **codec.run_to_dict(r)} for r in tracking.list_runs(Repo.open(path)).runs
    }


def series_ids(path: Path) -> set[str]:
    """Run ids that have a step series in refs/notes/mlm-series."""
    repo = Repo.open(path)
    snap = store.snapshot(repo, refs.SERIES)
    return {rid for doc in store.read_all(repo, snap).values() for rid in doc}


def mlm_refs(path: Path) -> str:
    """Every ref but the remote-tracking ones, with its target: what a failed push must not move."""
    out = git(path, "for-each-ref", "--format=%(refname) %(objectname)")
    return "\n".join(
        line
        for line in out.splitlines()
        if not line.startswith(("refs/notes/remotes/", "refs/mlm-remotes/", "refs/remotes/"))
    )


def commit(path: Path, message: str) -> str:
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD").strip()


@pytest.fixture
def remote(tmp_path: Path) -> str:
    return "file://" + str(make_remote(tmp_path))


# --- basic flows -----------------------------------------------------------------------------


def test_clone_then_fetch_shows_everything(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    made = {r["id"]: r for r in (record(a, "one", lr=0.1), record(a, "two", lr=0.2))}
    out = mlm(a, "sync").stdout
    assert "pushed to origin" in out and refs.RUNS in out

    b = clone(remote, tmp_path / "b")
    assert listed(b) == {}  # notes are not part of a clone
    out = mlm(b, "fetch").stdout
    assert "refs/notes/mlm: created" in out
    assert listed(b) == made
    assert len(mlm(b, "runs", "--format", "csv").stdout.strip().splitlines()) == 3
    assert mlm(b, "fetch").stdout.strip() == "fetched from origin: up to date"


def test_diverged_notes_merge_run_by_run_with_both_parents(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    made = {}
    for path, name in ((a, "from-a"), (b, "from-b")):
        r = record(path, name)
        made[r["id"]] = r
    mlm(a, "sync")
    out = mlm(b, "sync").stdout
    assert "merged, 1 run added" in out
    tip = Repo.open(b).ref(refs.RUNS)
    assert tip is not None
    parents = git(b, "rev-list", "--parents", "-n1", tip).split()[1:]
    assert len(parents) == 2  # history shows the merge
    mlm(a, "sync")
    assert listed(a) == listed(b) == made
    bare = remote.removeprefix("file://")
    assert listed(Path(bare)) == made
    # Both runs sit in one note on the same commit: one TOML document, two run tables.
    repo = Repo.open(a)
    snap = store.snapshot(repo, refs.RUNS)
    assert len(snap.entries) == 1
    assert set(store.read_doc(repo, next(iter(snap.entries.values())))) == set(made)


def test_same_run_changed_on_both_sides_later_updated_wins(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    r = record(a, "shared")
    mlm(a, "sync")
    b = clone(remote, tmp_path / "b")
    mlm(b, "fetch")
    rid, at = r["id"], r["commit"]
    base = {k: v for k, v in r.items() if k != "id"}
    # a adds a tag (later), b adds a metric (earlier): the later record wins, nothing is lost.
    metrics = {**base["metrics"], "f1": 0.5}
    store.put_runs(
        Repo.open(b), refs.RUNS, at,
        {rid: {**base, "updated": "2999-01-01T00:00:01Z", "metrics": metrics}},
        "edit",
    )  # fmt: skip
    store.put_runs(
        Repo.open(a), refs.RUNS, at,
        {rid: {**base, "updated": "2999-01-01T00:00:02Z", "tags": {"reviewed": "yes"}}},
        "edit",
    )  # fmt: skip
    mlm(a, "sync")
    mlm(b, "sync")
    mlm(a, "sync")
    for path in (a, b):
        got = listed(path)[rid]
        assert got["updated"] == "2999-01-01T00:00:02Z"
        assert got["tags"] == {"reviewed": "yes"}
        assert got["metrics"]["f1"] == 0.5
    assert listed(a) == listed(b)


def test_fresh_remote_that_never_saw_gitmlm(tmp_path: Path) -> None:
    a = clone("file://" + str(make_remote(tmp_path)), tmp_path / "a")
    made = record(a, "first")
    git(a, "tag", "-a", "churn@v0.1.0", "-m", "model")
    git(a, "update-ref", refs.checkpoint(made["id"]), "HEAD")
    out = mlm(a, "push").stdout
    assert refs.RUNS in out and "1 under refs/tags/" in out and "refs/mlm/checkpoints/" in out
    remote_refs = git(tmp_path / "remote.git", "for-each-ref", "--format=%(refname)").split()
    assert {refs.RUNS, refs.keep(made["commit"]), "refs/tags/churn@v0.1.0"} <= set(remote_refs)
    assert refs.checkpoint(made["id"]) in remote_refs
    assert mlm(a, "push").stdout.strip() == "origin is up to date"


def test_registry_tag_made_in_one_clone_appears_in_another(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    git(a, "tag", "-a", "churn@v1.0.0", "-m", 'schema = 1\nrun = "x"\n')
    git(a, "tag", "-a", "churn#production#1", "-m", "schema = 1\n")
    git(a, "tag", "plain-release")  # not a registry tag: not gitmlm's to carry
    mlm(a, "sync")
    assert "fetched: 2 new under refs/tags/" in mlm(b, "sync").stdout
    for tag in ("churn@v1.0.0", "churn#production#1"):
        assert git(b, "rev-parse", f"refs/tags/{tag}") == git(a, "rev-parse", f"refs/tags/{tag}")
        assert git(b, "cat-file", "-t", f"refs/tags/{tag}").strip() == "tag"  # still annotated
    assert git(b, "tag", "-l", "plain-release").strip() == ""


def test_unique_refs_are_added_never_overwritten(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    first = commit(a, "snapshot one")
    git(a, "update-ref", "refs/mlm/checkpoints/01aaaaaaaaaaaaaaaaaaaaaaaa", first)
    git(a, "update-ref", "refs/mlm/checkpoints/01bbbbbbbbbbbbbbbbbbbbbbbb", first)
    mlm(a, "sync")
    other = commit(b, "other snapshot")
    git(b, "update-ref", "refs/mlm/checkpoints/01bbbbbbbbbbbbbbbbbbbbbbbb", other)
    proc = mlm(b, "sync")
    assert "refs/mlm/checkpoints/01bbbbbbbbbbbbbbbbbbbbbbbb differs" in proc.stderr
    assert git(b, "rev-parse", "refs/mlm/checkpoints/01aaaaaaaaaaaaaaaaaaaaaaaa").strip() == first
    assert git(b, "rev-parse", "refs/mlm/checkpoints/01bbbbbbbbbbbbbbbbbbbbbbbb").strip() == other
    bare = remote.removeprefix("file://")
    assert (
        git(Path(bare), "rev-parse", "refs/mlm/checkpoints/01bbbbbbbbbbbbbbbbbbbbbbbb").strip()
        == first
    )


def test_push_alone_refuses_when_the_remote_has_unmerged_records(
    tmp_path: Path, remote: str
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    record(a, "a")
    mlm(a, "push")
    record(b, "b")
    before = mlm_refs(b)
    proc = mlm(b, "push", check=False)
    assert proc.returncode == 1
    assert "run `git mlm sync origin`" in proc.stderr
    assert mlm_refs(b) == before


# --- bad input and faults --------------------------------------------------------------------


def test_remote_that_does_not_exist(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    record(a, "x")
    before = mlm_refs(a)
    proc = mlm(a, "sync", "nosuch", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "git mlm: no remote named 'nosuch' (remotes: origin); "
        "add one with `git remote add nosuch URL`"
    )
    git(a, "remote", "add", "gone", str(tmp_path / "missing.git"))
    for cmd in ("sync", "fetch", "push"):
        proc = mlm(a, cmd, "gone", check=False)
        assert proc.returncode == 1
        assert proc.stderr.startswith("git mlm: cannot reach remote 'gone'")
        assert "nothing was changed" in proc.stderr and "Traceback" not in proc.stderr
    assert mlm_refs(a) == before


def test_remote_that_refuses_the_push(tmp_path: Path, remote: str) -> None:
    bare = Path(remote.removeprefix("file://"))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'records are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    a = clone(remote, tmp_path / "a")
    record(a, "x")
    before = mlm_refs(a)
    proc = mlm(a, "sync", check=False)
    assert proc.returncode == 1
    assert "'origin' refused the push" in proc.stderr
    assert "pre-receive hook declined" in proc.stderr
    assert "records are frozen" in proc.stderr
    assert mlm_refs(a).replace("\n", " ").split() == before.replace("\n", " ").split()
    assert git(bare, "for-each-ref", "refs/notes/", "refs/mlm/").strip() == ""


def test_invalid_remote_note_is_reported_kept_and_the_rest_merges(
    tmp_path: Path, remote: str
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    ra = record(a, "a")
    mlm(a, "sync")
    mlm(b, "fetch")
    # Someone hand-edits the note on the shared commit into broken TOML and pushes it.
    at = ra["commit"]
    git(a, "notes", "--ref", refs.RUNS, "add", "-f", "-m", "this = [is not toml", at)
    lone = commit(a, "lonely")
    git(a, "notes", "--ref", refs.RUNS, "add", "-m", "also = [broken", lone)
    git(a, "push", "-q", "origin", f"{refs.RUNS}:{refs.RUNS}", "HEAD:refs/heads/lonely")
    rb = record(b, "b")
    proc = mlm(b, "sync")
    assert f"their note on {at[:12]} in refs/notes/mlm is not valid" in proc.stderr
    assert f"origin's note on {lone[:12]}" in proc.stderr
    got = listed(b)
    assert set(got) == {ra["id"], rb["id"]}  # our valid note won; the garbage did not spread
    repo = Repo.open(b)
    notes = repo.notes(repo.ref(refs.RUNS))
    assert repo.blob(notes[lone]) == b"also = [broken\n"  # kept, not dropped
    # The invalid note stays in history: the merge commit's second parent still has it.
    assert "is not toml" in git(b, "notes", "--ref", "refs/notes/remotes/origin/mlm", "show", at)
    # a picks up the valid record again; both sides agree.
    mlm(a, "sync")
    assert listed(a) == listed(b)


def test_bounded_retries_against_a_remote_that_always_moves(tmp_path: Path, remote: str) -> None:
    bare = Path(remote.removeprefix("file://"))
    a = clone(remote, tmp_path / "a")
    record(a, "x")
    mlm(a, "sync")
    record(a, "y")
    # A server-side hook that moves refs/notes/mlm before every push lands: every lease fails.
    clean = "env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\nold=$(git rev-parse refs/notes/mlm)\n"
        f'new=$({clean} git commit-tree -p $old -m race "$old^{{tree}}")\n'
        f"{clean} git update-ref refs/notes/mlm $new $old\n"
    )
    hook.chmod(0o755)
    repo = Repo.open(a)
    fetched = sync.fetch(repo, "origin")
    bare_tip = git(bare, "rev-parse", refs.RUNS)
    with pytest.raises(transport.Raced):
        sync.push(repo, "origin", fetched.remote_refs)
    assert git(bare, "rev-parse", refs.RUNS) != bare_tip  # the hook moved it, our push lost
    with pytest.raises(MlmError, match="kept moving: gave up after 3 attempts"):
        sync.sync(repo, "origin", attempts=3)
    hook.unlink()
    report = sync.sync(repo, "origin")
    assert report.attempts == 1
    assert listed(bare) == listed(a)


def test_lost_race_fetches_merges_and_retries(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    record(a, "a")
    record(b, "b")
    ra, rb = Repo.open(a), Repo.open(b)
    seen = sync.fetch(ra, "origin")
    sync.sync(rb, "origin")  # b pushes between a's fetch and a's push
    with pytest.raises(transport.Raced):
        sync.push(ra, "origin", seen.remote_refs)
    assert sync.sync(ra, "origin").attempts == 1
    sync.sync(rb, "origin")
    assert listed(a) == listed(b) and len(listed(a)) == 2


# --- plain git alongside ---------------------------------------------------------------------


def test_plain_git_fetch_pull_push_and_sync_never_conflict(tmp_path: Path, remote: str) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    for path in (a, b):
        mlm(path, "init")
    git(a, "push", "-q")
    git(b, "pull", "-q", "--no-rebase")
    ra = record(a, "a")
    git(a, "push", "-q")  # plain push carries the notes (a fast-forward)
    rb = record(b, "b")
    git(b, "fetch", "-q")  # plain fetch: into refs/notes/remotes/origin/, never over ours
    assert (
        git(b, "rev-parse", "refs/notes/remotes/origin/mlm").strip()
        != git(b, "rev-parse", refs.RUNS).strip()
    )
    git(b, "pull", "-q", "--no-rebase")  # a pull merges the branch only
    assert set(listed(b)) == {rb["id"]}
    mlm(b, "sync")
    git(a, "pull", "-q", "--no-rebase")
    mlm(a, "fetch")
    assert set(listed(a)) == set(listed(b)) == {ra["id"], rb["id"]}
    assert git(a, "push", "--porcelain").count("[rejected]") == 0  # nothing diverged
    assert (
        "Everything up-to-date"
        in subprocess.run(["git", "push"], cwd=b, capture_output=True, text=True).stderr
    )


# --- history: shallow clones and rewritten commits --------------------------------------------


def test_shallow_clone_lists_what_it_can_place_and_counts_the_rest(
    tmp_path: Path, remote: str
) -> None:
    a = clone(remote, tmp_path / "a")
    old = record(a, "old")
    commit(a, "second")
    new = record(a, "new")
    git(a, "push", "-q", "origin", "main")
    mlm(a, "sync")
    s = clone(remote, tmp_path / "s", "--depth", "1")
    mlm(s, "fetch")
    assert git(s, "rev-parse", "--is-shallow-repository").strip() == "true"
    assert git(s, "rev-list", "--count", "HEAD").strip() == "1"  # still shallow after fetch
    placed = tracking.list_runs(Repo.open(s), placed_only=True)
    assert {r.id for r in placed.runs} == {new["id"]} and placed.unplaced == 1
    assert set(listed(s)) == {old["id"], new["id"]}  # `git mlm show` still finds both
    proc = mlm(s, "runs", "--format", "csv")
    assert "1 runs are on commits this clone does not have" in proc.stderr
    assert old["id"] not in proc.stdout and new["id"][:12] in proc.stdout
    assert tracking.list_runs(Repo.open(s)).unplaced == 1
    # A run made in the shallow clone still syncs, and the full clone sees it.
    made = record(s, "from-shallow")
    mlm(s, "sync")
    mlm(a, "sync")
    assert made["id"] in listed(a)


def test_records_of_rewritten_commits_stay_reachable(tmp_path: Path, remote: str) -> None:
    bare = Path(remote.removeprefix("file://"))
    a = clone(remote, tmp_path / "a")
    mlm(a, "init")  # notes.rewriteRef: an amend copies the run's note to the new commit
    git(a, "checkout", "-q", "-b", "feature")
    (a / "model.py").write_text("x = 1\n")
    git(a, "add", "model.py", "mlm.toml")  # a clean tree: the run goes on the commit itself
    first = commit(a, "feature work")
    r = record(a, "on-feature")
    git(a, "commit", "-q", "--amend", "-m", "feature work, reworded")
    feature = git(a, "rev-parse", "HEAD").strip()
    assert git(a, "notes", "--ref", refs.RUNS, "list", feature).strip()
    git(a, "push", "-q", "origin", "feature")
    assert git(a, "for-each-ref", refs.keep(feature)).strip() == ""  # nothing pinned it yet
    out = mlm(a, "sync").stdout
    assert "2 under refs/mlm/keep/" in out  # the run's own (made at start) and the copy's
    assert git(a, "rev-parse", refs.keep(feature)).strip() == feature
    # The server squash-merges the pull request and deletes the branch.
    work = clone(remote, tmp_path / "merger")
    git(work, "merge", "-q", "--squash", "origin/feature")
    git(work, "commit", "-q", "-m", "feature (squashed)")
    git(work, "push", "-q", "origin", "main", ":feature")
    git(bare, "gc", "-q", "--prune=now")
    for c in (first, feature):  # kept by refs/mlm/keep/<commit>
        assert git(bare, "cat-file", "-t", c).strip() == "commit"
    # The author drops the branch and prunes everything unreachable; the run survives.
    git(a, "checkout", "-q", "main")
    git(a, "branch", "-q", "-D", "feature")
    git(a, "remote", "prune", "origin")
    git(a, "reflog", "expire", "--expire=now", "--all")
    git(a, "gc", "-q", "--prune=now")
    assert git(a, "cat-file", "-t", first).strip() == "commit"
    assert git(a, "cat-file", "-t", feature).strip() == "commit"
    # A new teammate clones after the squash and sees the run, placed on its commit.
    c = clone(remote, tmp_path / "c")
    mlm(c, "fetch")
    assert listed(c)[r["id"]]["commit"] == first
    assert set(tracking.list_runs(Repo.open(c)).commits[r["id"]]) == {first, feature}
    assert git(c, "rev-parse", refs.keep(feature)).strip() == feature


# --- a real server on loopback ---------------------------------------------------------------


def test_three_clones_sync_concurrently_and_end_with_the_union(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    make_remote(tmp_path / "srv")
    with GitDaemon(tmp_path / "srv") as daemon:
        url = daemon.url("remote.git")
        clones = [clone(url, tmp_path / f"c{i}") for i in range(3)]
        made: dict[str, dict[str, Any]] = {}
        rng = random.Random(6)
        for round_ in range(3):
            for i, path in enumerate(clones):
                made.update((r["id"], r) for r in [record(path, f"c{i}-r{round_}-same")])
                if rng.random() < 0.7:  # some runs on a commit only this clone has
                    git(path, "checkout", "-q", "-B", f"work-{i}")
                    commit(path, f"clone {i} round {round_}")
                    made.update((r["id"], r) for r in [record(path, f"c{i}-r{round_}-own")])
                    git(path, "checkout", "-q", "main")
            order = clones[:]
            rng.shuffle(order)
            results: list[subprocess.CompletedProcess[str]] = []

            def go(path: Path, out: list[subprocess.CompletedProcess[str]], delay: float) -> None:
                time.sleep(delay)
                out.append(mlm(path, "sync", check=False))

            threads = [
                threading.Thread(target=go, args=(p, results, rng.random() * 0.2)) for p in order
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for proc in results:
                assert proc.returncode == 0, proc.stderr
        for _ in range(2):
            for path in clones:
                mlm(path, "sync")
        for path in [*clones, tmp_path / "srv" / "remote.git"]:
            assert listed(path) == made, path
            assert series_ids(path) == set(made), path
        assert len(made) >= 9
        # Every commit that carries a record is pinned on the server.
        server = Repo.open(tmp_path / "srv" / "remote.git")
        annotated = set(server.notes(server.ref(refs.RUNS)))
        assert annotated <= keep.pinned(server)


def test_network_failure_mid_push_then_the_next_sync_completes(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    srv.mkdir()
    bare = make_remote(srv)
    daemon = GitDaemon(srv).start()
    try:
        a = clone(daemon.url("remote.git"), tmp_path / "a")
        record(a, "first")
        mlm(a, "sync")
        made = record(a, "second")
        marker = tmp_path / "receiving"
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nsleep 30\n")
        hook.chmod(0o755)
        before, remote_before = mlm_refs(a), git(bare, "rev-parse", refs.RUNS)
        proc = subprocess.Popen(
            ["git", "mlm", "sync"], cwd=a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the push never reached the server"
        daemon.kill()  # the server dies with the pack received and no ref updated
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert "push to 'origin' failed" in err and "run `git mlm sync` again" in err
        assert "Traceback" not in err
        assert mlm_refs(a) == before
        assert git(bare, "rev-parse", refs.RUNS) == remote_before
        hook.unlink()
        daemon.start()  # same port: the remote URL is unchanged
        mlm(a, "sync")
        assert made["id"] in listed(bare)
    finally:
        daemon.kill()


def test_a_note_on_a_tree_or_a_missing_commit_does_not_break_sync(
    tmp_path: Path, remote: str
) -> None:
    a = clone(remote, tmp_path / "a")
    made = record(a, "x")
    tree = git(a, "rev-parse", "HEAD^{tree}").strip()
    git(a, "notes", "--ref", refs.RUNS, "add", "-m", "schema = 1", tree)
    mlm(a, "sync")
    repo = Repo.open(a)
    pinned = keep.pinned(repo)
    assert tree not in pinned and made["commit"] in pinned
    b = clone(remote, tmp_path / "b")
    mlm(b, "sync")
    assert set(listed(b)) == {made["id"]}


def test_a_large_merge_writes_its_notes_in_one_pack(repo: Path) -> None:
    r = Repo.open(repo)
    commits = [f"{i:040x}" for i in range(1, 101)]

    def side(ref: str, offset: int) -> dict[str, dict[str, Any]]:
        made: dict[str, dict[str, Any]] = {}
        updates: dict[str, str | None] = {}
        for n, c in enumerate(commits):
            rid = f"01m{offset + n:023d}"
            table = {"status": "finished", "started": "2026-01-01T00:00:00Z", "commit": c}
            made[rid] = table
            updates[c] = r.write_blob(codec.encode_doc({rid: table}))
        r.update_ref(ref, r.write_notes(ref, None, updates, "runs"), None)
        return made

    ours, theirs = side(refs.RUNS, 0), side("refs/notes/theirs", 500)
    packs = set((repo / ".git" / "objects" / "pack").glob("*.pack"))
    change = sync.merge_notes_ref(r, refs.RUNS, r.ref("refs/notes/theirs") or "", "them")
    assert change is not None and (change.action, change.notes, change.runs_added) == (
        "merged",
        100,
        100,
    )
    assert len(set((repo / ".git" / "objects" / "pack").glob("*.pack")) - packs) == 1
    snap = store.snapshot(r, refs.RUNS)
    docs = store.read_all(r, snap)
    assert {rid for doc in docs.values() for rid in doc} == set(ours) | set(theirs)
    assert all(len(doc) == 2 for doc in docs.values())
    # The notes name commits this repository does not have: listings cannot place them.
    assert tracking.list_runs(r).unplaced == 200
    git(repo, "fsck", "--no-dangling")


def test_two_people_record_promote_sync_and_see_everything(tmp_path: Path, remote: str) -> None:
    """The issue's "done when", as a new team would do it."""
    a = clone(remote, tmp_path / "ada")
    (a / "mlm.toml").write_text('[models.churn]\npath = "model.pkl"\n')
    (a / "model.pkl").write_text("weights\n")
    git(a, "add", "mlm.toml", "model.pkl")
    git(a, "commit", "-q", "-m", "first model")
    git(a, "push", "-q", "origin", "main")
    b = clone(remote, tmp_path / "bob")
    mlm(a, "register", "churn", "-m", "first")
    mlm(a, "promote", "churn", "staging")
    made = {r["id"] for r in (record(a, "ada-1"), record(b, "bob-1"), record(b, "bob-2"))}
    for path in (a, b, a):
        mlm(path, "sync")
    for path in (a, b):
        rows = mlm(path, "runs", "--format", "csv", "-c", "run_id").stdout.split()[1:]
        assert set(rows) == made
        models = mlm(path, "models", "--format", "csv").stdout.strip().splitlines()
        assert models[1:] == ["churn,v0.0.1,,v0.0.1,"]
