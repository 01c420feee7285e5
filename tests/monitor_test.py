"""Model observation end to end: a run logs its training profile, a model version is registered
from it, and `git mlm monitor` compares serving files with it (real repositories, real git)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gitmlm
from gitmlm.cli import main
from gitmlm.core import refs
from gitmlm.core.git import Repo
from gitmlm.stats.profile import build_profile
from tests.helpers import git, mlm

FEATURES = ["age", "income", "clicks", "city"]


def training_frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n).round(1),
            "income": rng.lognormal(10, 0.5, n).round(2),
            "clicks": rng.poisson(3, n),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def drifted_frame(n: int = 10_000, seed: int = 1) -> pd.DataFrame:
    """age shifted by 0.5 sd, city mix reversed with a new city, income 20% null; clicks as is."""
    rng = np.random.default_rng(seed)
    df = training_frame(n, seed)
    df["age"] = df["age"] + 5.0
    df["city"] = rng.choice(
        ["paris", "lyon", "nice", "lille", "brest"], n, p=[0.1, 0.2, 0.3, 0.35, 0.05]
    )
    df.loc[rng.random(n) < 0.2, "income"] = np.nan
    return df


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`git mlm ARGS` in this process (fast); `mlm()` runs it through git as a user would."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@dataclass
class Trained:
    root: Path
    run_id: str
    commit: str


def train(root: Path, *, profile: bool = True, accuracy: float = 0.9) -> str:
    with gitmlm.start_run(name="base") as run:
        if profile:
            run.log_dataset("train", training_frame())
        run.log_metric("accuracy", accuracy)
        run.log_artifact("models/churn.pkl")
        return run.id


@pytest.fixture
def trained(repo: Path, capsys: pytest.CaptureFixture[str]) -> Trained:
    """A repository where run `base` logged a profile, registered as churn v0.0.1 in production."""
    (repo / "mlm.toml").write_text('schema = 1\n[models.churn]\npath = "models/churn.pkl"\n')
    (repo / "models").mkdir()
    (repo / "models" / "churn.pkl").write_bytes(b"model one")
    git(repo, "add", "mlm.toml", "models")
    git(repo, "commit", "-q", "-m", "model")
    run_id = train(repo)
    assert cli(capsys, "register", "churn")[0] == 0
    assert cli(capsys, "promote", "churn", "production")[0] == 0
    return Trained(repo, run_id, git(repo, "rev-parse", "HEAD").strip())


def write(root: Path, name: str, df: pd.DataFrame) -> Path:
    path = root / name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


# --- profiles stored with the run --------------------------------------------------------------


def test_log_dataset_stores_the_profile_in_its_own_notes_ref(trained: Trained) -> None:
    run = gitmlm.get_run(trained.run_id)
    info = run.datasets["train"]
    assert info["profile"] is True
    assert (info["rows"], info["columns"], info["source"]) == (20_000, 4, "frame")
    assert info["digest"].startswith("sha256:")
    # The run note says only that a profile exists; the profile itself is in mlm-profiles.
    runs_note = git(trained.root, "notes", "--ref", refs.RUNS, "show", trained.commit)
    assert "edges" not in runs_note and "quantiles" not in runs_note
    note = git(trained.root, "notes", "--ref", refs.PROFILES, "show", trained.commit)
    doc = tomllib.loads(note)
    assert doc["schema"] == 1
    stored = doc["runs"][trained.run_id]["train"]
    assert stored == json.loads(json.dumps(build_profile(training_frame()).to_dict()))
    assert len(note) < 4 * 2500  # about 2 KB per column


def test_a_crash_after_log_dataset_keeps_profile_and_record(repo: Path) -> None:
    script = repo / "crash.py"
    script.write_text(
        "import os, numpy as np, pandas as pd, gitmlm\n"
        "df = pd.DataFrame({'x': np.arange(1000.0)})\n"
        "with gitmlm.start_run(name='doomed') as run:\n"
        "    run.log_dataset('train', df)\n"
        "    print(run.id, flush=True)\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    run_id = done.stdout.strip()
    mlm(repo, "runs", "--recover")
    run = gitmlm.get_run(run_id)
    assert run.status == "crashed"
    assert run.datasets["train"]["profile"] is True
    note = git(repo, "notes", "--ref", refs.PROFILES, "show", run.commit)
    assert run_id in note


def test_log_dataset_rejects_what_is_not_a_frame(repo: Path) -> None:
    with gitmlm.start_run() as run, pytest.raises(gitmlm.MlmError, match="pandas DataFrame"):
        run.log_dataset("train", [1, 2, 3])  # type: ignore[arg-type]


def test_log_dataset_of_a_path_with_profile(repo: Path) -> None:
    write(repo, "train.csv", training_frame(2_000))
    with gitmlm.start_run() as run:
        try:
            info = run.log_dataset("train.csv", profile=True)
        except gitmlm.MlmError as exc:
            if "arrive with data version management" in str(exc):
                pytest.skip("dataset fingerprints are not merged yet")
            raise
    assert info["profile"] is True and info["rows"] == 2_000


def test_git_mlm_profile_stores_a_profile_for_an_existing_run(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    root = trained.root
    run_id = train(root, profile=False)
    code, _, err = cli(
        capsys, "monitor", "--run", run_id, str(write(root, "s.csv", training_frame(500)))
    )
    assert code == 1
    assert "has no recorded data profile" in err
    assert "run.log_dataset(name, df)" in err and f"git mlm profile PATH --run {run_id[:12]}" in err

    # A directory of chunk files is profiled as one table: counts add up, edges frozen once.
    parts = root / "parts"
    parts.mkdir()
    whole = training_frame(30_000, seed=5)
    write(root, "parts/a.csv", whole.iloc[:10_000])
    write(root, "parts/b.parquet", whole.iloc[10_000:])
    code, out, _ = cli(capsys, "profile", "parts", "--run", run_id[:12], "--name", "train")
    assert code == 0, out
    assert "30,000 rows, 4 columns" in out and "'train'" in out
    run = gitmlm.get_run(run_id)
    assert run.status == "finished" and run.datasets["train"]["profile"] is True
    assert run.datasets["train"]["rows"] == 30_000
    assert run.datasets["train"]["digest"].startswith("sha256:")  # fingerprinted as well
    note = tomllib.loads(git(root, "notes", "--ref", refs.PROFILES, "show", run.commit))
    stored = note["runs"][run_id]["train"]
    assert stored["rows"] == 30_000
    age = stored["columns"]["age"]
    assert sum(age["counts"]) + age["under"] + age["over"] == 30_000
    assert stored["columns"]["city"]["top"] == whole["city"].value_counts().to_dict()
    # the earlier run's profile on the same commit is untouched
    assert trained.run_id in note["runs"]

    code, out, _ = cli(
        capsys, "monitor", "--run", run_id, str(write(root, "d.csv", drifted_frame()))
    )
    assert code == 3


# --- monitor -------------------------------------------------------------------------------------


def test_monitor_flags_drifted_features_of_the_production_model(trained: Trained) -> None:
    serving = write(trained.root, "serving.csv", drifted_frame())
    done = mlm(trained.root, "monitor", "churn#production", str(serving), check=False)
    assert done.returncode == 3, done.stderr
    out = done.stdout
    assert "churn#production v0.0.1" in out
    lines: dict[str, str] = {}
    for line in out.splitlines():
        if line.split()[:1]:
            lines.setdefault(line.split()[0], line)  # the table's row, not "what moved"
    assert "DRIFT" in lines["age"] and "DRIFT" in lines["city"] and "DRIFT" in lines["income"]
    assert " ok " in lines["clicks"]
    assert "FLAGGED: drift in " in out
    assert "brest" in out  # the new category is named
    assert "null_rate_delta" in lines["income"]


def test_monitor_outputs_md_and_json(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    serving = str(write(trained.root, "serving.parquet", drifted_frame()))
    code, md, _ = cli(capsys, "monitor", "churn@v0.0.1", serving, "--format", "md")
    assert code == 3
    assert md.startswith("### monitor churn v0.0.1")
    assert "| feature | kind | status |" in md and "| age | numeric | DRIFT |" in md
    assert "**FLAGGED:" in md
    code, text, _ = cli(capsys, "monitor", "churn", serving, "--format", "json")
    assert code == 3
    doc = json.loads(text)
    assert doc["target"]["model"] == "churn" and doc["target"]["version"] == "v0.0.1"
    assert doc["target"]["run"] == trained.run_id
    assert doc["flagged"] is True and doc["exit_code"] == 3
    status = {f["feature"]: f["status"] for f in doc["drift"]["features"]}
    assert status == {"age": "DRIFT", "income": "DRIFT", "clicks": "ok", "city": "DRIFT"}
    city = next(f for f in doc["drift"]["features"] if f["feature"] == "city")
    assert city["unseen_values"] == ["brest"]
    assert doc["thresholds"]["psi"] == 0.2


def test_unshifted_serving_data_exits_0(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    serving = str(write(trained.root, "same.csv", training_frame(10_000, seed=7)))
    code, out, _ = cli(capsys, "monitor", "churn#production", serving)
    assert code == 0, out
    assert "ok: nothing crossed a threshold" in out


def test_thresholds_from_mlm_toml(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    serving = str(write(trained.root, "serving.csv", drifted_frame()))
    with (trained.root / "mlm.toml").open("a") as fh:
        fh.write(
            "[monitor]\nignore = ['city']\n"
            "[monitor.thresholds.age]\npsi = 5\njs = 1\nwasserstein = 5\nlinf = 1\n"
            "[monitor.thresholds.income]\nnull_rate_delta = 0.5\n"
        )
    code, out, _ = cli(capsys, "monitor", "churn#production", serving, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert [f["feature"] for f in doc["drift"]["features"]] == ["age", "income", "clicks"]
    age = next(f for f in doc["drift"]["features"] if f["feature"] == "age")
    assert age["status"] == "ok" and age["thresholds"]["psi"] == 5

    (trained.root / "mlm.toml").write_text(
        "schema = 1\n[models.churn]\npath = 'models/churn.pkl'\n"
        "[monitor.thresholds.age]\npsi = 'x'\n"
    )
    code, _, err = cli(capsys, "monitor", "churn#production", serving)
    assert code == 1 and "threshold age.psi must be a number" in err
    (trained.root / "mlm.toml").write_text("schema = 1\n[monitor]\nthreshold = 1\n")
    code, _, err = cli(capsys, "monitor", "--run", trained.run_id, serving)
    assert code == 1 and "unknown [monitor] key threshold" in err


def test_html_report_draws_the_uis_charts_in_one_file(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    serving = str(write(trained.root, "serving.csv", drifted_frame()))
    page = trained.root / "report.html"
    code, _, err = cli(capsys, "monitor", "churn#production", serving, "--html", str(page))
    assert code == 3 and "wrote" in err
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "</html>" in html
    # One file: plotly.js and the ui's script inside it, nothing fetched (no src, no CDN).
    assert "<script src=" not in html and 'rel="stylesheet"' not in html
    assert html.count("<script>") == 2 and "plotly" in html
    data = html.split('<script type="application/json" id="page-data">', 1)[1].split("</script>")[0]
    charts = json.loads(data)["charts"]
    assert sorted(f["feature"] for f in charts["features"]) == sorted(FEATURES)
    age = next(f for f in charts["features"] if f["feature"] == "age")
    assert age["status"] == "DRIFT" and age["kind"] == "numeric"
    assert len(age["edges"]) == len(age["training"]) + 1 == len(age["serving"]) + 1
    city = next(f for f in charts["features"] if f["feature"] == "city")
    assert "brest" in city["categories"] and city["new"][city["categories"].index("brest")]
    assert "age" in html and "FLAGGED" in html


def test_quality_and_latency_per_window(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    df = training_frame(8_640, seed=3)
    df["label"] = rng.integers(0, 2, len(df))
    right = rng.random(len(df)) < 0.8
    df["pred"] = np.where(right, df["label"], 1 - df["label"])
    df["ts"] = pd.date_range("2024-03-01", periods=len(df), freq="30s").astype(str)
    df["ms"] = rng.gamma(2.0, 40.0, len(df))
    df.loc[df.index >= 5_760, "ms"] *= 3  # the third day is slow
    serving = str(write(trained.root, "log.csv", df))
    with (trained.root / "mlm.toml").open("a") as fh:
        fh.write("[monitor]\nslo = { p95 = 300 }\n[monitor.quality]\naccuracy = 0.7\n")
    args = ["monitor", "churn#production", serving, "--labels", "label", "--prediction", "pred"]
    args += ["--time", "ts", "--window", "1d", "--latency", "ms"]
    code, out, _ = cli(capsys, *args)
    assert code == 3, out
    assert "training (run)" in out and "0.9" in out  # the run's accuracy beside the realised one
    assert "latency p95" in out and "2024-03-03" in out
    assert "drift in" not in out  # label/time/latency columns are not features
    code, text, _ = cli(capsys, *args, "--format", "json")
    doc = json.loads(text)
    assert [q["window"][:10] for q in doc["quality"]] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert all(0.77 < q["accuracy"] < 0.83 and q["breaches"] == [] for q in doc["quality"])
    assert doc["training"] == {"accuracy": 0.9}
    assert [row["slo_breached"] for row in doc["latency"]] == [False, False, True]
    assert doc["reasons"][-1].startswith("latency p95")
    assert any("no 'pred' column" in w for w in doc["warnings"])


def test_record_and_history(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    root = trained.root
    drifted = str(write(root, "monday.csv", drifted_frame()))
    same = str(write(root, "tuesday.csv", training_frame(10_000, seed=8)))
    assert cli(capsys, "monitor", "churn#production", drifted, "--record")[0] == 3
    code, _, err = cli(capsys, "monitor", "churn#production", same, "--record")
    assert code == 0 and "recorded observation" in err
    # on the model version's commit, one table per observation id
    note = tomllib.loads(git(root, "notes", "--ref", refs.OBSERVATIONS, "show", trained.commit))
    obs = list(note["runs"].values())
    assert [o["data"] for o in obs] == ["monday.csv", "tuesday.csv"]
    assert obs[0]["features"]["age"]["status"] == "DRIFT" and obs[0]["version"] == "v0.0.1"

    code, out, _ = cli(capsys, "monitor", "history", "churn")
    assert code == 0
    assert "monday.csv" in out and "tuesday.csv" in out
    age = next(line for line in out.splitlines() if line.startswith("age "))
    assert age.split()[1:4] == ["2", "1", "ok"]  # observations, flagged, last status
    code, out, _ = cli(capsys, "monitor", "history", "churn#production", "--feature", "age")
    rows = [line for line in out.splitlines() if ".csv" in line]
    assert len(rows) == 2 and "DRIFT" in rows[0] and " ok " in rows[1]
    code, out, _ = cli(capsys, "monitor", "history", "churn", "--format", "json")
    assert [d["data"] for d in json.loads(out)] == ["monday.csv", "tuesday.csv"]
    code, _, err = cli(capsys, "monitor", "history", "churn", "--feature", "nope")
    assert code == 2 and "known: age" in err
    code, _, err = cli(capsys, "monitor", "history", "--run", "0000")
    assert code == 0 and "no recorded observations" in err


# --- bad input -----------------------------------------------------------------------------------


def test_bad_serving_files(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    root = trained.root

    def run(name: str, content: str | bytes) -> tuple[int, str, str]:
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return cli(capsys, "monitor", "churn#production", str(path))

    code, _, err = run("other.csv", "a,b\n1,2\n3,4\n")
    assert code == 1 and "has none of the training columns (age, income, clicks, city)" in err
    code, _, err = run("empty.csv", "")
    assert code == 1 and "file is empty" in err
    code, _, err = run("header.csv", "age,income,clicks,city\n")
    assert code == 1 and "no data rows" in err
    code, _, err = run("fake.parquet", "age,income\n1,2\n")
    assert code == 1 and "not a Parquet file" in err
    code, _, err = cli(capsys, "monitor", "churn#production", str(root / "missing.csv"))
    assert code == 1 and "no such file" in err


def test_type_change_and_all_null_columns(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    df = training_frame(5_000, seed=2)
    df["age"] = [f"{a:.0f} years" for a in df["age"]]  # numbers arrive as text
    df["income"] = np.nan
    serving = str(write(trained.root, "broken.csv", df))
    code, out, _ = cli(capsys, "monitor", "churn#production", serving, "--format", "json")
    assert code == 3
    doc = json.loads(out)
    features = {f["feature"]: f for f in doc["drift"]["features"]}
    assert features["age"]["status"] == "SCHEMA"
    assert "kind changed: numeric" in features["age"]["schema"][0]
    assert features["income"]["status"] == "DRIFT"
    assert features["income"]["null_rate_now"] == 1.0
    assert features["clicks"]["status"] == "ok"


def test_missing_and_extra_columns_are_schema_skew(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    df = training_frame(5_000, seed=4).drop(columns=["clicks"])
    df["request_id"] = np.arange(len(df))
    serving = str(write(trained.root, "s.csv", df))
    code, out, _ = cli(capsys, "monitor", "churn#production", serving)
    assert code == 3
    assert "schema skew in clicks, request_id" in out
    assert "--ignore" in out  # the warning says how to leave an id column out
    code, out, _ = cli(capsys, "monitor", "churn#production", serving, "--ignore", "request_id")
    assert code == 3 and "schema skew in clicks" in out and "request_id" not in out


def test_model_and_run_errors(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    serving = str(write(trained.root, "s.csv", training_frame(500)))
    code, _, err = cli(capsys, "monitor", "churn#staging", serving)
    assert code == 1 and "no version of churn is in staging" in err
    code, _, err = cli(capsys, "monitor", "nope", serving)
    assert code == 1 and "nope" in err
    code, _, err = cli(capsys, "monitor", serving)
    assert code == 2 and "--run ID" in err
    code, _, err = cli(capsys, "monitor", "--run", trained.run_id, serving, "--dataset", "other")
    assert code == 1 and "no profile of 'other' (it has: train)" in err
    code, _, err = cli(capsys, "monitor", "--run", trained.run_id, serving, "--labels", "age")
    assert code == 1 and "--labels needs --prediction" in err


def test_a_version_registered_without_a_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n[models.churn]\npath = "churn.pkl"\n')
    (repo / "churn.pkl").write_bytes(b"made by hand")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "model")
    assert cli(capsys, "register", "churn")[0] == 0
    serving = str(write(repo, "s.csv", training_frame(500)))
    code, _, err = cli(capsys, "monitor", "churn", serving)
    assert code == 1 and "registered without a run" in err and "--run ID" in err


def test_monitor_and_log_stay_free_of_pandas_at_start(repo: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    code = "import sys, gitmlm.cli.root; assert 'pandas' not in sys.modules, 'pandas imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert Repo.open().workdir == repo


def test_profiles_survive_an_interactive_squash(repo: Path) -> None:
    from tests.helpers import commit_all, head, install_hooks

    mlm(repo, "init")
    commit_all(repo, "init gitmlm")
    install_hooks(repo)
    ids = []
    for i in (1, 2):
        (repo / f"f{i}.py").write_text(f"X = {i}\n")
        commit_all(repo, f"c{i}")
        with gitmlm.start_run(name=f"run{i}") as run:
            run.log_dataset("train", training_frame(1_000, seed=i))
            ids.append(run.id)
    editor = {"GIT_SEQUENCE_EDITOR": "sed -i '2s/^pick/squash/'", "GIT_EDITOR": "true"}
    done = subprocess.run(
        ["git", "rebase", "-q", "-i", "HEAD~2"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **editor},
    )
    assert done.returncode == 0, done.stderr
    doc = tomllib.loads(git(repo, "notes", "--ref", refs.PROFILES, "show", head(repo)))
    assert sorted(doc["runs"]) == sorted(ids)  # one valid document holding both
    serving = str(write(repo, "s.csv", training_frame(2_000, seed=9)))
    for run_id in ids:  # each run still finds its profile (small samples: drift or not)
        done = mlm(repo, "monitor", "--run", run_id, serving, check=False)
        assert done.returncode in (0, 3) and "training: dataset 'train', 1,000 rows" in done.stdout


def test_observations_recorded_in_two_clones_merge_through_sync(tmp_path: Path) -> None:
    from tests.sync_test import clone, make_remote

    url = "file://" + str(make_remote(tmp_path))
    a = clone(url, tmp_path / "a")
    b = clone(url, tmp_path / "b")
    with gitmlm.start_run(name="base", path=str(a)) as run:
        run.log_dataset("train", training_frame(5_000))
    mlm(a, "sync")
    mlm(b, "sync")  # b now has the run and its profile
    for clone_dir, name in ((a, "from-a.csv"), (b, "from-b.csv")):
        serving = str(write(clone_dir, name, training_frame(2_000, seed=11)))
        mlm(clone_dir, "monitor", "--run", run.id, serving, "--record")
    mlm(a, "sync")
    mlm(b, "sync")
    mlm(a, "sync")
    for clone_dir in (a, b):
        out = mlm(clone_dir, "monitor", "history", "--run", run.id, "--format", "json").stdout
        assert sorted(d["data"] for d in json.loads(out)) == ["from-a.csv", "from-b.csv"]


def test_html_without_the_ui_extra_names_it(
    trained: Trained, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed
    serving = str(write(trained.root, "s.csv", training_frame(1_000, seed=3)))
    page = trained.root / "r.html"
    code, _, err = cli(capsys, "monitor", "churn#production", serving, "--html", str(page))
    assert code == 1 and "--html needs plotly: pip install 'gitmlm[ui]'" in err
    assert not page.exists()


def test_git_mlm_profile_of_a_live_run_goes_through_its_journal(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitmlm.tracking import record as tracking

    active = tracking.begin(Repo.open(), "live")
    write(repo, "train.csv", training_frame(3_000))
    code, out, _ = cli(capsys, "profile", "train.csv", "--run", active.id, "--name", "train")
    assert code == 0, out
    done = tracking.finish(Repo.open(), active.record, "finished", 0)
    assert done.datasets["train"]["profile"] is True and done.datasets["train"]["rows"] == 3_000
    assert gitmlm.get_run(active.id).datasets["train"]["path"] == "train.csv"
