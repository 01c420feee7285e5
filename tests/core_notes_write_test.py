"""What a process remembers of the notes it wrote gives what reading them back gives."""

from __future__ import annotations

import random
from pathlib import Path

import tomli_w

from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo


def test_an_index_is_the_bytes_tomli_w_writes_for_the_whole_document() -> None:
    """Briefs are encoded a table at a time and kept: the index must not depend on that."""
    rng = random.Random(7)
    names = ["a", "b c", "ü", 'q"uote', "x.y"]
    for _ in range(200):
        latest = {}
        for _ in range(rng.randrange(0, 12)):
            rid = "01j" + "".join(rng.choice("0123456789abcdefghjkmnpqrstvwxyz") for _ in range(23))
            brief: dict[str, object] = {}
            if rng.random() < 0.9:
                brief["name"] = rng.choice(names)
            if rng.random() < 0.9:
                brief["status"] = rng.choice(["running", "finished", "failed"])
            if rng.random() < 0.7:
                brief["metrics"] = {
                    rng.choice(names): rng.choice([0.5, 1e-300, -2.0, float("inf"), 3.0])
                    for _ in range(rng.randrange(0, 4))
                }
            latest[rid] = brief
        expected = tomli_w.dumps(
            {
                "count": 70,
                "store": "0" * 40,
                "latest": {rid: latest[rid] for rid in sorted(latest, reverse=True)},
            }
        )
        encoded = store._encode_index(70, "0" * 40, latest)
        assert encoded.endswith(expected.encode())
        again = store._encode_index(70, "0" * 40, latest)  # from the kept tables
        assert again == encoded


def test_a_run_read_back_in_the_writing_process_equals_its_toml(repo: Path) -> None:
    r = Repo.open(repo)
    head = r.head_commit()
    tables = {
        f"01j{i:023d}": {
            "name": f"r{i}",
            "status": "running",
            "params": {"lr": i / 7, "layers": [1, 2, 3], "opt": {"name": "adam", "b": (0.9,)}},
            "metrics": {"nan": float("nan")} if i == 3 else {"acc": 0.5},
        }
        for i in range(store.INLINE_MAX + 3)  # beyond the inline limit: an index store
    }
    store.put_runs(r, refs.RUNS, head, tables, "gitmlm: runs")
    for rid, table in tables.items():  # each run's end: one blob of the store rewritten
        store.put_runs(r, refs.RUNS, head, {rid: {**table, "status": "finished"}}, "gitmlm")
    snap = store.snapshot(r, refs.RUNS)
    index = store.index_of(r, snap.entries[head])
    assert index is not None
    for rid in tables:
        remembered = store.run_table(r, snap, head, rid)
        blob = r.fanout_file(index.store, f"{rid[-2:]}/{rid}")
        assert blob is not None
        decoded = codec.decode_doc(r.blob(blob))[rid]
        assert blob in store._written  # remembered, not parsed
        assert repr(remembered) == repr(decoded)  # repr: nan == nan, lists not tuples
        assert decoded["status"] == "finished"
        assert remembered is not store.run_table(r, snap, head, rid)  # a fresh copy each time
