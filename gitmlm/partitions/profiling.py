"""Profile a dataset of many files in this process (`local`) or on a Spark cluster (`spark`).

Both give the same profile, bin for bin and count for count: `local` streams the files in
path order through one `build_profile`; `spark` profiles each file as a task and merges the
partial profiles in the same order (`gitmlm.stats.partitioned`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from gitmlm.errors import MlmError
from gitmlm.partitions import tasks
from gitmlm.partitions.source import Source
from gitmlm.stats.partitioned import Task, profile_partitions
from gitmlm.stats.profile import Partial, Profile, build_profile

ENGINES = ("local", "spark")


def check_engine(engine: str) -> None:
    """Unknown engines are an error; `spark` without pyspark says how to install it."""
    if engine not in ENGINES:
        raise MlmError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "spark":
        from gitmlm.partitions import spark

        spark.require()


def profile(
    source: Source,
    *,
    engine: str = "local",
    master: str | None = None,
    reference: Profile | None = None,
    top_k: int = 20,
    hash_values: bool = False,
    min_count: int = 0,
    drop: Sequence[str] = (),
    chunk_rows: int = 200_000,
) -> Profile:
    """The profile of every row of `source`'s files; with `reference`, a serving profile."""
    check_engine(engine)
    job = tasks.Job(source, reference, hash_values, tuple(drop), chunk_rows)
    if engine == "local":
        frames = itertools.chain.from_iterable(job.frames(i) for i in range(len(source.files)))
        return build_profile(
            frames, reference=reference, top_k=top_k, hash_values=hash_values, min_count=min_count
        )
    from gitmlm.partitions import spark

    with spark.session(master) as session:

        def compute(todo: Sequence[Task]) -> list[Partial]:
            return spark.compute(session, job, todo)

        return profile_partitions(
            len(source.files), compute, reference=reference, top_k=top_k, min_count=min_count
        )
