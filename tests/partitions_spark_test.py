"""`--engine spark` on Spark's local mode: per-file profiles computed by Spark executors and
merged equal the single-process profile of the same rows, bin for bin and count for count.
One Spark session for the module (starting one takes about 10 s)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gitmlm
from gitmlm.cli import main
from gitmlm.core import refs
from gitmlm.partitions import profiling, source
from gitmlm.stats.profile import build_profile
from tests.helpers import ROOT, S3_ENV, day_frame, git, one_pass, write_days


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from gitmlm.partitions import spark as engine

    # Executors are Python processes started by the JVM with the environment it started with:
    # this checkout, and the S3 credentials the s3 fixture gives the driver per test.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(ROOT))
        for var, value in S3_ENV.items():
            mp.setenv(var, value)
        with engine.session("local[2]") as session:
            yield session


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_spark_merged_profiles_equal_the_single_process_profile(spark: Any, tmp_path: Path) -> None:
    data = source.resolve(None, str(write_days(tmp_path / "logs")))
    # Several chunks per file; `score` is decided on day two, so Spark runs a second round.
    merged = profiling.profile(data, engine="spark", chunk_rows=700).to_dict()
    assert merged == one_pass(data.files, chunk_rows=700)
    assert merged["rows"] == 9_000

    reference = build_profile(day_frame(5_000, 99))
    now = source.resolve(None, str(write_days(tmp_path / "now", shift=5.0, seed=7)))
    serving = profiling.profile(
        now, engine="spark", reference=reference, drop=["clicks"], chunk_rows=700
    ).to_dict()
    frames = [
        f.drop(columns="clicks") for p in now.files for f in source.Source(p, (p,)).frames(0, 700)
    ]
    assert serving == build_profile(frames, reference=reference).to_dict()


def test_git_mlm_profile_and_monitor_with_engine_spark(
    repo: Path, spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with gitmlm.start_run(name="base") as run:
        run_id = run.id
    train = write_days(repo / "train")
    code, out, err = cli(capsys, "profile", "train", "--run", run_id, "--engine", "spark")
    assert code == 0, err
    assert "profiled 6 files: 9,000 rows, 4 columns" in out
    commit = gitmlm.get_run(run_id).commit
    note = tomllib.loads(git(repo, "notes", "--ref", refs.PROFILES, "show", commit))
    stored = note["runs"][run_id]["train"]
    assert stored == json.loads(json.dumps(one_pass(source.resolve(None, str(train)).files)))

    write_days(repo / "now", shift=8.0, seed=3)
    reports = {}
    for engine in ("local", "spark"):
        code, out, err = cli(
            capsys, "monitor", "--run", run_id, "now", "--engine", engine, "--format", "json"
        )
        assert code == 3, err
        doc = json.loads(out)
        reports[engine] = doc["drift"]
    assert reports["spark"] == reports["local"]
    status = {f["feature"]: f["status"] for f in reports["spark"]["features"]}
    assert status["age"] == "DRIFT"


def test_spark_reads_s3_partitions_with_the_storage_settings(
    repo: Path, s3: str, spark: Any
) -> None:
    import s3fs

    local = write_days(repo.parent / "logs")
    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    fs.put(str(local), f"{s3}/logs", recursive=True)
    data = source.resolve(None, f"s3://{s3}/logs/day=*/part-*.parquet")
    assert data.options["endpoint_url"] == os.environ["AWS_ENDPOINT_URL"]
    merged = profiling.profile(data, engine="spark").to_dict()
    assert merged == one_pass(source.resolve(None, str(local)).files)
