"""Benchmark of `--engine spark` beside the single-process path (a script).

Writes a hive-partitioned Parquet dataset (default 10,000,000 rows x 20 columns: 12 normal, 3
integer, 2 lognormal, 3 categorical, in `day=…/part-N.parquet` files of 500,000 rows) to a
temporary directory, then profiles it

- in this process (`--engine local`: the files in path order through one build), and
- on Spark (`--engine spark`, default master local[*]): one task per file, partial profiles
  merged in order,

first as a training profile (bins decided on the first file, then one round for the others),
then as a serving profile on the training profile's bins (what `git mlm monitor` computes).
It prints each time, the Spark session's start apart, and the ratio, and checks that both
engines give the same profile, bin for bin and count for count.

On a 2-core machine Spark is not expected to win: local mode has the same two cores, plus a
JVM, Python workers and the Arrow hand-off. The point is that the work is per file and the
merge exact, so it scales out with executors on a cluster.

Usage: python bench/spark_bench.py [--rows N] [--files K] [--master URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(directory: Path, rows: int, files: int) -> None:
    import numpy as np
    import pandas as pd

    cats = [[f"v{j}" for j in range(k)] for k in (4, 12, 40)]
    per = -(-rows // files)
    for f in range(files):
        n = min(per, rows - f * per)
        if n <= 0:
            break
        rng = np.random.default_rng(f)
        cols: dict[str, Any] = {}
        for i in range(12):
            cols[f"n{i}"] = rng.normal(i, 1 + i / 4, n)
        for i in range(3):
            cols[f"i{i}"] = rng.poisson(2 + 3 * i, n)
        for i in range(2):
            cols[f"l{i}"] = rng.lognormal(i / 2, 1, n)
        for i, values in enumerate(cats):
            w = 1.0 / np.arange(1, len(values) + 1)
            cols[f"c{i}"] = pd.Series(rng.choice(values, n, p=w / w.sum()), dtype="str")
        folder = directory / f"day=2024-01-{f // 2 + 1:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(cols).to_parquet(folder / f"part-{f % 2:05d}.parquet", index=False)


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--keep", type=Path, help="write the dataset here and keep it")
    args = ap.parse_args()

    from gitmlm.partitions import profiling, source
    from gitmlm.partitions import spark as engine

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "data"
        if not directory.exists() or not any(directory.iterdir()):
            t, _ = timed(lambda: generate(directory, args.rows, args.files))
            print(f"wrote {args.rows:,} rows x 20 columns in {args.files} files ({t:.1f} s)")
        data = source.resolve(None, str(directory))
        t_local, train = timed(lambda: profiling.profile(data))
        t_local_s, serving = timed(lambda: profiling.profile(data, reference=train))
        t_start, ctx = timed(lambda: engine.session(args.master))
        t_start_in, session = timed(ctx.__enter__)
        try:
            # The first job also starts the Python workers: time it apart from the measured runs.
            t_warm, _ = timed(
                lambda: profiling.profile(source.Source(data.spec, data.files[:1]), engine="spark")
            )
            t_spark, train_spark = timed(lambda: profiling.profile(data, engine="spark"))
            t_spark_s, serving_spark = timed(
                lambda: profiling.profile(data, engine="spark", reference=train)
            )
            cores = session.sparkContext.defaultParallelism
        finally:
            ctx.__exit__(None, None, None)
        same = train.to_dict() == train_spark.to_dict()
        same_s = serving.to_dict() == serving_spark.to_dict()

    print(
        f"rows {args.rows:,}, files {len(data.files)}, Spark master {args.master} ({cores} cores)"
    )
    print(f"Spark session start: {t_start + t_start_in:.1f} s (not in the figures below)")
    print(f"{'':34}{'local':>9}{'spark':>9}{'spark/local':>13}")
    for what, a, b in (
        ("training profile (bins, rounds)", t_local, t_spark),
        ("serving profile (reference bins)", t_local_s, t_spark_s),
    ):
        print(f"{what:34}{a:8.2f}s{b:8.2f}s{b / a:12.2f}x")
    print(f"identical profiles: training {same}, serving {same_s}")
    print("(the reference, local, is the single-process profile of the same files, same run;")
    print(f" Spark's first job, which starts its Python workers, took {t_warm:.1f} s)")
    return 0 if same and same_s else 1


if __name__ == "__main__":
    raise SystemExit(main())
