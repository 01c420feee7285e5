"""The work of one partition, as plain data in and out, so that it runs in any process: a
Spark executor imports this module (it never imports pyspark) and calls `run`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from gitmlm.partitions.source import Source
from gitmlm.stats.profile import Partial, Profile, Seed, Seeds, partial_profile


@dataclass(frozen=True)
class Job:
    """What every partition of one profile shares."""

    source: Source
    reference: Profile | None = None
    hash_values: bool = False
    drop: tuple[str, ...] = ()
    """Columns left out (monitor's --ignore, time and latency columns)."""
    chunk_rows: int = 200_000

    def frames(self, index: int) -> Iterator[pd.DataFrame]:
        for frame in self.source.frames(index, self.chunk_rows):
            gone = [c for c in frame.columns if c in self.drop]
            yield frame.drop(columns=gone) if gone else frame

    def profile(self, index: int, seeds: Seeds) -> Partial:
        return partial_profile(
            self.frames(index),
            seeds=seeds,
            reference=self.reference,
            hash_values=self.hash_values,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source.to_dict(),
                "reference": None if self.reference is None else self.reference.to_dict(),
                "hash_values": self.hash_values,
                "drop": list(self.drop),
                "chunk_rows": self.chunk_rows,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Job:
        d = json.loads(text)
        ref = d["reference"]
        return cls(
            Source.from_dict(d["source"]),
            None if ref is None else Profile.from_dict(ref),
            bool(d["hash_values"]),
            tuple(d["drop"]),
            int(d["chunk_rows"]),
        )


def seeds_to_json(seeds: Seeds) -> str:
    return json.dumps({n: s.to_list() for n, s in seeds.items()})


def seeds_from_json(text: str) -> Seeds:
    return {n: Seed.from_list(v) for n, v in json.loads(text).items()}


def run(job_json: str, index: int, seeds_json: str) -> str:
    """Profile partition `index` of the job: the Partial as JSON (floats round-trip exactly)."""
    job = Job.from_json(job_json)
    part = job.profile(index, seeds_from_json(seeds_json))
    return json.dumps(part.to_dict())


def partial_from_json(text: str) -> Partial:
    return Partial.from_dict(json.loads(text))


def map_batches(job_json: str, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Spark's mapInPandas function: rows of (idx, seeds) in, rows of (idx, partial) out."""
    for batch in batches:
        out = [
            run(job_json, int(i), str(s)) for i, s in zip(batch["idx"], batch["seeds"], strict=True)
        ]
        yield pd.DataFrame({"idx": batch["idx"].astype("int64"), "partial": out})
