from __future__ import annotations

import math
import tomllib
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from gitmlm.errors import MlmError
from gitmlm.stats.profile import (
    CategoricalColumn,
    NumericColumn,
    Profile,
    build_profile,
    merge_profiles,
    read_frames,
)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(5, 2, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.poisson(3, n),
            "amount": rng.lognormal(0, 1, n),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.random(n) < 0.3,
        }
    )


def _roundtrip(p: Profile) -> Profile:
    return Profile.from_dict(tomllib.loads(tomli_w.dumps(p.to_dict())))


def test_numeric_column_basics() -> None:
    df = pd.DataFrame({"v": [1.0, 2.0, 3.0, np.nan, np.inf, -np.inf, 4.0]})
    c = build_profile(df).columns["v"]
    assert isinstance(c, NumericColumn)
    assert (c.count, c.nulls, c.posinf, c.neginf, c.finite) == (7, 1, 1, 1, 4)
    assert (c.min, c.max, c.mean) == (1.0, 4.0, 2.5)
    assert c.m2 == pytest.approx(5.0)
    assert sum(c.counts) + c.under + c.over == 4
    assert c.quantiles[49] == pytest.approx(2.5)  # the median


def test_edges_are_frozen_from_the_first_chunk_and_count_everything() -> None:
    first = pd.DataFrame({"v": np.arange(100.0)})
    later = pd.DataFrame({"v": [-5.0, 50.0, 500.0]})
    c = build_profile([first, later]).columns["v"]
    assert isinstance(c, NumericColumn)
    assert c.edges[0] == 0 and c.edges[-1] == 99
    assert (c.under, c.over, sum(c.counts)) == (1, 1, 101)
    assert (c.min, c.max) == (-5.0, 500.0)


def test_serving_profile_reuses_reference_edges_and_keys() -> None:
    ref = build_profile(_frame(5_000, seed=1))
    cur = build_profile(_frame(3_000, seed=2), reference=ref)
    for name in ("x", "count", "amount"):
        r, c = ref.columns[name], cur.columns[name]
        assert isinstance(r, NumericColumn) and isinstance(c, NumericColumn)
        assert c.edges == r.edges
        assert c.outside is not None
    city = cur.columns["city"]
    assert isinstance(city, CategoricalColumn)
    assert city.unseen == 0
    assert cur.reference == ref.digest()


def test_merging_chunk_profiles_equals_the_whole() -> None:
    df = _frame(200_000)
    chunks = [df.iloc[i : i + 50_000] for i in range(0, len(df), 50_000)]
    first = build_profile(chunks[0])
    parts = [first, *(build_profile(c, reference=first) for c in chunks[1:])]
    merged = reduce(merge_profiles, parts)
    whole = build_profile(chunks)
    assert merged.rows == whole.rows == 200_000
    assert list(merged.columns) == list(whole.columns)
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert type(m) is type(w)
        if isinstance(w, NumericColumn) and isinstance(m, NumericColumn):
            exact = ("count", "nulls", "nan", "posinf", "neginf", "min", "max")
            assert [getattr(m, k) for k in exact] == [getattr(w, k) for k in exact]
            assert (m.edges, m.counts, m.under, m.over) == (w.edges, w.counts, w.under, w.over)
            assert m.mean == pytest.approx(w.mean, rel=1e-9)
            assert m.m2 == pytest.approx(w.m2, rel=1e-9)
            # Quantiles of a merge are approximate: each within 1% of rank of the true one.
            data = np.sort(df[name].dropna().to_numpy(dtype=float))
            below = np.searchsorted(data, m.quantiles, side="left") / data.size
            upto = np.searchsorted(data, m.quantiles, side="right") / data.size
            probs = np.arange(1, 100) / 100
            assert np.all(below <= probs + 0.01) and np.all(upto >= probs - 0.01), name
        else:
            assert m == w


def test_merging_truncated_categories_keeps_totals_and_estimates_distinct() -> None:
    rng = np.random.default_rng(0)
    ids = [f"id{i}" for i in rng.integers(0, 5_000, 40_000)]
    a = build_profile(pd.DataFrame({"id": ids[:20_000]}))
    b = build_profile(pd.DataFrame({"id": ids[20_000:]}))
    m = merge_profiles(a, b).columns["id"]
    assert isinstance(m, CategoricalColumn)
    assert m.count == 40_000 and m.nonnull == sum(m.top.values()) + m.other
    assert len(m.top) == 20 and m.hll is not None
    assert m.distinct == pytest.approx(len(set(ids)), rel=0.15)


def test_merging_serving_profiles_keeps_reference_relative_counts() -> None:
    ref = build_profile(pd.DataFrame({"v": np.arange(100.0), "c": ["a", "b"] * 50}))
    day1 = build_profile(pd.DataFrame({"v": [-1.0, 5.0], "c": ["a", "new"]}), reference=ref)
    day2 = build_profile(pd.DataFrame({"v": [500.0, 6.0], "c": ["new", "other"]}), reference=ref)
    both = merge_profiles(day1, day2)
    v, c = both.columns["v"], both.columns["c"]
    assert isinstance(v, NumericColumn) and isinstance(c, CategoricalColumn)
    assert both.reference == ref.digest()
    assert (v.outside, v.under, v.over) == (2, 1, 1)
    assert (c.unseen, c.top) == (3, {"new": 2, "a": 1, "other": 1})


def test_merge_refuses_different_edges() -> None:
    a = build_profile(pd.DataFrame({"v": np.arange(100.0)}))
    b = build_profile(pd.DataFrame({"v": np.arange(100.0) * 2}))
    with pytest.raises(MlmError, match="different bin edges"):
        merge_profiles(a, b)


def test_toml_roundtrip_and_size() -> None:
    df = _frame(50_000)
    df["x"] = df["x"].where(df.index % 1000 != 7, np.inf)
    df["empty"] = np.nan
    df["note"] = pd.Series([None] * len(df), dtype=object)
    df["user"] = [f"user-{i % 3000}" for i in range(len(df))]
    p = build_profile(df, top_k=20)
    text = tomli_w.dumps(p.to_dict())
    back = Profile.from_dict(tomllib.loads(text))
    assert tomli_w.dumps(back.to_dict()) == text
    empty = back.columns["empty"]
    assert isinstance(empty, NumericColumn) and math.isnan(empty.min)
    assert empty.nulls == empty.count == 50_000
    for name, col in p.to_dict()["columns"].items():
        size = len(tomli_w.dumps({"columns": {name: col}}).encode())
        assert size <= 2048, (name, size)


def test_values_can_be_hashed_or_suppressed() -> None:
    df = pd.DataFrame({"email": ["a@x.org"] * 5 + ["b@x.org"] * 3 + ["rare@x.org"]})
    hashed = build_profile(df, hash_values=True).columns["email"]
    assert isinstance(hashed, CategoricalColumn)
    assert hashed.hashed and all(len(k) == 12 and "@" not in k for k in hashed.top)
    suppressed = build_profile(df, min_count=2).columns["email"]
    assert isinstance(suppressed, CategoricalColumn)
    assert suppressed.top == {"a@x.org": 5, "b@x.org": 3}
    assert suppressed.other == 1 and suppressed.distinct == 3
    # A serving profile keys values the way its reference did.
    serving = build_profile(df, reference=build_profile(df, hash_values=True)).columns["email"]
    assert isinstance(serving, CategoricalColumn)
    assert serving.hashed and serving.top == hashed.top and serving.unseen == 0


def test_kinds_and_text_in_a_numeric_column() -> None:
    p = build_profile(
        [
            pd.DataFrame({"n": pd.Series([1, 2.5, None], dtype=object), "t": ["a", "b", None]}),
            pd.DataFrame({"n": ["3", "oops", None], "t": ["c", "d", "e"]}),
        ]
    )
    n, t = p.columns["n"], p.columns["t"]
    assert isinstance(n, NumericColumn) and isinstance(t, CategoricalColumn)
    assert (n.count, n.nulls, n.invalid, n.finite) == (6, 2, 1, 3)
    assert (t.nulls, t.distinct) == (1, 5)


def test_columns_missing_from_some_chunks_count_as_missing() -> None:
    p = build_profile([pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"b": ["x"]})])
    a, b = p.columns["a"], p.columns["b"]
    assert (a.count, a.nulls, b.count, b.nulls) == (3, 1, 3, 2)


def test_empty_data_is_an_error() -> None:
    with pytest.raises(MlmError, match="no rows"):
        build_profile([])
    with pytest.raises(MlmError, match="no rows"):
        build_profile(pd.DataFrame({"a": pd.Series([], dtype=float)}))


def test_read_frames_csv_and_parquet(tmp_path: Path) -> None:
    df = _frame(30_000)
    csv = tmp_path / "data.csv"
    parquet = tmp_path / "data.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(parquet, row_group_size=7_000)
    expected = build_profile(df)
    for path in (csv, parquet):
        frames = list(read_frames(path, chunk_rows=10_000))
        assert sum(len(f) for f in frames) == 30_000
        assert len(frames) >= 3
        got = build_profile(frames, reference=expected)
        for name in ("x", "count", "amount"):
            g, e = got.columns[name], expected.columns[name]
            assert isinstance(g, NumericColumn) and isinstance(e, NumericColumn)
            assert (g.counts, g.nulls) == (e.counts, e.nulls), (path, name)
        city = got.columns["city"]
        assert isinstance(city, CategoricalColumn)
        assert city.top == expected.columns["city"].top  # type: ignore[union-attr]
    only = list(read_frames(parquet, columns=["city", "x"]))
    assert list(only[0].columns) == ["city", "x"]
    assert list(next(read_frames(csv, columns=["city", "x"])).columns) == ["city", "x"]


def test_read_frames_sniffs_parquet_and_widens_csv_types(tmp_path: Path) -> None:
    misnamed = tmp_path / "data.csv"
    pd.DataFrame({"a": [1, 2]}).to_parquet(misnamed)
    assert list(pd.concat(read_frames(misnamed))["a"]) == [1, 2]
    # Integers for a whole block, then a float and text: re-read with the column widened.
    lines = ["a,b"] + [f"{i},x" for i in range(50_000)] + ["2.5,y", "oops,z"]
    typed = tmp_path / "typed.csv"
    typed.write_text("\n".join(lines) + "\n")
    frames = list(read_frames(typed, chunk_rows=1_000))
    assert sum(len(f) for f in frames) == 50_002
    a = build_profile(frames).columns["a"]
    assert isinstance(a, NumericColumn)
    assert (a.finite, a.invalid, a.max) == (50_001, 1, 49_999.0)


def test_read_frames_csv_with_quoted_newlines(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "n": np.arange(20_000),
            "text": [
                f'line {i}\nnext, "quoted"' if v else "plain"
                for i, v in enumerate(rng.random(20_000) < 0.3)
            ],
        }
    )
    path = tmp_path / "quoted.csv"
    df.to_csv(path, index=False)
    frames = list(read_frames(path, chunk_rows=1_000))
    assert all(len(f) == 1_000 for f in frames)
    back = pd.concat(frames, ignore_index=True)
    assert back["n"].tolist() == df["n"].tolist()
    assert back["text"].tolist() == df["text"].tolist()


def test_read_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(MlmError, match="no such file"):
        read_frames(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(MlmError, match="empty"):
        read_frames(empty)
    fake = tmp_path / "fake.parquet"
    fake.write_text("a,b\n1,2\n")
    with pytest.raises(MlmError, match="not a Parquet file"):
        read_frames(fake)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,b\n\xff\xfe\x00\x81,\x9c\n" * 10)
    with pytest.raises(MlmError, match="cannot read CSV"):
        list(read_frames(binary))
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    with pytest.raises(MlmError, match="no column 'c'"):
        read_frames(good, columns=["c"])


def test_a_text_time_column_of_a_csv_is_profiled_as_text_like_pandas_reads_it(
    tmp_path: Path,
) -> None:
    # pyarrow would read these as timestamps (numeric, in epoch seconds); the training script's
    # pd.read_csv keeps them as text, and the two profiles of one file must agree on the kind.
    csv = tmp_path / "serving.csv"
    csv.write_text(
        "ts,day,v\n"
        + "".join(f"2026-01-{d:02} 10:00:00,2026-01-{d:02},{d}\n" for d in range(1, 29))
    )
    from_file = build_profile(list(read_frames(csv, chunk_rows=10)))
    from_pandas = build_profile(pd.read_csv(csv))
    for column in ("ts", "day"):
        assert from_file.columns[column].kind == "categorical"
        assert from_pandas.columns[column].kind == "categorical"
    assert from_file.columns["v"].kind == "numeric"
