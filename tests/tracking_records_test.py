"""Runs record exactly what the user asked (issue 11, section 2, and its bad-input items)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.data import lock as lockfile
from gitmlm.errors import MlmError
from gitmlm.tracking import liveness, rundiff
from gitmlm.tracking import record as tracking
from tests.helpers import git, mlm


def _runs(repo: Path, *args: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(mlm(repo, "runs", "--format", "json", *args).stdout)
    return out


def _shown(repo: Path, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(mlm(repo, "show", run_id, "--format", "json").stdout)
    return out


# --- names, children and -p ------------------------------------------------------------------


def test_the_script_names_the_run_unless_the_command_line_did(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import gitmlm\nwith gitmlm.start_run(name='from-script') as run:\n"
        "    run.log_metric('m', 1)\n"
    )
    mlm(repo, "run", "--", sys.executable, "t.py")
    [row] = _runs(repo)
    assert row["name"] == "from-script" and "tags.mlm.name" not in row
    mlm(repo, "run", "--name", "cli", "--", sys.executable, "t.py")
    named = [r for r in _runs(repo) if r["name"] == "cli"]
    assert len(named) == 1 and named[0]["tags.mlm.name"] == "from-script"


def test_later_start_runs_are_children_keeping_their_names(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import gitmlm\n"
        "for name in ('a', 'b', 'c'):\n"
        "    with gitmlm.start_run(name=name) as run:\n"
        "        run.log_metric('m', ord(name))\n"
    )
    mlm(repo, "run", "--", sys.executable, "t.py")
    rows = {r["name"]: r for r in _runs(repo)}
    assert sorted(rows) == ["a", "b", "c"]
    outer = rows["a"]["run_id"]
    for child in ("b", "c"):
        assert _shown(repo, rows[child]["run_id"])["parent"] == outer
        assert rows[child]["metrics.m"] == ord(child) and rows[child]["status"] == "finished"
    assert "parent" not in _shown(repo, outer)


def test_command_line_params_override_the_script_defaults(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import gitmlm\n"
        "defaults = {'lr': 0.1, 'bs': 2, 'opt': {'name': 'adam', 'beta': 0.9}}\n"
        "with gitmlm.start_run(params=defaults) as run:\n"
        "    open('seen.json', 'w').write(__import__('json').dumps(run.params))\n"
    )
    mlm(repo, "run", "-p", "lr=0.5", "-p", "opt.beta=0.5", "--", sys.executable, "t.py")
    seen = json.loads((repo / "seen.json").read_text())
    want = {"lr": 0.5, "bs": 2, "opt": {"name": "adam", "beta": 0.5}}
    assert seen == want
    [row] = _runs(repo)
    shown = _shown(repo, row["run_id"])
    assert shown["params"] == want
    assert shown["overridden"] == ["lr", "opt.beta"]


@pytest.mark.parametrize("pairs", [("a=1", "a.b=2"), ("a.b=1", "a=2")])
def test_conflicting_params_are_one_line_errors(repo: Path, pairs: tuple[str, str]) -> None:
    proc = mlm(repo, "run", "-p", pairs[0], "-p", pairs[1], "--", "true", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "conflict" in proc.stderr and proc.stderr.count("\n") == 1
    assert mlm(repo, "runs", "--format", "json").stdout.strip() == "[]"


# --- what a metric's summary is -----------------------------------------------------------------


def test_summary_is_the_value_at_the_highest_step(repo: Path) -> None:
    with gitmlm.start_run(name="x") as run:
        for step, value in ((0, 3.0), (2, 4.0), (1, 8.0)):
            run.log_metric("m", value, step=step)
        run.log_metric("tie", 1.0, step=5)
        run.log_metric("tie", 2.0, step=5)  # one step: the last logged
        assert run.record.metrics == {"m": 4.0, "tie": 2.0}  # live, as the record will be
    with gitmlm.start_run(name="y") as other:
        other.log_metric("m", 6.0, step=0)
    assert gitmlm.get_run(run.id).metrics == {"m": 4.0, "tie": 2.0}
    assert [r["name"] for r in _runs(repo, "--where", "metrics.m = 4")] == ["x"]
    assert [r["name"] for r in _runs(repo, "--order-by", "metrics.m desc")] == ["y", "x"]
    listing = tracking.list_runs(Repo.open(repo))
    x, y = (tracking.resolve(listing, i) for i in (run.id, other.id))
    [row] = [r for r in rundiff.compare(x, y) if r.key == "metrics.m"]
    assert (row.a, row.b) == ("4", "6")


def test_a_step_that_is_not_an_integer_is_an_mlm_error(repo: Path) -> None:
    with gitmlm.start_run() as run:
        with pytest.raises(MlmError, match="step must be an integer"):
            run.log_metric("a", 1, step="x")  # type: ignore[arg-type]
        run.log_metric("a", 1, step=2)
    assert gitmlm.get_run(run.id).steps["a"]["step"] == [2]


def test_a_none_param_is_stored_as_mlflow_stores_it(repo: Path) -> None:
    with gitmlm.start_run(params={"seed": None}) as run:
        run.log_params({"ckpt": None, "opt": {"wd": None}})
    assert gitmlm.get_run(run.id).params == {"seed": "None", "ckpt": "None", "opt": {"wd": "None"}}


# --- datasets --------------------------------------------------------------------------------


def test_log_dataset_of_a_frame_keeps_the_declared_file_digest(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n")
    mlm(repo, "data", "add", "train", "data/train.csv")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    lock_digest = lockfile.load(repo)["train"]["digest"]
    import pandas as pd

    with gitmlm.start_run(name="frame") as run:
        info = run.log_dataset("train", pd.read_csv(repo / "data" / "train.csv"))
    assert info["digest"] == lock_digest and info["frame_digest"].startswith("sha256:")
    assert info["rows"] == 2 and info["profile"] is True
    [row] = _runs(repo, "--where", f"datasets.train = '{lock_digest}'")
    assert row["name"] == "frame"
    with gitmlm.start_run(name="plain"):
        pass
    diff = mlm(repo, "diff", "frame", "plain", "--format", "json").stdout
    assert "datasets.train" not in diff


# --- a crash loses nothing that was logged -------------------------------------------------------


def test_every_returned_log_metric_survives_sigkill(repo: Path) -> None:
    # The child says which step it logged only after log_metric returned; we kill it mid-run.
    (repo / "t.py").write_text(
        "import sys, gitmlm\n"
        "with gitmlm.start_run(name='k') as run:\n"
        "    for step in range(10**9):\n"
        "        run.log_metric('loss', step, step=step)\n"
        "        print(step, flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "t.py"], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    while int(child.stdout.readline()) < 200:
        pass
    child.kill()
    last = max(int(line) for line in child.stdout.read().split() or ["0"])
    child.wait()
    assert "recovered run" in mlm(repo, "runs", "--recover").stderr
    [row] = _runs(repo)
    run = gitmlm.get_run(row["run_id"])
    assert run.status == "crashed" and run.steps["loss"]["step"][: last + 1] == list(
        range(last + 1)
    )
    assert not list((repo / ".git" / "mlm" / "journal").glob("*.jsonl"))


# --- liveness across hosts and containers --------------------------------------------------------


def _plant_running(repo: Path, **fields: Any) -> str:
    """A `running` record as another host or container leaves it in the notes."""
    r = Repo.open(repo)
    rid = "0" * 10 + "1" + "a" * 15
    table = {
        "name": "far",
        "status": "running",
        "started": "2020-01-01T00:00:00.000000Z",
        "updated": "2020-01-01T00:00:00.000000Z",
        "commit": r.head_commit(),
        "host": "ci-runner-7",
        "pid": 4242,
        **fields,
    }
    store.put_runs(r, refs.RUNS, r.head_commit(), {rid: table}, "plant")
    return rid


@pytest.mark.parametrize(
    "fields",
    [
        {},  # killed on another host
        {"host": liveness.HOST, "pid": 1, "pid_ns": "pid:[1]"},  # pid 1 inside a container
    ],
)
def test_a_silent_run_elsewhere_is_crashed_and_recovers(repo: Path, fields: dict[str, Any]) -> None:
    _plant_running(repo, **fields)
    [row] = _runs(repo)
    assert row["status"] == "crashed"
    assert "recovered run" in mlm(repo, "runs", "--recover").stderr
    [row] = _runs(repo)
    assert row["status"] == "crashed" and row["ended"]
    assert "recovered" not in mlm(repo, "runs", "--recover").stderr


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])  # never waited for: a zombie once it exits
    deadline = time.monotonic() + 10
    while liveness.alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not liveness.alive(child.pid)
    assert liveness.status("running", liveness.HOST, child.pid, codec.now()) == "crashed"
    child.wait()


def test_a_fresh_heartbeat_keeps_a_run_running_and_the_timeout_is_set_by_env(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant_running(repo, updated=codec.now())
    assert _runs(repo)[0]["status"] == "running"
    assert liveness.DEFAULT_TIMEOUT <= 60
    env = {**os.environ, liveness.TIMEOUT_ENV: "0.5"}
    time.sleep(0.6)
    assert json.loads(mlm(repo, "runs", "--format", "json", env=env).stdout)[0]["status"] == (
        "crashed"
    )


def test_a_live_run_beats(repo: Path) -> None:
    env = {**os.environ, liveness.TIMEOUT_ENV: "0.4"}  # a beat every 0.1 s
    (repo / "t.py").write_text(
        "import time, gitmlm\nwith gitmlm.start_run():\n"
        "    open('started', 'w').close()\n    time.sleep(1.5)\n"
    )
    child = subprocess.Popen([sys.executable, "t.py"], env=env)
    while not (repo / "started").exists():
        time.sleep(0.02)
    time.sleep(0.8)
    r = Repo.open(repo)
    [run] = tracking.list_runs(r).runs
    assert child.wait() == 0
    assert run.updated > run.started  # type: ignore[operator]
    assert run.extra[tracking.HEARTBEAT] == pytest.approx(0.1)


def test_a_refused_start_leaves_no_checkpoint_and_no_journal(repo: Path) -> None:
    (repo / "data.csv").write_text("x\n1\n")
    mlm(repo, "data", "add", "d", "data.csv")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    with (repo / "mlm.lock").open("a") as fh:
        fh.write("[[[\n")
    proc = mlm(repo, "run", "--", "true", check=False)
    assert proc.returncode == 1 and "mlm.lock" in proc.stderr
    assert git(repo, "for-each-ref", "refs/mlm/checkpoints/") == ""
    assert not list((repo / ".git" / "mlm").glob("journal/*"))
    assert git(repo, "notes", "--ref", refs.RUNS, "list") == ""


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_reaches_the_script_once_and_keeps_every_step(repo: Path) -> None:
    # Python's own SIGINT handling: the script must see KeyboardInterrupt once, not twice, and
    # not never (an ignored SIGINT would be inherited by the script).
    (repo / "t.py").write_text(
        "import time, gitmlm\n"
        "seen = 0\n"
        "with gitmlm.start_run() as run:\n"
        "    step = 0\n"
        "    try:\n"
        "        while True:\n"
        "            run.log_metric('loss', step, step=step)\n"
        "            open('steps', 'w').write(str(step))\n"
        "            step += 1\n"
        "            time.sleep(0.01)\n"
        "    except KeyboardInterrupt:\n"
        "        seen += 1\n"
        "    try:\n"
        "        time.sleep(1.0)  # a second SIGINT, if one came, would land here\n"
        "    except KeyboardInterrupt:\n"
        "        seen += 1\n"
        "    open('sigints', 'w').write(str(seen))\n"
    )
    # As a terminal does: the whole foreground process group gets the SIGINT.
    proc = subprocess.Popen(
        ["git", "mlm", "run", "--", sys.executable, "t.py"],
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (repo / "steps").exists() or int((repo / "steps").read_text() or 0) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script never saw its Ctrl-C
        raise
    assert "Traceback" not in err
    assert (repo / "sigints").read_text() == "1"
    last = int((repo / "steps").read_text())
    [row] = _runs(repo)
    steps = gitmlm.get_run(row["run_id"]).steps["loss"]["step"]
    assert steps == list(range(last + 1))
