from __future__ import annotations

import itertools
import random
from typing import Any

from gitmlm.core import codec
from gitmlm.core.codec import assemble, concatenate, sections
from gitmlm.sync.merge import changed_runs, merge_docs, merge_run


def run(status: str = "finished", updated: str = "2026-01-01T00:00:00.000001Z", **kw: Any) -> dict:
    return {"status": status, "started": "2026-01-01T00:00:00Z", "updated": updated, **kw}


def test_union_of_runs_by_id() -> None:
    ours = {"a": run(name="a"), "b": run(name="b")}
    theirs = {"b": run(name="b"), "c": run(name="c")}
    assert merge_docs(ours, theirs) == {"a": ours["a"], "b": ours["b"], "c": theirs["c"]}


def test_later_updated_wins_field_by_field_and_keeps_the_other_sides_keys() -> None:
    old = run(updated="2026-01-01T00:00:01Z", tags={"team": "a", "late": "x"}, metrics={"acc": 1.0})
    new = run(updated="2026-01-01T00:00:02Z", tags={"team": "b"}, metrics={"loss": 0.5})
    merged = merge_run(old, new)
    assert merged["updated"] == "2026-01-01T00:00:02Z"
    assert merged["tags"] == {"team": "b", "late": "x"}
    assert merged["metrics"] == {"acc": 1.0, "loss": 0.5}
    assert merge_run(new, old) == merged


def test_a_final_status_beats_a_later_running_record() -> None:
    finished = run("finished", updated="2026-01-01T00:00:01Z", exit_code=0)
    running = run("running", updated="2026-01-01T00:00:09Z", tags={"note": "added later"})
    merged = merge_run(running, finished)
    assert merged["status"] == "finished"
    assert merged["exit_code"] == 0
    assert merged["tags"] == {"note": "added later"}


def test_tie_break_is_the_same_from_both_sides() -> None:
    a = run(name="left")
    b = run(name="right")
    assert merge_run(a, b) == merge_run(b, a)
    assert merge_run(a, b)["name"] == "right"  # canonical JSON "right" sorts after "left"


def test_join_laws_for_a_run_edited_in_turn_on_three_machines() -> None:
    versions = [
        run("running", updated="2026-01-01T00:00:01Z", params={"lr": 0.1}),
        run("running", updated="2026-01-01T00:00:02Z", params={"lr": 0.1}, tags={"a": "1"}),
        run("finished", updated="2026-01-01T00:00:03Z", params={"lr": 0.1}, metrics={"m": 2.0}),
    ]
    docs = [{"r": v} for v in versions]
    results = set()
    for order in itertools.permutations(docs):
        acc: dict = {}
        for d in order:
            acc = merge_docs(acc, d)
        results.add(repr(acc))
        assert merge_docs(acc, acc) == acc
    assert len(results) == 1


def test_changed_runs_counts() -> None:
    before = {"a": run(), "b": run()}
    after = {"a": run(), "b": run(name="x"), "c": run()}
    assert changed_runs(before, after) == (1, 1)


def test_splicing_run_blocks_gives_what_encode_doc_writes() -> None:
    rng = random.Random(4)

    def table(n: int) -> dict[str, Any]:
        return run(
            name=f"r{n}",
            command=["python", "train.py", *(["--flag"] * rng.randint(0, 30))],
            params={"lr": rng.random(), "opt": {"name": "adam", "betas": [0.9, 0.99]}},
            metrics={"val acc": rng.random(), "loss": rng.random()},
            tags={"team": "a b", "quote": 'say "hi"'},
            datasets={"train": {"digest": "sha256:00", "files": 3}},
        )

    for _ in range(20):
        ids = sorted({f"01{rng.randrange(10**6):024d}" for _ in range(rng.randint(1, 6))})
        doc = {rid: table(i) for i, rid in enumerate(ids)}
        data = codec.encode_doc(doc)
        blocks = sections(data)
        assert blocks is not None and set(blocks) == set(doc)
        assert assemble(blocks) == data
        half = {rid: blocks[rid] for rid in ids[::2]}
        assert assemble(half) == codec.encode_doc({rid: doc[rid] for rid in ids[::2]})
        cut = len(ids) // 2
        early = codec.encode_doc({rid: doc[rid] for rid in ids[:cut]}) if cut else b""
        late = codec.encode_doc({rid: doc[rid] for rid in ids[cut:]})
        if cut:
            assert concatenate(early, late) == data


def test_sections_refuses_notes_not_laid_out_by_encode_doc() -> None:
    assert sections(b'schema = 1\nruns.01a.name = "x"\n') is None
    assert sections(b'schema = 1\n\n[runs.01a]\nname = "x"\n\n[other]\nx = 1\n') is None
    interleaved = b"schema = 1\n\n[runs.01a]\na = 1\n\n[runs.01b]\nb = 1\n\n[runs.01a.t]\nc = 1\n"
    assert sections(interleaved) is None
    assert sections(b"# hand written\nschema = 1\n\n[runs.01a]\n") is None
    good = b'schema = 1\n\n[runs.01a]\nname = "x"\n'
    assert concatenate(good, b"schema = 1\n\n[runs.01b]\n\n[other]\nx = 1\n") is None
