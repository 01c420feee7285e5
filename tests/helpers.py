"""What the tests share: `git` and `git mlm` as a user types them, hook shims of this checkout,
run records, and a small registry project. Test files import from here, never from each other."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gitmlm
from gitmlm.core import tags
from gitmlm.tracking import liveness

ROOT = Path(__file__).resolve().parent.parent
DATE = "1700000000 +0000"


def dead_pid() -> int:
    """The pid of a process that has exited (pids are not reused this quickly)."""
    return int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout)


def random_run_table(
    rng: random.Random, i: int, commit: str, parents: list[str] | None = None, live: bool = True
) -> dict[str, Any]:
    """A run table as the codec writes it, with every kind of value a listing must carry the
    same way on every path. `parents`: ids a run may name as its parent (else one fixed id);
    `live`: `running` runs too, crashed ones (their process is gone) and one alive here."""
    stamp = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}.{i:06d}Z"
    names = ["base", "Base", "wide_1", "", "x%y", "x|y", "100", f"run-{i}", "a much longer name"]
    t: dict[str, Any] = {
        "name": rng.choice(names),
        "status": rng.choice(["finished", "failed", "crashed", "finished"]),
        "started": rng.choice([stamp, stamp, "2026-11-01T00:00:00Z"]),
        "updated": stamp,
        "user": rng.choice(["ann", "bob"]),
        "host": "elsewhere",
        "commit": commit,
        "command": ["python", "train.py"],
        "exit_code": rng.choice([0, 1]),
    }
    if rng.random() < 0.8:
        t["ended"] = stamp
    if rng.random() < 0.7:
        t["branch"] = "main"
    params: dict[str, Any] = {}
    for key, values in {
        "lr": [0.1, 0.01, 1e-3, 0.1, math.inf],
        "layers": [1, 2, 3, 2**60],
        "mixed": [1, 2.5, "2", "x", True, False, "True", [1, 2], -0.0, 0.0],
        "model": ["cnn", "mlp", "CNN", "res_net%", "a\\b", "é"],
        "flag": [True, False],
        "opt": [{"name": "adam", "beta": 0.9}, {"name": "sgd"}],
    }.items():
        if rng.random() < 0.75:
            params[key] = rng.choice(values)
    t["params"] = params
    metrics: dict[str, Any] = {}
    for key in ("acc", "loss", "f1 score"):
        if rng.random() < 0.8:
            metrics[key] = rng.choice([rng.random(), math.nan, 0.5, -0.0, 0.0, math.inf, 1.0])
    if rng.random() < 0.05:
        metrics["acc"] = rng.choice([1, "0.25"])  # read as floats by the codec
    t["metrics"] = metrics
    if rng.random() < 0.5:
        t["tags"] = {"team": rng.choice(["vision", "Vision", "nlp", ""])}
    if rng.random() < 0.3:
        digest = rng.choice(["sha256:a", "sha256:b", "sha256:" + "ab" * 32, "md5:x"])
        t["datasets"] = {"train": {"digest": digest}}
    if rng.random() < 0.1:
        t["archived"] = True
    if rng.random() < 0.06:
        t["deleted"] = True
    if parents is None:
        if rng.random() < 0.1:
            t["parent"] = "01k0000000000000000000000a"
    elif parents and rng.random() < 0.2:
        t["parent"] = rng.choice([*parents[-5:], "01k0000000000000000000zzzz"])
    if rng.random() < 0.05:
        t["note"] = "a note"
    if rng.random() < 0.05:
        t["untagged"] = {"team": True}
    if live and rng.random() < 0.05:  # a running run whose process is gone: crashed
        t.update(status="running", host=liveness.HOST, pid=dead_pid())
    if live and rng.random() < 0.04:  # a running run alive here (this process), beating now
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        t.update(status="running", host=liveness.HOST, pid=os.getpid(), updated=now)
        t.pop("ended", None)
    return t


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def mlm(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`git mlm ARGS` as a user types it: through git, which finds our git-mlm on PATH."""
    proc = subprocess.run(["git", "mlm", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"git mlm {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
        )
    return proc


def install_hooks(repo: Path) -> None:
    """Use the shims in hooks/ as this repository's git hooks, and put console scripts that
    run this checkout's hook modules on PATH (the shims call them by name)."""
    bindir = Path(os.environ["HOME"]) / "bin"
    for script, module in (
        ("mlm-checkpoint", "gitmlm.hooks.checkpoint"),
        ("mlm-post-commit", "gitmlm.hooks.post_commit"),
    ):
        shim = bindir / script
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    # A copy per repository: git-lfs and others write hooks into whatever hooksPath names, and
    # must never write into this checkout.
    shims = repo.parent / f"{repo.name}-hooks"
    shutil.copytree(ROOT / "hooks", shims, dirs_exist_ok=True)
    git(repo, "config", "core.hooksPath", str(shims))


def runs(repo: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    return out


def note(repo: Path, commit: str) -> str:
    return git(repo, "notes", "--ref", "refs/notes/mlm", "show", commit, check=False)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def commit_all(repo: Path, message: str, check: bool = True) -> str:
    git(repo, "add", "-A")
    proc = git_proc(repo, "commit", "-q", "-m", message)
    if check and proc.returncode != 0:
        raise AssertionError(f"commit failed: {proc.stdout}{proc.stderr}")
    return proc.stderr + proc.stdout


def git_proc(repo: Path, *args: str) -> Any:
    import subprocess

    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


MLM_TOML = """\
schema = 1

[models.churn]
path = "models/churn.pkl"
description = "churn classifier"

[metrics]
auc = "max"

[registry]
stages = ["dev", "staging", "production"]

[registry.gates.production]
require = ["metrics.auc >= 0.9"]
better_than_current = "auc"
"""


def setup_project(repo: Path, toml: str = MLM_TOML) -> None:
    (repo / "mlm.toml").write_text(toml)
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "declare churn")


def train(repo: Path, auc: float, tag: str = "") -> str:
    """A tracked run that writes and logs the model, then a commit of the model; the run id."""
    (repo / "models").mkdir(exist_ok=True)
    with gitmlm.start_run(params={"auc": auc}) as run:
        (repo / "models" / "churn.pkl").write_text(f"weights for auc {auc} {tag}")
        run.log_metric("auc", auc)
        run.log_artifact(repo / "models" / "churn.pkl")
    git(repo, "add", "models/churn.pkl")
    git(repo, "commit", "-q", "-m", f"model auc {auc}")
    return run.id


def tag_list(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


def body(repo: Path, tag: str) -> dict[str, Any]:
    """The TOML body of a tag, as git stores it (headers, blank line, message)."""
    raw = git(repo, "cat-file", "tag", f"refs/tags/{tag}")
    return tags.decode_message(raw.split("\n\n", 1)[1]).body


def models_json(repo: Path, *args: str) -> list[dict[str, Any]]:
    return json.loads(mlm(repo, "models", "--format", "json", *args).stdout)


PEERS = Path(os.environ.get("PEERS_DIR", "/tmp/gitmlm-peers"))


def peer_python(tool: str) -> Path:
    """The python of a peer tool's venv; .ci/run installs them, so a missing one is a failure."""
    import pytest

    python = PEERS / tool / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{tool} is not installed: run `bash .ci/run` or the peers' install.sh {tool}")
    return python


def peer_env(home: Path) -> dict[str, str]:
    """An environment for a peer tool run from a module fixture (before the per-test hermetic
    one): a home of its own, no system git config, a fixed git identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITMLM_", "MLFLOW"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "Test User"
        env[f"GIT_{who}_EMAIL"] = "test@example.com"
    return env


# --- GTO, the peer whose tags the registry shares ---------------------------------------------

_GTO_SHOW = """
import json, sys
from gto.api import show
print(json.dumps({path: show(path) for path in sys.argv[1:]}))
"""


def gto_state(*repos: Path) -> list[dict[str, Any]]:
    """What real GTO's `gto show --json` reads in each repository, normalised to compare with
    `ours`: model -> latest registered version and the non-empty stages. One GTO process for
    all the repositories (importing GTO costs seconds)."""
    proc = subprocess.run(
        [str(peer_python("gto")), "-c", _GTO_SHOW, *map(str, repos)],
        capture_output=True,
        text=True,
        env={**os.environ, "GTO_NO_ANALYTICS": "1", "ITERATIVE_DO_NOT_TRACK": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    out = []
    for path in repos:
        out.append(
            {
                name: {
                    "latest": d["version"],
                    "stages": {s: v for s, v in d["stage"].items() if v},
                }
                for name, d in shown[str(path)].items()
            }
        )
    return out


def ours(repo: Path) -> dict[str, Any]:
    """`git mlm models --format json`, normalised as `gto_state` normalises GTO's answer."""
    return {
        row["model"]: {
            "latest": row["latest"],
            "stages": {s: v for s, v in row["stages"].items() if v},
        }
        for row in models_json(repo)
    }


# --- the ui's project ---------------------------------------------------------------------

XSS = "<img src=x onerror=alert(1)>"
UI_TOML = MLM_TOML.replace('better_than_current = "auc"\n', "")


def ui_project(repo: Path) -> dict[str, str]:
    """Three runs with step series (one named like an XSS attack), a registered, promoted
    model; returns run name -> id."""
    (repo / "mlm.toml").write_text(UI_TOML)
    git(repo, "add", "mlm.toml")
    git(repo, "commit", "-q", "-m", "declare churn")
    (repo / "models").mkdir()
    ids = {}
    for i, (name, lr) in enumerate([("baseline", 0.1), ("fast", 0.3), (XSS, 0.03)]):
        params = {"lr": lr, "opt": "adam" if i else "sgd"}
        with gitmlm.start_run(name=name, params=params) as run:
            for step in range(60):
                run.log_metric("loss", math.exp(-lr * step) + 0.02 * i, step=step)
                run.log_metric("val_loss", math.exp(-lr * step) + 0.003 * step, step=step)
            run.log_metric("auc", 0.8 + 0.06 * i)
            (repo / "models" / "churn.pkl").write_text(f"weights {i}")
            run.log_artifact(repo / "models" / "churn.pkl")
        ids[name] = run.id
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train churn")
    mlm(repo, "register", "churn")
    mlm(repo, "promote", "churn", "staging")
    return ids


def monitor_project(repo: Path, run_id: str, html: Path) -> None:
    """Over a ui_project: a training profile for run `run_id`, then one recorded observation of
    churn (drifted, with labels, windows and latency) whose `--html` page is written to `html`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "age": rng.normal(40 + shift, 10, n).round(1),
                "city": rng.choice(["paris", "lyon", XSS], n, p=[0.5, 0.3, 0.2]),
                "label": rng.integers(0, 2, n),
                "pred": rng.integers(0, 2, n),
                "ts": pd.date_range("2024-03-01", periods=n, freq="1h").astype(str),
                "ms": rng.gamma(2.0, 40.0 + shift * 20, n),
            }
        )

    frame(400, 0)[["age", "city", "label", "pred"]].to_csv(repo / "train.csv", index=False)
    frame(96, 5).to_csv(repo / "serving.csv", index=False)
    mlm(repo, "profile", "train.csv", "--run", run_id)
    out = mlm(
        repo, "monitor", "churn", "serving.csv", "--run", run_id, "--labels", "label",
        "--prediction", "pred", "--time", "ts", "--latency", "ms", "--record",
        "--html", str(html), check=False,
    )  # fmt: skip
    assert out.returncode in (0, 3), out.stderr


# --- a real S3 API on loopback (moto's standalone server) ---------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server as a subprocess on 127.0.0.1 and a free port: (process, endpoint URL).
    The caller stops it (proc.terminate()). Also used by bench/storage_bench.py. `env` adds
    variables (INITIAL_NO_AUTH_ACTION_COUNT=0 makes it check credentials)."""
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=S3_ENV["AWS_ACCESS_KEY_ID"],
        secret=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=endpoint,
        skip_instance_cache=True,
    )
    fs.mkdir(name)


# --- model scans: tabular tasks with planted problems (sklearn is imported only when used) ---


def churn_frame(n: int, seed: int) -> Any:
    """A churn-like table with a known, clean link between features and label (fixed seed)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n).round(1),
            "income": rng.lognormal(10, 0.5, n).round(0),
            "tenure": rng.integers(0, 120, n),
            "region": rng.choice(["north", "south", "east", "west"], n, p=[0.25, 0.35, 0.2, 0.2]),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    z = (
        0.04 * (df.age - 45)
        - 0.5 * (np.log(df.income) - 10)
        - 0.02 * (df.tenure - 60)
        + df.plan.map({"basic": 0.5, "plus": 0.0, "pro": -0.7})
        + df.region.map({"north": 0.3, "south": 0.0, "east": -0.2, "west": 0.1})
    )
    df["churn"] = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int)
    return df


def churn_model(train: Any, estimator: Any = None, numeric: tuple[str, ...] = ()) -> Any:
    """A scikit-learn pipeline (scaling, one-hot) fitted on `train`; gradient boosting unless
    another estimator is given."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    nums = ["age", "income", "tenure", *numeric]
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), nums),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"]),
        ]
    )
    est = estimator or GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)
    model = Pipeline([("pre", pre), ("model", est)])
    return model.fit(train.drop(columns="churn"), train["churn"])


# --- partitioned datasets (hive layout, as Spark writes them) ----------------------------------

DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")


def day_frame(n: int, seed: int, *, shift: float = 0.0, late: bool = True) -> Any:
    """One day of a small serving log (`score` is a late column: see write_days)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n).round(1),
            "clicks": rng.poisson(3, n),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    if late:
        df["score"] = rng.random(n)
    return df


def write_days(root: Path, *, shift: float = 0.0, seed: int = 0) -> Path:
    """Hive partitions `day=…/part-N.parquet`, as Spark writes them (with _SUCCESS and .crc),
    where `score` has no values on the first day: its bins are decided on the second."""
    import numpy as np

    for d, day in enumerate(DAYS):
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        for part in range(2):
            df = day_frame(1_500, seed + 10 * d + part, shift=shift)
            if d == 0:
                df["score"] = np.nan
            df.to_parquet(folder / f"part-{part:05d}.parquet", index=False)
            (folder / f".part-{part:05d}.parquet.crc").write_bytes(b"crc")
    (root / "_SUCCESS").write_bytes(b"")
    return root


def one_pass(files: Any, chunk_rows: int = 200_000, **kw: Any) -> dict[str, Any]:
    """The single-process profile of the same rows: the files in path order, one build."""
    from gitmlm.stats.frames import read_frames
    from gitmlm.stats.profile import build_profile

    frames = (f for p in files for f in read_frames(p, chunk_rows=chunk_rows))
    return build_profile(frames, **kw).to_dict()


def seeded_remote(tmp_path: Path) -> str:
    """A bare remote holding one commit of train.py on main, as a file:// URL."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "train.py").write_text("print('train')\n")
    git(seed, "add", "train.py")
    git(seed, "commit", "-q", "-m", "initial")
    git(seed, "push", "-q", str(bare), "main")
    return f"file://{bare}"


def sync_all(*clones: Path) -> None:
    """`git mlm sync` with origin in each clone, in this order."""
    from gitmlm.core.git import Repo
    from gitmlm.sync import sync

    for path in clones:
        sync.sync(Repo.open(path), "origin")
