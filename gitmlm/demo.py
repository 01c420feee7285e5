"""`git mlm demo`: a small repository with a real training script and a few real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from gitmlm.errors import MlmError

TRAIN = '''\
"""A tiny logistic regression on synthetic data, tracked with gitmlm."""
import math
import random

import gitmlm

with gitmlm.start_run(name="logreg") as run:
    lr = float(run.params.get("lr", 0.1))
    epochs = int(run.params.get("epochs", 20))
    rng = random.Random(int(run.params.get("seed", 0)))
    data = []
    for _ in range(400):
        x = [rng.gauss(0, 1), rng.gauss(0, 1)]
        y = 1 if x[0] + 0.5 * x[1] + rng.gauss(0, 0.5) > 0 else 0
        data.append((x, y))
    train, test = data[:300], data[300:]
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
'''


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MlmError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def _mlm(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "gitmlm", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise MlmError(f"git mlm {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def make(directory: str) -> Iterator[str]:
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise MlmError(f"{root} exists and is not empty; name a new folder: git mlm demo DIR")
    root.mkdir(parents=True, exist_ok=True)
    yield f"demo repository: {root}"
    _git(root, "init", "-q", "-b", "main")
    if not _has_name(root):  # a machine with no git identity can still run the demo
        _git(root, "config", "user.name", "gitmlm demo")
        _git(root, "config", "user.email", "demo@gitmlm.invalid")
    (root / "train.py").write_text(TRAIN, encoding="utf-8")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "Add a logistic regression")
    yield _mlm(root, "init").rstrip()
    _git(root, "add", "mlm.toml")
    _git(root, "commit", "-q", "-m", "Track experiments with gitmlm")
    for lr in ("0.01", "0.1", "0.5"):
        yield f"$ git mlm run --name lr-{lr} -p lr={lr} -- python train.py"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gitmlm",
                "run",
                "--name",
                f"lr-{lr}",
                "-p",
                f"lr={lr}",
                "--",
                sys.executable,
                "train.py",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        if proc.returncode != 0:
            raise MlmError(f"demo run failed: {proc.stderr.strip()}")
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
    yield f"\nNext: cd {root} && git log --notes=mlm -1, or git mlm --help"


def _has_name(root: Path) -> bool:
    return (
        subprocess.run(
            ["git", "config", "--get", "user.name"], cwd=root, capture_output=True
        ).returncode
        == 0
    )
