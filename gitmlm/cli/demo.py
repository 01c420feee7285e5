"""`git mlm demo`: a small repository taken through the whole lifecycle with real commands.

A dataset declared and fingerprinted, three real training runs (each profiling its data), the
model committed (the checkpoint hook checks a run made it), registered and promoted, serving
data checked for skew against the training profile, then the log and the tables.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from gitmlm.core import gitcmd
from gitmlm.errors import MlmError

ROWS = 4000
MARKER = "gitmlm-demo"
"""A file in the demo's .git: a folder that has it may be replaced by the next demo."""

MLM_TOML = """\
schema = 1

[datasets.train]
path = "data/train.csv"

[models.logreg]
path = "models/logreg.json"
description = "logistic regression on two features"

[metrics]
acc = "max"
final_loss = "min"

[checkpoint]
outputs = ["models/*.json"]

[registry]
stages = ["dev", "staging", "production"]

[registry.gates.staging]
require = ["metrics.acc >= 0.8"]
"""

TRAIN = '''\
"""A tiny logistic regression, tracked with gitmlm (`git mlm run -p lr=0.1 -- python train.py`)."""
import csv
import json
import math
import os

import gitmlm

with gitmlm.start_run(name="logreg") as run:
    lr = float(run.params.get("lr", 0.1))
    epochs = int(run.params.get("epochs", 5))
    with open("data/train.csv") as fh:
        rows = [([float(r["x0"]), float(r["x1"])], int(r["y"])) for r in csv.DictReader(fh)]
    train, test = rows[:3000], rows[3000:]
    w, b = [0.0, 0.0], 0.0
    for epoch in range(epochs):
        loss = 0.0
        for x, y in train:
            p = 1 / (1 + math.exp(-(w[0] * x[0] + w[1] * x[1] + b)))
            loss -= y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12)
            g = p - y
            w = [w[0] - lr * g * x[0], w[1] - lr * g * x[1]]
            b -= lr * g
        run.log_metric("loss", loss / len(train), step=epoch)
    hits = sum((w[0] * x[0] + w[1] * x[1] + b > 0) == (y == 1) for x, y in test)
    run.log_metrics({"acc": hits / len(test), "final_loss": loss / len(train)})
    os.makedirs("models", exist_ok=True)
    with open("models/logreg.json", "w") as fh:
        json.dump({"w": w, "b": b}, fh)
    run.log_artifact("models/logreg.json")
    run.log_dataset("train", profile=True)  # a profile of the data, for `git mlm monitor`
'''


def _data(shift: float = 0.0, seed: int = 0, labels: bool = True) -> str:
    rng = random.Random(seed)
    lines = ["x0,x1,y" if labels else "x0,x1"]
    for _ in range(ROWS):
        x0, x1 = rng.gauss(shift, 1), rng.gauss(0, 1)
        y = 1 if x0 + 0.5 * x1 + rng.gauss(0, 0.5) > 0 else 0
        lines.append(f"{x0:.6f},{x1:.6f},{y}" if labels else f"{x0:.6f},{x1:.6f}")
    return "\n".join(lines) + "\n"


def _run(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode not in ok:
        raise MlmError(f"demo step `{' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def _git(cwd: Path, *args: str) -> str:
    return gitcmd.run(args, cwd=cwd)


def _mlm(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    # This interpreter, so the demo works before `git-mlm` is on PATH too.
    return _run(cwd, sys.executable, "-m", "gitmlm", *args, ok=ok)


def _prepare(root: Path) -> None:
    if root.exists() and any(root.iterdir()):
        if not (root / ".git" / MARKER).exists():
            raise MlmError(f"{root} exists and is not empty; name a new folder: git mlm demo DIR")
        shutil.rmtree(root)  # an earlier demo: start it afresh
    root.mkdir(parents=True, exist_ok=True)


def make(directory: str) -> Iterator[str]:
    root = Path(directory).resolve()
    _prepare(root)
    yield f"demo repository: {root}"
    _git(root, "init", "-q", "-b", "main")
    (root / ".git" / MARKER).write_text("made by git mlm demo\n")
    if gitcmd.proc(["config", "user.name"], cwd=root).returncode:
        _git(root, "config", "user.name", "gitmlm demo")  # a machine with no git identity
        _git(root, "config", "user.email", "demo@gitmlm.invalid")
    (root / "train.py").write_text(TRAIN, encoding="utf-8")
    (root / ".gitignore").write_text("data/\n", encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text(_data(), encoding="utf-8")
    _git(root, "add", "train.py", ".gitignore")
    _git(root, "commit", "-q", "-m", "Add a logistic regression")

    yield "\n$ git mlm init && git mlm install-hooks"
    _mlm(root, "init")
    (root / "mlm.toml").write_text(MLM_TOML, encoding="utf-8")
    _mlm(root, "install-hooks")
    yield "$ git mlm data add train   # fingerprint data/train.csv into mlm.lock"
    _mlm(root, "data", "add", "train")
    _git(root, "add", "mlm.toml", "mlm.lock")
    _git(root, "commit", "-q", "-m", "Track experiments and data with gitmlm")

    for lr in ("0.5", "0.01", "0.1"):
        yield f"$ git mlm run --name lr-{lr} -p lr={lr} -- python train.py"
        _mlm(root, "run", "--name", f"lr-{lr}", "-p", f"lr={lr}", "--", sys.executable, "train.py")
    yield "$ git commit models/logreg.json   # the checkpoint hook finds the run that made it"
    _git(root, "add", "-f", "models/logreg.json")
    _git(root, "commit", "-q", "-m", "Model trained with lr 0.1")
    yield "$ git mlm register logreg && git mlm promote logreg staging"
    _mlm(root, "register", "logreg")
    _mlm(root, "promote", "logreg", "staging")

    yield "\n$ git mlm monitor logreg#staging serving.csv   # x0 drifted by one sigma in serving"
    serving = _data(shift=1.0, seed=1, labels=False)  # labels arrive later, if ever
    (root / "data" / "serving.csv").write_text(serving, encoding="utf-8")
    yield _mlm(
        root, "monitor", "logreg#staging", "data/serving.csv", "--ignore", "y", ok=(0, 3)
    ).rstrip()

    yield "\n$ git mlm log -n 2"
    yield _mlm(root, "log", "-n", "2").rstrip()
    yield "\n$ git mlm runs --order-by 'metrics.acc desc'"
    yield _mlm(
        root,
        "runs",
        "--order-by",
        "metrics.acc desc",
        "--columns",
        "run_id,name,status,params.lr,metrics.acc,metrics.final_loss",
    ).rstrip()
    yield "\n$ git mlm data ls"
    yield _mlm(root, "data", "ls").rstrip()
    yield "\n$ git mlm models"
    yield _mlm(root, "models").rstrip()
    yield (f"\nNext: cd {root}, then `git log -1`, `git mlm model history logreg`, `git mlm -h`")
