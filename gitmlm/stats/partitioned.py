"""One profile of a dataset made of partitions profiled apart (in parallel, on other machines).

A training profile freezes each numeric column's bin edges on the first chunk that has finite
values in it (`gitmlm.stats.profile`), so a partition cannot be counted before the partitions
ahead of it have decided their columns. Partitions are therefore profiled in rounds: the first
partition alone, then all the others with the seeds (kind, dtype, edges) it decided; a partition
that decided a column the partitions ahead of it had already decided (a column that had no
values in the first partition, say) is profiled again with their seeds. Usually there is one
round after the first partition. The partials are then merged in partition order, which gives
the profile a single pass over the same chunks gives, bin for bin, count for count and float
for float. A serving profile (`reference=`) counts on the reference's edges, so its rounds only
settle each column's kind and dtype.

The partitions themselves are read by the caller's `compute`, which may run anywhere: this
module only plans and merges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gitmlm.errors import MlmError
from gitmlm.stats.profile import (
    Partial,
    Profile,
    Seeds,
    advance,
    check_options,
    finish_profile,
    merge_partial,
)

Task = tuple[int, Seeds]
"""A partition's index and the seeds it is to be profiled with."""
Compute = Callable[[Sequence[Task]], list[Partial]]
"""Profiles the partitions named by the tasks (in any order, anywhere); one Partial per task."""


def profile_partitions(
    count: int,
    compute: Compute,
    *,
    reference: Profile | None = None,
    top_k: int = 20,
    min_count: int = 0,
) -> Profile:
    """The profile of `count` partitions, read by `compute`, as one pass would build it."""
    check_options(top_k, min_count)
    if count < 1:
        raise MlmError("no partitions to profile")
    parts: list[Partial | None] = [None] * count
    todo: list[Task] = [(0, {})]
    while todo:
        done = compute(todo)
        if len(done) != len(todo):
            raise MlmError(f"the engine returned {len(done)} partial profiles for {len(todo)}")
        for (i, _), part in zip(todo, done, strict=True):
            parts[i] = part
        todo = _stale(parts)
    merged = Partial()
    for profiled in parts:
        assert profiled is not None
        merge_partial(merged, profiled)
    return finish_profile(merged, reference=reference, top_k=top_k, min_count=min_count)


def _stale(parts: list[Partial | None]) -> list[Task]:
    """The partitions to profile (again): from the first one not profiled with the seeds of the
    partitions ahead of it, each whose seeds differ from those."""
    seeds: Seeds = {}
    for k, part in enumerate(parts):
        if part is None or not part.fits_after(seeds):
            return [
                (j, seeds)
                for j in range(k, len(parts))
                if j == k or (p := parts[j]) is None or not p.fits_after(seeds)
            ]
        seeds = advance(seeds, part)
    return []
