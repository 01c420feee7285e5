"""gitmlm.runs() over the columnar run table (tracking.runtable, tracking.wherecols) against the
row path it replaced (query.select_runs, then DataFrame.from_records of the rows): the same
frame, value for value and dtype for dtype, over many queries on runs of every value kind."""

from __future__ import annotations

import datetime
import marshal
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import gitmlm
from gitmlm.core import codec, notes, refs
from gitmlm.core.git import Repo
from gitmlm.core.records import flat_row
from gitmlm.errors import MlmError
from gitmlm.tracking import listing, query, runscan, runtable, table
from tests.helpers import mlm, random_run_table

FIRST = ["run_id", "name", "status", "commit", "started", "ended"]


@pytest.fixture(autouse=True)
def one_note_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job per note, so a build over these few notes is spread over several jobs."""
    monkeypatch.setattr(runtable, "JOB_NOTES", 1)


def reference(
    path: Path,
    where: str | None = None,
    order_by: str | list[str] | None = None,
    archived: bool = False,
    best: str | None = None,
) -> pd.DataFrame:
    """runs_frame as it was: the row path, then from_records of the row dicts."""
    rows, _ = query.select_runs(Repo.open(path), where, order_by, archived=archived, best=best)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=FIRST)
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")
    first = [c for c in FIRST if c in frame.columns]
    return frame[first + sorted(c for c in frame.columns if c not in first)]


def forget() -> None:
    """This process's tables and parsed notes forgotten, as in a new process."""
    runtable._tables.clear()
    runtable._parsed.clear()


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for column in want.columns:  # None and NaN are told apart; so are -0.0 and 0.0
        for a, b in zip(got[column].tolist(), want[column].tolist(), strict=True):
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float) and math.isnan(a), (column, a, b)
            else:
                assert type(a) is type(b) and repr(a) == repr(b), (column, a, b)


def write_notes(path: Path, notes: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Notes written as the codec writes them, in one notes commit (as a sync would)."""
    repo = Repo.open(path)
    updates: dict[str, str | None] = {
        c: repo.write_blob(codec.encode_doc(doc)) for c, doc in notes.items()
    }
    tip = repo.ref(refs.RUNS)
    repo.update_ref(refs.RUNS, repo.write_notes(refs.RUNS, tip, updates, "test"), tip)


def commits(path: Path, count: int) -> list[str]:
    out = []
    for i in range(count):
        (path / "f.txt").write_text(str(i))
        subprocess.run(["git", "add", "-A"], cwd=path, check=True)
        subprocess.run(["git", "commit", "-qm", f"c{i}"], cwd=path, check=True)
        out.append(
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
            ).stdout.strip()
        )
    return out


def fill(repo: Path, running: bool = True) -> Path:
    rng = random.Random(7)
    shas = commits(repo, 6)
    notes: dict[str, dict[str, dict[str, Any]]] = {}
    for i in range(90):
        rid = f"01k{i:023d}"
        commit = shas[i % len(shas)]
        table_ = random_run_table(rng, i, commit)
        if not running and table_["status"] == "running":
            table_["status"] = "crashed"
        notes.setdefault(commit, {})[rid] = table_
    # One run on two commits: the copy updated last wins.
    twin = dict(notes[shas[0]]["01k" + "0" * 23])
    notes[shas[1]]["01k" + "0" * 23] = {**twin, "updated": "2027-01-01T00:00:00Z", "name": "moved"}
    write_notes(repo, notes)
    return repo


@pytest.fixture
def many(repo: Path) -> Path:
    return fill(repo)


WHERES = [
    None,
    "metrics.acc > 0.5",
    "metrics.acc >= 0.5 and metrics.loss < 0.9",
    "metrics.acc = nan",
    "metrics.acc != 0.5",
    "metrics.acc != nan",
    "not metrics.acc > 0.5",
    "metrics.acc > '0.5'",
    "metrics.acc = 0",
    "metrics.`f1 score` <= 1 or params.lr = 0.1",
    "metrics.acc is null",
    "metrics.acc is not null",
    "params.mixed = 2",
    "params.mixed = '2'",
    "params.mixed = true",
    "params.mixed != 'x'",
    "params.mixed > 1",
    "params.mixed in (1, 'x', true)",
    "params.mixed not in (2, 'x')",
    "params.mixed like '%1%'",
    "params.layers > 2",
    "params.layers = 1152921504606846976",
    "params.lr = inf",
    "params.lr < 9007199254740993",
    "params.model like 'res\\_%'",
    "params.model ilike 'cnn'",
    "params.model not like 'c%'",
    "params.model in ('cnn', 'mlp')",
    "params.opt.name = 'adam'",
    "params.flag = true",
    "params.flag != false",
    "tags.team ilike 'VISION'",
    "tags.team = ''",
    "tags.team is null",
    "tags.mlflow.runName like 'run-%'",
    "run_name = 'base'",
    "status = 'FINISHED'",
    "status in ('crashed', 'FAILED')",
    "attributes.status != 'finished'",
    "start_time > 1762000000000",
    "created < 1764000000000",
    "end_time is null",
    "started >= '2026-11-10'",
    "name like '%\\%%'",
    "name = 100",
    "exit_code = 1",
    "branch is null",
    "parent is not null",
    "datasets.train = 'sha256:a'",
    "(metrics.acc > 0.2 or metrics.loss > 0.2) and not (params.model = 'cnn')",
]
ORDERS: list[str | list[str] | None] = [
    None,
    "metrics.acc desc",
    "metrics.acc",
    "params.mixed desc",
    "params.mixed",
    ["tags.team", "-metrics.loss"],
    "name desc, started",
    "params.lr desc",
    "start_time",
    "exit_code desc, params.layers",
    "params.opt.name desc",
]


def test_runs_frame_equals_the_row_path(many: Path) -> None:
    rng = random.Random(3)
    cases = [(w, o, a) for w in WHERES for o in ORDERS for a in (False, True)]
    # Every filter and every order once, the rest of the product sampled (a suite minute is dear).
    chosen = [(w, ORDERS[0], False) for w in WHERES] + [(None, o, True) for o in ORDERS]
    chosen += rng.sample(cases, 150)
    for where, order, archived in chosen:
        try:
            want = reference(many, where, order, archived)
        except MlmError as exc:
            with pytest.raises(MlmError) as got:
                table.runs_frame(where, order, str(many), archived=archived)
            assert str(got.value) == str(exc)
            continue
        got_frame = table.runs_frame(where, order, str(many), archived=archived)
        assert_same_frame(got_frame, want)
    assert len(table.runs_frame(None, None, str(many))) > 50


def test_best_and_errors_match(many: Path) -> None:
    (many / "mlm.toml").write_text('[metrics]\nacc = "max"\nloss = "min"\n')
    for best in ("acc", "loss"):
        assert_same_frame(table.runs_frame(path=str(many), best=best), reference(many, best=best))
    for where in ("metrics.acx > 1", "params.lr >", "nope = 1"):
        with pytest.raises(MlmError) as want:
            reference(many, where)
        with pytest.raises(MlmError) as got:
            table.runs_frame(where, path=str(many))
        assert str(got.value) == str(want.value)


def test_no_runs_and_no_notes(repo: Path) -> None:
    assert_same_frame(table.runs_frame(path=str(repo)), reference(repo))
    assert_same_frame(
        table.runs_frame("params.x = 1", path=str(repo)), reference(repo, "params.x = 1")
    )


def test_worker_processes_build_the_table_the_process_builds(many: Path) -> None:
    repo = Repo.open(many)
    forget()
    alone = runtable.load(repo, workers=1)
    forget()
    spread = runtable.load(repo, workers=3)
    assert spread.ids == alone.ids and spread.names == alone.names
    assert (spread.archived == alone.archived).all()
    for name in alone.names:
        a, b = alone.column(name), spread.column(name)
        assert (a.present == b.present).all()
        assert repr(a.values.tolist()) == repr(b.values.tolist()), name


def test_fast_rows_equal_flat_rows_of_run_records() -> None:
    rng = random.Random(5)
    tables = [random_run_table(rng, i, "c" * 40) for i in range(300)]
    tables += [
        {"status": "finished", "started": "s", "commit": "c", "metrics": {"a": 1}},
        {"status": "finished", "started": "s", "commit": "c", "name": 5},
        {"status": "finished", "started": "s", "commit": "c", "datasets": {"d": "x"}},
        {"status": "finished", "started": "s", "commit": "c", "params": [["a", 1]]},
        {"status": "finished", "started": "s", "commit": "c", "parent": ""},
        {"status": "finished", "started": "s", "commit": "c", "parent": 3, "note": 1},
        {"status": "finished", "started": "s", "commit": "c", "command": "python"},
        {"status": "finished", "started": "s", "commit": "c", "params": {"a": {"b": {"c": 1}}}},
        {"status": "finished", "started": "s"},
    ]
    fast = 0
    for i, t in enumerate(tables):
        rid = f"01k{i:023d}"
        row = runscan.fast_row(rid, t)
        try:
            run = codec.run_from_dict(rid, t)
        except codec.NoteError:
            assert row is None
            continue
        run.status = listing.effective_status(run)
        try:
            want = flat_row(run)
        except AttributeError:
            assert row is None
            continue
        if row is not None:
            fast += 1
            assert repr(row) == repr(want)
    assert fast > 200


def test_a_new_run_shows_up_from_this_process_and_from_another(repo: Path) -> None:
    (repo / "train.py").write_text("pass\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "code"], cwd=repo, check=True)
    with gitmlm.start_run(name="one", params={"lr": 0.1}) as run:
        run.log_metric("acc", 0.5)
    first = gitmlm.runs()
    assert first["name"].tolist() == ["one"]
    assert runtable.start(Repo.open(repo)) is runtable._tables[Repo.open(repo).common_dir]
    with gitmlm.start_run(name="two", params={"lr": 0.2}) as run:
        run.log_metric("acc", 0.7)
    assert gitmlm.runs(where="metrics.acc > 0.6")["name"].tolist() == ["two"]
    script = (
        "import gitmlm\nwith gitmlm.start_run(name='three') as r:\n    r.log_metric('acc', 0.9)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(gitmlm.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", script], cwd=repo, check=True, env=env)
    assert gitmlm.runs(where="metrics.acc > 0.6", order_by="metrics.acc desc")["name"].tolist() == [
        "three",
        "two",
    ]
    assert_same_frame(gitmlm.runs(), reference(repo))


def test_rows_become_columns_whatever_their_keys() -> None:
    same_keys = [{"a": i, "b": str(i)} for i in range(5)]
    mixed = [{"a": 1, "b": 2}, {"a": 3}, {"b": 4, "a": 5}, {"c": None}]
    for rows in (same_keys, mixed, []):
        got: dict[str, list[Any]] = {}
        assert runscan._transpose(rows, got) is (rows is not mixed)
        keys = dict.fromkeys(k for row in rows for k in row)
        assert got == {k: [row.get(k) for row in rows] for k in keys}


def test_a_commit_with_an_index_note_lists_the_same(repo: Path) -> None:

    rng = random.Random(11)
    (sha,) = commits(repo, 1)
    doc = {f"01k{i:023d}": random_run_table(rng, i, sha) for i in range(notes.INLINE_MAX + 6)}
    git_repo = Repo.open(repo)
    updates = notes.stage_doc(git_repo, sha, doc)
    assert notes.store_key(sha) in updates  # an index note and its run store
    git_repo.update_ref(refs.RUNS, git_repo.write_notes(refs.RUNS, None, updates, "t"), None)
    forget()
    spread = runtable.load(git_repo, workers=2)
    assert len(spread.ids) == len(reference(repo, archived=True))
    assert_same_frame(
        table.runs_frame(path=str(repo), archived=True), reference(repo, archived=True)
    )
    assert_same_frame(
        table.runs_frame("metrics.acc > 0.3", path=str(repo)), reference(repo, "metrics.acc > 0.3")
    )


def _saved_files(path: Path) -> list[Path]:
    for thread in threading.enumerate():  # the save runs beside the query
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    return sorted((path / ".git" / "mlm" / "cache").glob("runtable-*.bin"))


def test_a_worker_build_is_saved_for_the_next_process_and_only_for_its_tip(repo: Path) -> None:
    many = fill(repo, running=False)
    repo = Repo.open(many)
    forget()
    runtable.load(repo, workers=2)
    (saved,) = _saved_files(many)
    assert saved.name.endswith(f"-{repo.ref(refs.RUNS)}.bin")
    forget()
    assert isinstance(runtable.start(repo), runtable.Saved)
    assert_same_frame(table.runs_frame(path=str(many)), reference(many))
    # Another process reads the saved table and answers the same.
    env = {**os.environ, "PYTHONPATH": str(Path(gitmlm.__file__).parents[1])}
    code = "import gitmlm; print(gitmlm.runs(order_by='metrics.acc').to_json(date_format='iso'))"
    got = subprocess.run(
        [sys.executable, "-c", code], cwd=many, env=env, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == reference(many, order_by="metrics.acc").to_json(date_format="iso")
    # A damaged file is read past: the notes answer. So is one that holds other notes.
    notes_read, parts = marshal.loads(saved.read_bytes())
    for damaged in (b"garbage", marshal.dumps((notes_read, parts[1:]))):
        saved.write_bytes(damaged)
        forget()
        assert_same_frame(
            table.runs_frame("metrics.acc > 0.4", path=str(many)),
            reference(many, "metrics.acc > 0.4"),
        )
    # A new run moves the tip: the next worker build replaces the file.
    write_notes(
        many,
        {
            commits(many, 1)[0]: {
                "01kzzzzzzzzzzzzzzzzzzzzzzz": random_run_table(random.Random(1), 1, "c" * 40)
            }
        },
    )
    forget()
    runtable.load(repo, workers=2)
    (again,) = _saved_files(many)
    assert again != saved and again.name.endswith(f"-{repo.ref(refs.RUNS)}.bin")
    assert_same_frame(table.runs_frame(path=str(many)), reference(many))


def test_a_running_run_is_never_saved(repo: Path) -> None:
    (sha,) = commits(repo, 1)
    now = codec.now()
    table_ = {"status": "running", "started": now, "updated": now, "commit": sha, "host": "x"}
    write_notes(repo, {sha: {"01k0000000000000000000000r": table_}})
    forget()
    built = runtable.load(Repo.open(repo), workers=2)
    assert built.running
    assert _saved_files(repo) == []


def test_a_worker_answers_each_job_it_takes(many: Path) -> None:
    repo = Repo.open(many)
    blobs = list(notes.snapshot(repo, refs.RUNS).entries.values())
    read, write = os.pipe()
    os.write(write, b"".join(runscan.JOB.pack(job) for job in range(len(blobs))))
    os.close(write)
    worker = runtable._spawn(repo, blobs, read, 1)
    os.close(read)
    assert worker is not None
    got = worker.records()
    assert sorted(got) == list(range(len(blobs)))
    for job, blob in enumerate(blobs):
        assert repr(runscan.decode(got[job])) == repr(runscan.scan(repo, [blob]))


NONSENSE = [
    "import sys; sys.exit(3)",
    "print('hello')",
    "import sys; sys.stdout.write('m')",
    # A record for a job that does not exist, one that does not decode, one cut short.
    "import struct, sys; sys.stdout.buffer.write(struct.pack('>IQ', 99, 1) + b'm')",
    "import struct, sys; sys.stdout.buffer.write(struct.pack('>IQ', 0, 5) + b'mjunk')",
    "import struct, sys; sys.stdout.buffer.write(struct.pack('>IQ', 1, 50) + b'm')",
    # A good record under another job's number.
    "import struct, sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write("
    "struct.pack('>IQ', 0, len(d)) + d)",
    # Good records from a worker that then failed are not trusted either.
    "import struct, sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write("
    "struct.pack('>IQ', 0, len(d)) + d); sys.exit(1)",
]


@pytest.mark.parametrize("code", NONSENSE)
def test_a_worker_that_fails_or_talks_nonsense_has_its_jobs_read_here(
    many: Path, code: str
) -> None:
    repo = Repo.open(many)
    snap = notes.snapshot(repo, refs.RUNS)
    want = [runscan.scan(repo, [blob]) for blob in snap.entries.values()]
    building = runtable.Pending(repo, snap, 1)  # no worker of its own, no job taken here
    fake = runscan.encode(runscan.scan(repo, list(snap.entries.values())[-1:]))
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the Worker closes it
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=out)
    proc.communicate(fake)
    building.workers.append(runtable.Worker(proc, out))
    got = building.result()
    assert [raw for _, raw in got] == [None] * len(want)
    assert repr([chunk for chunk, _ in got]) == repr(want)  # repr: NaN equals NaN


def test_a_cancelled_build_leaves_no_worker(many: Path) -> None:
    building = runtable.start(Repo.open(many), workers=3)
    assert isinstance(building, runtable.Pending)
    procs = [worker.proc for worker in building.workers]
    assert len(procs) == 2
    runtable.cancel(building)
    assert all(proc.returncode is not None for proc in procs)


def _same_tables(a: runtable.Table, b: runtable.Table) -> None:
    assert a.ids == b.ids and a.names == b.names and a.running == b.running
    assert (a.archived == b.archived).all()
    for name in b.names:
        x, y = a.column(name), b.column(name)
        assert (x.present == y.present).all(), name
        assert repr(x.values.tolist()) == repr(y.values.tolist()), name


def test_after_the_notes_move_only_the_notes_that_changed_are_read(repo: Path) -> None:
    many = fill(repo, running=False)  # a running run's note is read every time (below)
    repo = Repo.open(many)
    forget()
    runtable.load(repo, workers=3)
    before = dict(notes.snapshot(repo, refs.RUNS).entries)
    c0, c1 = list(before)[:2]
    doc0 = notes.parse_note(repo, before[c0])
    rid = next(iter(doc0))
    doc0[rid] = {
        **doc0[rid],
        "name": "renamed",
        "archived": True,
        "updated": "2027-02-01T00:00:00Z",
    }
    (new,) = commits(many, 1)
    extra = {"01kzzzzzzzzzzzzzzzzzzzzzzz": random_run_table(random.Random(3), 3, new)}
    write_notes(many, {c0: doc0, new: extra})
    tip = repo.ref(refs.RUNS)
    git_repo = Repo.open(many)
    gone = git_repo.write_notes(refs.RUNS, tip, {c1: None}, "t")  # and a note removed
    git_repo.update_ref(refs.RUNS, gone, tip)
    building = runtable.start(repo)
    assert isinstance(building, runtable.Partial)
    assert sorted(building.pending.jobs) == [
        [b] for b in sorted(notes.snapshot(repo, refs.RUNS).entries[c] for c in (c0, new))
    ]  # a job per note here (JOB_NOTES is 1): the two notes that changed, no other
    partial = runtable.finish(repo, building)
    forget()
    _same_tables(partial, runtable.load(repo, workers=1))
    for where in WHERES[:6]:
        forget()
        runtable.load(repo, workers=2)
        write_notes(many, {new: {**extra, "01kzzzzzzzzzzzzzzzzzzzzzzy": dict(doc0[rid])}})
        assert_same_frame(
            table.runs_frame(where, path=str(many), archived=True),
            reference(many, where, archived=True),
        )


def test_a_note_with_a_running_run_is_read_again_every_time(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sha, other) = commits(repo, 2)
    now = codec.now()
    running = {"status": "running", "started": now, "updated": now, "commit": sha, "host": "x"}
    done = {"status": "finished", "started": now, "updated": now, "commit": other, "host": "x"}
    write_notes(repo, {sha: {"01k0000000000000000000000r": running}, other: {"01k1": done}})
    forget()
    assert gitmlm.runs()["status"].tolist() == ["finished", "running"]
    monkeypatch.setenv("GITMLM_RUN_TIMEOUT", "0.001")  # its heartbeat is now long overdue
    building = runtable.start(Repo.open(repo))
    assert isinstance(building, runtable.Partial)
    assert building.pending.jobs == [[notes.snapshot(Repo.open(repo), refs.RUNS).entries[sha]]]
    runtable.cancel(building)
    assert gitmlm.runs()["status"].tolist() == ["finished", "crashed"]


def test_a_new_process_reads_another_tip_s_saved_table_and_only_the_notes_not_in_it(
    repo: Path,
) -> None:
    many = fill(repo, running=False)
    git_repo = Repo.open(many)
    forget()
    runtable.load(git_repo, workers=2)
    (saved,) = _saved_files(many)
    before = dict(notes.snapshot(git_repo, refs.RUNS).entries)
    (c0,) = list(before)[:1]
    doc0 = notes.parse_note(git_repo, before[c0])
    rid = next(iter(doc0))
    doc0[rid] = {**doc0[rid], "name": "renamed", "updated": "2027-03-01T00:00:00Z"}
    (new,) = commits(many, 1)
    extra = {"01kzzzzzzzzzzzzzzzzzzzzzzz": random_run_table(random.Random(4), 4, new)}
    write_notes(many, {c0: doc0, new: extra})
    after = notes.snapshot(git_repo, refs.RUNS).entries
    forget()  # as a new process
    building = runtable.start(git_repo)
    assert isinstance(building, runtable.Partial) and isinstance(building.prev, list)
    assert sorted(building.pending.jobs) == sorted([[after[c0]], [after[new]]])
    partial = runtable.finish(git_repo, building)
    forget()
    _same_tables(partial, runtable.load(git_repo, workers=1))
    # A saved file that does not read, or whose parts do not decode: the notes answer.
    for damaged in (b"garbage", marshal.dumps((list(before.values()), [b"mjunk"]))):
        saved.write_bytes(damaged)
        forget()
        assert_same_frame(table.runs_frame(path=str(many)), reference(many))


def test_a_note_that_cannot_be_read_is_said_by_the_cli_and_warned_by_the_api(repo: Path) -> None:
    bad, good = commits(repo, 2)
    hand_edited = random_run_table(random.Random(8), 8, bad)
    hand_edited["params"] = {"when": datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)}
    fine = {**random_run_table(random.Random(9), 9, good), "deleted": False, "archived": False}
    write_notes(repo, {bad: {"01k0000000000000000000000b": hand_edited}})
    write_notes(repo, {good: {"01k0000000000000000000000g": fine}})
    said = f"skipped the note on {bad[:12]}: runs.01k0000000000000000000000b.params.when is a bare"
    forget()
    with pytest.warns(UserWarning, match=re.escape(f"gitmlm.runs: {said}")):
        assert gitmlm.runs()["run_id"].tolist() == ["01k0000000000000000000000g"]
    cli = mlm(repo, "runs", "--format", "csv")
    assert cli.returncode == 0 and f"git mlm: {said}" in cli.stderr
    assert (
        "01k0000000000000000000000g" in cli.stdout
        and "01k0000000000000000000000b" not in cli.stdout
    )
    for _ in range(2):  # the second time with the log's caches made: still said
        log = mlm(repo, "log")
        assert f"git mlm: {said}" in log.stderr and bad in log.stdout


def test_a_note_nested_past_the_limit_is_skipped_with_its_reason_everywhere(repo: Path) -> None:
    """A hand-made note with a param key of 990 parts: tomli reads it; a listing used to die of
    a RecursionError (`git mlm runs` in flatten, `git mlm log` in its JSON cache)."""
    deep, good = commits(repo, 2)
    write_notes(
        repo, {good: {"01k0000000000000000000000g": random_run_table(random.Random(9), 9, good)}}
    )
    key = ".".join(["a"] * 990)
    text = (
        f'schema = 1\n\n[runs.01k0000000000000000000000d]\nname = "deep"\nstatus = "finished"\n'
        f'started = "2026-11-30T09:55:21Z"\ncommit = "{deep}"\n\n'
        f"[runs.01k0000000000000000000000d.params]\n{key} = 1\n"
    )
    subprocess.run(
        ["git", "notes", "--ref", refs.RUNS, "add", "-F", "-", deep],
        input=text.encode(),
        cwd=repo,
        check=True,
    )
    said = f"skipped the note on {deep[:12]}: cannot be read: its tables and arrays nest deeper"
    forget()
    with pytest.warns(UserWarning, match=re.escape(f"gitmlm.runs: {said}")):
        assert gitmlm.runs()["run_id"].tolist() == ["01k0000000000000000000000g"]
    for args in (["runs"], ["log"]):
        cli = mlm(repo, *args)
        assert cli.returncode == 0 and f"git mlm: {said}" in cli.stderr, cli.stderr[-500:]


def test_a_sweep_s_index_note_after_one_more_run_decodes_that_run_only(repo: Path) -> None:
    rng = random.Random(12)
    (sha,) = commits(repo, 1)
    doc = {f"01k{i:023d}": random_run_table(rng, i, sha) for i in range(notes.INLINE_MAX + 6)}
    git_repo = Repo.open(repo)

    def write(doc: dict[str, dict[str, Any]]) -> None:
        tip = git_repo.ref(refs.RUNS)
        updates = notes.stage_doc(git_repo, sha, doc)
        git_repo.update_ref(refs.RUNS, git_repo.write_notes(refs.RUNS, tip, updates, "t"), tip)

    write(doc)
    forget()
    runtable.load(git_repo)
    before = dict(runscan._RUNS)
    assert len(before) == len(doc)  # every run blob of the index note
    doc["01kzzzzzzzzzzzzzzzzzzzzzzz"] = random_run_table(rng, 999, sha)
    write(doc)
    partial = runtable.load(git_repo)  # the one note changed: read again, in this process
    after = runscan._RUNS
    assert len(after) == len(doc) and set(before) < set(after)
    assert all(after[blob] is parsed for blob, parsed in before.items())  # not decoded again
    forget()
    _same_tables(partial, runtable.load(git_repo, workers=1))
    assert_same_frame(
        table.runs_frame(path=str(repo), archived=True), reference(repo, archived=True)
    )


def test_a_column_s_kind_is_what_its_values_are() -> None:
    cases: list[tuple[str, list[Any], str]] = [
        ("metrics.acc", [0.5, None, -0.0, math.nan, math.inf], "f"),
        ("metrics.acc", [0.5, 1], ""),  # an int is not a float: from_records keeps it apart
        ("params.flag", [True, None], ""),
        ("params.mixed", [0.5, "x"], ""),
        ("params.name", ["a", None], "s"),
        ("ended", [None, "2026-11-30T00:00:00Z"], "s"),
        ("exit_code", [0.5, None], ""),  # an attribute's None is a value, not a filler
        ("params.none", [None, None], "s"),
    ]
    for name, values, kind in cases:
        assert runscan._kind(name, values) == kind, (name, values)
