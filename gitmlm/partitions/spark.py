"""Per-partition profiles on a Spark cluster: each file of the dataset is a task that an
executor profiles (reading the file itself, locally or from the object store) and returns as a
partial profile; the driver merges them exactly (`gitmlm.stats.partitioned`).

Spark is a scheduler here, not a reader: executors run `gitmlm.partitions.tasks`, so gitmlm
(with pyarrow, and s3fs for `s3://`) must be installed where they run. Local mode (`local[*]`,
the default) starts its Python workers from this interpreter's environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitmlm.errors import MlmError
from gitmlm.partitions import tasks
from gitmlm.stats.partitioned import Task
from gitmlm.stats.profile import Partial

INSTALL = "--engine spark needs pyspark: pip install 'gitmlm[spark]' (and Java 17 or newer)"
DEFAULT_MASTER = "local[*]"


def require() -> None:
    """One line saying how to install the extra, before any work."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise MlmError(INSTALL) from exc


def where(master: str | None) -> str:
    """The cluster to use: --master, else SPARK_REMOTE (Spark Connect), else local mode."""
    return master or os.environ.get("SPARK_REMOTE") or DEFAULT_MASTER


@contextmanager
def session(master: str | None = None) -> Iterator[Any]:
    """A Spark session on `where(master)`; one already active in this process is used as it is
    (and left running), one started here is stopped at the end."""
    require()
    import warnings

    # pyspark 4 warns on every import under pandas 3; the calls used here (mapInPandas over
    # int and string columns) do not touch what it warns about.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    url = where(master)
    builder: Any = SparkSession.builder.appName("gitmlm")
    if url.startswith("sc://"):
        builder = builder.remote(url)
    else:
        if url.startswith("local"):
            _workers_import_this_gitmlm()
        builder = builder.master(url).config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # pyspark's errors have no common base worth naming
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MlmError(f"cannot start Spark on {url}: {first} (is Java 17+ installed?)") from exc
    try:
        if not url.startswith("sc://"):
            # A failed task is reported as one line (compute); its Java stack trace is noise.
            spark.sparkContext.setLogLevel("FATAL")
        yield spark
    finally:
        spark.stop()


def _workers_import_this_gitmlm() -> None:
    # Local-mode workers are new Python processes started by the JVM with its environment: give
    # them the folder this gitmlm is imported from, so driver and workers run the same code.
    import gitmlm

    home = str(Path(gitmlm.__file__).resolve().parent.parent)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if home not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([home, *parts])


def compute(spark: Any, job: tasks.Job, todo: Sequence[Task]) -> list[Partial]:
    """One Spark job: a task per partition in `todo`, their partial profiles in `todo`'s order."""
    rows = [(i, tasks.seeds_to_json(seeds)) for i, seeds in todo]
    frame = spark.createDataFrame(rows, "idx long, seeds string").repartition(len(rows))
    fn = functools.partial(tasks.map_batches, job.to_json())
    try:
        out = frame.mapInPandas(fn, "idx long, partial string").collect()
    except Exception as exc:
        raise MlmError(f"the Spark job failed: {_worker_error(exc)}") from exc
    found = {int(r["idx"]): str(r["partial"]) for r in out}
    return [tasks.partial_from_json(found[i]) for i, _ in todo]


def _worker_error(exc: BaseException) -> str:
    # A task's MlmError arrives wrapped in a Java stack trace: keep its one line.
    text = str(exc)
    marker = "gitmlm.errors.MlmError: "
    if marker in text:
        return text.split(marker, 1)[1].splitlines()[0]
    return (text.strip().splitlines() or [type(exc).__name__])[0]
