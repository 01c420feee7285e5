"""Datasets of many files (hive partitions, globs, s3://) for `git mlm profile` and `monitor`, and
the exact merge of partial profiles that `--engine spark` relies on (here without Spark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gitmlm
from gitmlm.cli import main
from gitmlm.core import refs
from gitmlm.partitions import source, tasks
from gitmlm.stats.partitioned import profile_partitions
from gitmlm.stats.profile import Partial, Seeds, build_profile
from tests.helpers import DAYS, ROOT, day_frame, git, one_pass, write_days


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def a_run(repo: Path) -> str:
    with gitmlm.start_run(name="base") as run:
        run.log_metric("accuracy", 0.9)
        return run.id


def test_a_folder_of_hive_partitions_lists_its_parquet_files_in_path_order(tmp_path: Path) -> None:
    root = write_days(tmp_path / "logs")
    found = source.resolve(None, str(root))
    assert [Path(f).relative_to(root).as_posix() for f in found.files] == [
        f"day={d}/part-{p:05d}.parquet" for d in DAYS for p in range(2)
    ]
    globbed = source.resolve(None, f"{root}/day=2024-03-0[23]/part-*.parquet")
    assert globbed.files == found.files[2:]
    with pytest.raises(gitmlm.MlmError, match="no CSV or Parquet files match"):
        source.resolve(None, f"{root}/day=1999*/*.parquet")


def test_partial_profiles_merged_in_rounds_equal_one_pass_bin_for_bin(tmp_path: Path) -> None:
    root = write_days(tmp_path / "logs")
    data = source.resolve(None, str(root))
    job = tasks.Job(data, chunk_rows=700)  # several chunks per file, as in a big dataset
    rounds: list[list[int]] = []

    def compute(todo: list[tuple[int, Seeds]]) -> list[Partial]:
        rounds.append([i for i, _ in todo])
        # Through JSON, as a Spark executor sends them.
        return [
            tasks.partial_from_json(tasks.run(job.to_json(), i, tasks.seeds_to_json(s)))
            for i, s in todo
        ]

    merged = profile_partitions(len(data.files), compute).to_dict()
    assert merged == one_pass(list(data.files), chunk_rows=700)
    # the first file alone, then the rest; `score` got its bins on day two, so the files after
    # the first one of day two are counted again on those bins
    assert rounds == [[0], [1, 2, 3, 4, 5], [3, 4, 5]]
    score = merged["columns"]["score"]
    assert (
        score["nulls"] == 3_000 and sum(score["counts"]) + score["under"] + score["over"] == 6_000
    )

    # A serving profile counts on the reference's bins; `score` still takes its kind and dtype
    # from its first values, on day two.
    reference = build_profile(day_frame(5_000, 99))
    shifted = source.resolve(None, str(write_days(tmp_path / "now", shift=5.0, seed=7)))
    job = tasks.Job(shifted, reference=reference, chunk_rows=700)
    rounds.clear()
    serving = profile_partitions(len(shifted.files), compute, reference=reference).to_dict()
    assert serving == one_pass(list(shifted.files), chunk_rows=700, reference=reference)
    assert rounds == [[0], [1, 2, 3, 4, 5], [3, 4, 5]]


def test_git_mlm_profile_and_monitor_take_a_partitioned_folder_and_a_glob(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = a_run(repo)
    root = write_days(repo / "train")
    code, out, err = cli(capsys, "profile", "train", "--run", run_id, "--name", "train")
    assert code == 0, err
    assert "profiled 6 files: 9,000 rows, 4 columns" in out
    run = gitmlm.get_run(run_id)
    note = tomllib.loads(git(repo, "notes", "--ref", refs.PROFILES, "show", run.commit))
    stored = note["runs"][run_id]["train"]
    files = source.resolve(None, str(root)).files
    assert stored == json.loads(json.dumps(one_pass(list(files))))  # what TOML keeps of it
    assert "day" not in stored["columns"]  # partition keys name partitions, not columns

    write_days(repo / "now", shift=8.0, seed=3)
    code, out, _ = cli(capsys, "monitor", "--run", run_id, "now/day=*/*.parquet", "--record")
    assert code == 3, out
    assert "serving:  now/day=*/*.parquet, 9,000 rows" in out
    assert "DRIFT" in next(line for line in out.splitlines() if line.startswith("age "))
    code, out, _ = cli(capsys, "monitor", "--run", run_id, "train")
    assert code == 0, out


def test_s3_partitions_read_through_the_storage_settings(
    repo: Path, s3: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import s3fs

    run_id = a_run(repo)
    local = write_days(repo.parent / "logs")
    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    fs.put(str(local), f"{s3}/logs", recursive=True)
    # The endpoint comes from the storage remote on the same bucket, not the environment.
    endpoint = os.environ.pop("AWS_ENDPOINT_URL")
    code, _, err = cli(capsys, "storage", "add", "lake", f"s3://{s3}/objects")
    assert code == 0, err
    text = (repo / "mlm.toml").read_text()
    (repo / "mlm.toml").write_text(text + f'endpoint_url = "{endpoint}"\n')

    code, out, err = cli(capsys, "profile", f"s3://{s3}/logs/", "--run", run_id, "--name", "t")
    assert code == 0, err
    assert "profiled 6 files: 9,000 rows" in out
    note = tomllib.loads(
        git(repo, "notes", "--ref", refs.PROFILES, "show", gitmlm.get_run(run_id).commit)
    )
    files = source.resolve(None, str(local)).files
    assert note["runs"][run_id]["t"] == json.loads(json.dumps(one_pass(list(files))))
    assert gitmlm.get_run(run_id).datasets["t"]["path"] == f"s3://{s3}/logs/"

    code, out, err = cli(capsys, "monitor", "--run", run_id, f"s3://{s3}/logs/day=*/part-*")
    assert code == 0, out + err
    assert "part-*, 9,000 rows" in out

    fs.pipe(f"{s3}/csv/a.csv", b"age\n1\n")
    code, _, err = cli(capsys, "monitor", "--run", run_id, f"s3://{s3}/csv/")
    assert code == 1
    assert "read as Parquet only" in err


def test_engine_spark_without_pyspark_says_how_to_install_it(repo: Path, tmp_path: Path) -> None:
    # pyspark made unimportable the way a missing package is: a module that raises ImportError.
    blocker = tmp_path / "no-spark" / "pyspark"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named pyspark')\n")
    run_id = a_run(repo)
    day_frame(100, 1).to_parquet(repo / "d.parquet")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    for args in (
        ["profile", "d.parquet", "--run", run_id, "--engine", "spark"],
        ["monitor", "--run", run_id, "d.parquet", "--engine", "spark"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gitmlm", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            "git mlm: --engine spark needs pyspark: pip install 'gitmlm[spark]' "
            "(and Java 17 or newer)"
        ]
