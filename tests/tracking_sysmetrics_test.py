"""System metrics: sampled as step series under `git mlm run` (on by default) and in the API
(off by default), with MLflow's names."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import gitmlm
from gitmlm.errors import MlmError
from tests.helpers import mlm

CPU = "system/cpu_utilization_percentage"
MEM = "system/system_memory_usage_megabytes"


def _last(repo: Path) -> gitmlm.Run:
    rows = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    return gitmlm.get_run(rows[0]["run_id"])


def test_git_mlm_run_samples_and_can_be_told_not_to(repo: Path) -> None:
    env = {**os.environ, "GITMLM_SYSTEM_METRICS_INTERVAL": "0.2"}
    sleep = [sys.executable, "-c", "import time; time.sleep(1.2)"]
    mlm(repo, "run", "--", *sleep, env=env)
    run = _last(repo)
    assert len(run.steps[CPU]["step"]) >= 2 and run.steps[CPU]["step"][:2] == [0, 1]
    assert 0 <= run.metrics[CPU] <= 100 and run.metrics[MEM] > 0
    mlm(repo, "run", "--no-system-metrics", "--", *sleep, env=env)
    assert not any(m.startswith("system/") for m in _last(repo).metrics)
    proc = mlm(
        repo, "run", "--", *sleep, env={**env, "GITMLM_SYSTEM_METRICS_INTERVAL": "x"}, check=False
    )
    assert proc.returncode == 1 and "give the seconds between samples" in proc.stderr
    assert len(json.loads(mlm(repo, "runs", "--format", "json").stdout)) == 2  # none written


def test_api_is_off_by_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITMLM_SYSTEM_METRICS_INTERVAL", "0.1")
    with gitmlm.start_run() as quiet:
        time.sleep(0.3)
    with gitmlm.start_run(log_system_metrics=True) as sampled:
        time.sleep(0.5)
    assert not any(m.startswith("system/") for m in gitmlm.get_run(quiet.id).metrics)
    assert len(gitmlm.get_run(sampled.id).steps[CPU]["step"]) >= 2
    monkeypatch.setenv("GITMLM_SYSTEM_METRICS_INTERVAL", "-1")
    with (
        pytest.raises(MlmError, match="seconds between samples"),
        gitmlm.start_run(log_system_metrics=True),
    ):
        pass
    assert len(gitmlm.runs()) == 2  # the bad setting wrote no run
