"""`git mlm runs` from the column table (tracking.runlist.by_table) against the row path it
replaced (runlist.by_rows: query.select_runs over list_runs): the same stdout, stderr and exit
code, byte for byte, over many option combinations on runs of every kind, on a shallow clone
with runs it cannot place, after a clone without notes, and from a table saved by an earlier
build."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.cli import root
from gitmlm.cli.tracking import ROW_PATH_ENV
from gitmlm.core import codec, refs
from gitmlm.core.git import Repo
from gitmlm.tracking import query, runlist, runtable
from tests.helpers import git, mlm, random_run_table

Outcome = tuple[int, str, str]


def commits(path: Path, count: int) -> list[str]:
    out = []
    for i in range(count):
        (path / "f.txt").write_text(str(i))
        git(path, "add", "-A")
        git(path, "commit", "-qm", f"c{i}")
        out.append(git(path, "rev-parse", "HEAD").strip())
    return out


def write_notes(path: Path, notes: dict[str, bytes]) -> None:
    repo = Repo.open(path)
    updates: dict[str, str | None] = {c: repo.write_blob(body) for c, body in notes.items()}
    tip = repo.ref(refs.RUNS)
    repo.update_ref(refs.RUNS, repo.write_notes(refs.RUNS, tip, updates, "test"), tip)


def fill(path: Path, live: bool = True, runs: int = 70) -> None:
    """Runs of every kind (`live`: `running` ones too, which no table keeps) on 6 commits, a
    run on two commits, two commits sharing a note with a run table that does not read, two
    sharing a note that is not TOML."""
    rng = random.Random(11)
    shas = commits(path, 10)
    docs: dict[str, dict[str, dict[str, Any]]] = {}
    ids: list[str] = []
    for i in range(runs):
        # Ids sharing long prefixes, so the shortest unique prefixes differ in length.
        rid = f"01k{i // 7:012d}{rng.choice('abc')}{i:010d}"
        commit = shas[i % 6]
        docs.setdefault(commit, {})[rid] = random_run_table(rng, i, commit, ids, live)
        ids.append(rid)
    # A deleted run's columns are not known: naming one is an error.
    gone = random_run_table(rng, runs, shas[2], ids, live)
    docs[shas[2]]["01kzz0000000000000000000gg"] = {**gone, "deleted": True, "params": {"gone": 1}}
    twin = ids[0]
    docs[shas[1]][twin] = {
        **docs[shas[0]][twin],
        "updated": "2027-01-01T00:00:00Z",
        "name": "moved",
    }
    bad = {
        "01kzz0000000000000000000aa": {"name": "broken"},  # no status, started, commit
        ids[3]: docs[shas[3]][ids[3]],  # the same run on two more commits, in a damaged note
        ids[2]: {"name": "broken copy"},  # its one readable copy is on shas[2]
    }
    notes = {c: codec.encode_doc(d) for c, d in docs.items()}
    notes[shas[6]] = notes[shas[7]] = codec.encode_doc(bad)
    notes[shas[8]] = notes[shas[9]] = b"schema = 1\nnot = [toml\n"
    write_notes(path, notes)
    (path / "mlm.toml").write_text('[metrics]\nacc = "max"\n')


@pytest.fixture
def varied(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITMLM_RUN_TIMEOUT", "36000")  # the live run stays running throughout
    fill(repo)
    return repo


def outcome(
    argv: list[str], row_path: bool, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> Outcome:
    if row_path:
        mp.setenv(ROW_PATH_ENV, "1")
    else:
        mp.delenv(ROW_PATH_ENV, raising=False)
    code = root.main(["runs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same(
    argv: list[str], capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> Outcome:
    table = outcome(argv, False, capsys, mp)
    rows = outcome(argv, True, capsys, mp)
    assert table == rows, argv
    return table


WHERES = [
    None,
    "metrics.acc > 0.5",
    "metrics.acc = nan",
    "metrics.acc is null",
    "params.mixed = 2",
    "params.mixed like '%1%'",
    "params.opt.name = 'adam'",
    "status = 'crashed'",
    "status in ('running', 'FAILED')",
    "tags.team is null",
    "start_time > 1762000000000",
    "name like 'run-%'",
    "parent is not null",
    "datasets.train is not null",
    "metrics.nosuch > 1",  # an error with a suggestion
    "metrics.acx > 1",
    "params.lr >",  # a syntax error
]
ORDERS = [None, "metrics.acc desc", "params.mixed", "-metrics.loss", "name desc, started"]
ORDERS += ["start_time", "metrics.`f1 score`", "nosuch.col"]
COLUMNS = [None, "name,metrics.acc", "run_id,parent,datasets.train", "nosuch", "metrics.acx"]
COLUMNS += ["params.opt.name,note,ended", "status, exit_code"]
FORMATS = ["table", "json", "csv", "md"]


def combos(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        argv: list[str] = ["--format", rng.choice(FORMATS)]
        where, order, cols = rng.choice(WHERES), rng.choice(ORDERS), rng.choice(COLUMNS)
        if where is not None:
            argv += ["--where", where]
        if order is not None:
            argv += ["--order-by", order]
        if cols is not None:
            argv += ["--columns", cols]
        if rng.random() < 0.5:
            argv += ["-n", str(rng.choice([0, 1, 3, 10]))]
        if rng.random() < 0.3:
            argv.append("--all")
        if rng.random() < 0.2:
            argv += ["--best", rng.choice(["acc", "acc", "loss"])]  # loss: not declared
        if rng.random() < 0.25:
            argv.append("--tree")
        out.append(argv)
    return out


def test_many_listings_print_the_same(
    varied: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo.open(varied)
    # The table answers here (it is not the row path answering twice).
    listed = runlist.by_table(repo, None, None, None, archived=True, best=None)
    assert listed is not None and len(listed.errors) == 6 and listed.any_runs
    code, out, err = assert_same([], capsys, monkeypatch)
    assert code == 0 and "running" in out and "crashed" in out and "moved" in out
    assert err.count("skipped the note") == 6
    for argv in [
        ["--all", "--format", "json"],
        ["--all", "-c", "run_id,parent,name"],
        ["--best", "acc", "-n", "3"],
        ["-c", "nosuch"],
        ["-c", "name,params.gone", "--all"],
        ["--tree", "--all"],
        ["--tree", "--all", "--format", "json", "-n", "9"],
        ["-n", "0", "--format", "csv"],
    ]:
        assert_same(argv, capsys, monkeypatch)
    for argv in combos(160, 5):
        assert_same(argv, capsys, monkeypatch)


def test_a_shallow_clone_and_a_clone_without_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    fill(origin, live=False, runs=40)
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(origin, "remote", "add", "origin", str(tmp_path / "remote.git"))
    git(origin, "push", "-q", "origin", "main")
    mlm(origin, "push")
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), "bare-clone")
    git(tmp_path, "clone", "-q", "--depth", "5", f"file://{tmp_path / 'remote.git'}", "shallow")
    mlm(tmp_path / "shallow", "fetch")
    monkeypatch.chdir(tmp_path / "bare-clone")  # no notes: the fetch hint
    assert "git mlm fetch" in assert_same([], capsys, monkeypatch)[2]
    monkeypatch.chdir(tmp_path / "shallow")
    listed = runlist.by_table(Repo.open("."), None, None, None, archived=False, best=None)
    assert listed is not None and listed.unplaced and listed.rows  # the table answers
    err = assert_same(["--all"], capsys, monkeypatch)[2]
    assert "runs are on commits this clone does not have" in err
    # The API lists the very runs `git mlm runs` lists, and says what it says.
    _, out, err = assert_same(["--all", "--format", "json"], capsys, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = gitmlm.runs(archived=True)
    assert sorted(frame["run_id"]) == sorted(row["run_id"] for row in json.loads(out))
    said = [str(w.message).removeprefix("gitmlm.runs: ") for w in caught]
    assert said == [line.removeprefix("git mlm: ") for line in err.splitlines()]
    assert f"{listed.unplaced} runs are on commits this clone does not have" in said[-1]
    with pytest.warns(UserWarning, match="skipped the note"):  # origin's broken notes
        everything = gitmlm.runs(archived=True, path=str(origin))
    assert 0 < len(frame) < len(everything)
    for argv in [["-c", "name,params.gone"], ["-c", "params.layers"], *combos(40, 6)]:
        assert_same(argv, capsys, monkeypatch)


def test_a_saved_table_lists_the_same_in_a_new_process(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(repo, live=False)
    monkeypatch.setattr(runtable, "PARALLEL_NOTES", 1)  # worker processes: the table is saved
    monkeypatch.setattr(runtable, "JOB_NOTES", 2)
    argv = ["--all", "-c", "run_id,name,metrics.acc,parent", "-n", "12"]
    first = outcome(argv, False, capsys, monkeypatch)
    for _ in range(100):  # written by a thread, beside the query
        if list((repo / ".git" / "mlm" / "cache").glob("runtable-*.bin")):
            break
        time.sleep(0.05)
    assert list((repo / ".git" / "mlm" / "cache").glob("runtable-*.bin"))
    runtable._tables.clear()
    query._listed.clear()
    assert first == outcome(argv, True, capsys, monkeypatch)
    # New processes: the saved table, and the row path.
    env = {**os.environ}
    env.pop(ROW_PATH_ENV, None)
    for args in (argv, ["--where", "metrics.acc > 0.2", "--format", "json"], ["-c", "nosuch"]):
        saved = mlm(repo, "runs", *args, check=False, env=env)
        rows = mlm(repo, "runs", *args, check=False, env={**env, ROW_PATH_ENV: "1"})
        assert (saved.returncode, saved.stdout, saved.stderr) == (
            rows.returncode,
            rows.stdout,
            rows.stderr,
        )
    assert saved.returncode == 1 and "skipped the note" in saved.stderr
    # The notes move: this process reads the changed note only and reuses the rest.
    runtable._tables.clear()
    assert outcome(argv, False, capsys, monkeypatch)[0] == 0  # this process's build again
    (new,) = commits(repo, 1)
    table = {"name": "late", "status": "finished", "started": "2027-02-01T00:00:00Z"}
    write_notes(
        repo, {new: codec.encode_doc({"01kzz0000000000000000000ll": {**table, "commit": new}})}
    )
    building = runtable.start(Repo.open(repo))
    runtable.cancel(building)
    assert isinstance(building, runtable.Partial)
    for args in (argv, ["--where", "name = 'late'", "--format", "json"], ["--tree", "-n", "5"]):
        assert_same(args, capsys, monkeypatch)
        # A new process: the table saved for the earlier tip, and the new note.
        saved = mlm(repo, "runs", *args, check=False, env=env)
        rows = mlm(repo, "runs", *args, check=False, env={**env, ROW_PATH_ENV: "1"})
        assert (saved.returncode, saved.stdout, saved.stderr) == (
            rows.returncode,
            rows.stdout,
            rows.stderr,
        )


def test_recover_then_list_prints_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--recover writes before it lists: each path runs it on its own copy of one repository."""
    one = tmp_path / "one"
    one.mkdir()
    git(one, "init", "-q")
    fill(one)
    two = tmp_path / "two"
    subprocess.run(["cp", "-a", str(one), str(two)], check=True)
    got = []
    for path, row_path in ((one, False), (two, True)):
        monkeypatch.chdir(path)
        got.append(
            outcome(
                ["--recover", "--all", "-c", "run_id,name,status"], row_path, capsys, monkeypatch
            )
        )
    assert got[0] == got[1]
    assert "recovered run" in got[0][2] and "crashed" in got[0][1]
