"""Data profiles: small, readable, mergeable summaries of a table, one entry per column.

A *training* profile (no ``reference``) freezes each numeric column's bin edges at the quantiles of
the first chunk that has values in it, then counts every chunk on those edges, so a file larger
than memory is profiled in one pass. A *serving* profile (``reference=``) reuses the reference's
edges and category keys, so its counts line up with the reference bin for bin and
``gitmlm.stats.drift.compare`` can be exact. Files are read in chunks by
``gitmlm.stats.frames.read_frames`` (re-exported here); the summary arithmetic (quantiles,
edges, moments, HyperLogLog) is in ``gitmlm.stats.sketch``.

Stored form (``Profile.to_dict``, schema 1) is plain TOML-safe data::

    schema = 1
    rows = 200000            # rows profiled
    top_k = 20               # categories kept per column
    min_count = 0            # rarer categories are folded into `other`
    reference = "3f2a…"      # serving profiles only: digest of the reference profile

    [columns.age]            # numeric
    kind, dtype, count (rows incl. missing), nulls, nan, posinf, neginf, invalid (non-numbers),
    min, max, mean, m2 (exact; m2 = sum of squared deviations), std (derived, for reading),
    edges (bin edges exactly as used for counting), counts (len(edges) - 1), under, over,
    quantiles (percentiles 1..99, empty when the column has no finite values),
    outside (serving only: finite values outside the reference's [min, max])

    [columns.city]           # categorical
    kind, dtype, count, nulls, distinct, other, hashed,
    unseen (serving only: values not among the reference's stored keys),
    hll (only when `top` is incomplete: a HyperLogLog sketch for merging distinct counts),
    [columns.city.top]       # key = count, most frequent first

Missing values: pandas reads NaN as missing in most dtypes, so NaNs usually count in `nulls`;
`nan` counts only NaNs that a dtype keeps apart from missing. Numeric columns are never hashed.

Numbers meant for reading (edges, quantiles) are rounded to four significant digits, or to three
of the column's spread (p99 - p1) where that is finer, so prices around 1000 keep the resolution
drift detection needs while diffs stay short; integral values are written as TOML integers. Edges
are stored exactly as used for counting (they are rounded before counting). A column takes about
1-2 KB of TOML (tomli_w puts each array item on its own line); a column whose magnitude dwarfs its
spread, such as datetimes as epoch seconds, can take up to about 2.5 KB.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from gitmlm.errors import MlmError
from gitmlm.stats import sketch
from gitmlm.stats.frames import read_frames as read_frames
from gitmlm.stats.sketch import HLL_BITS as HLL_BITS
from gitmlm.stats.sketch import N_BINS as N_BINS

SCHEMA = 1
# Distinct categories counted exactly while building; past this the rarest half is folded into
# `other` (their later counts restart from zero, so a kept count may be low by the pruned mass).
MAX_EXACT = 100_000
LONG_VALUE = 40  # longer category values are stored as a prefix plus a short digest

FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# The stored form


@dataclass
class NumericColumn:
    """Profile of one numeric column (see the module docstring for the meaning of each field)."""

    kind: ClassVar[str] = "numeric"
    dtype: str
    count: int = 0
    nulls: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    invalid: int = 0
    min: float = math.nan
    max: float = math.nan
    mean: float = math.nan
    m2: float = 0.0
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    under: int = 0
    over: int = 0
    quantiles: list[float] = field(default_factory=list)  # p1..p99, empty without finite values
    outside: int | None = None

    @property
    def finite(self) -> int:
        return self.count - self.nulls - self.nan - self.posinf - self.neginf - self.invalid

    @property
    def missing(self) -> int:
        """Values a model cannot use as numbers: nulls, NaN and text in a numeric column."""
        return self.nulls + self.nan + self.invalid

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.finite) if self.finite > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "invalid": self.invalid,
            "min": _num(self.min),
            "max": _num(self.max),
            "mean": self.mean,
            "m2": self.m2,
            "std": _num(sketch.sig(self.std, 7)),
            "edges": [_num(e) for e in self.edges],
            "counts": list(self.counts),
            "under": self.under,
            "over": self.over,
            "quantiles": [_num(q) for q in self.quantiles],
        }
        if self.outside is not None:
            d["outside"] = self.outside
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericColumn:
        return cls(
            dtype=_get(d, "dtype", str),
            count=_get(d, "count", int),
            nulls=_get(d, "nulls", int),
            nan=_get(d, "nan", int),
            posinf=_get(d, "posinf", int),
            neginf=_get(d, "neginf", int),
            invalid=_get(d, "invalid", int),
            min=_getf(d, "min"),
            max=_getf(d, "max"),
            mean=_getf(d, "mean"),
            m2=_getf(d, "m2"),
            edges=[float(x) for x in _get(d, "edges", list)],
            counts=[int(x) for x in _get(d, "counts", list)],
            under=_get(d, "under", int),
            over=_get(d, "over", int),
            quantiles=[float(x) for x in _get(d, "quantiles", list)],
            outside=_get(d, "outside", int) if "outside" in d else None,
        )


@dataclass
class CategoricalColumn:
    """Profile of one categorical column: exact top values, the rest summed into `other`."""

    kind: ClassVar[str] = "categorical"
    dtype: str
    count: int = 0
    nulls: int = 0
    top: dict[str, int] = field(default_factory=dict)  # most frequent first
    other: int = 0
    distinct: int = 0
    hashed: bool = False
    hll: str | None = None  # base64 HyperLogLog registers, stored only when `top` is incomplete
    unseen: int | None = None

    @property
    def nonnull(self) -> int:
        return self.count - self.nulls

    @property
    def missing(self) -> int:
        return self.nulls

    @property
    def complete(self) -> bool:
        """True when `top` lists every value seen, so absence from it means never seen."""
        return self.other == 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct,
            "other": self.other,
            "hashed": self.hashed,
        }
        if self.unseen is not None:
            d["unseen"] = self.unseen
        if self.hll is not None:
            d["hll"] = self.hll
        d["top"] = dict(self.top)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalColumn:
        top = _get(d, "top", dict)
        return cls(
            dtype=_get(d, "dtype", str),
            count=_get(d, "count", int),
            nulls=_get(d, "nulls", int),
            top={str(k): int(v) for k, v in top.items()},
            other=_get(d, "other", int),
            distinct=_get(d, "distinct", int),
            hashed=_get(d, "hashed", bool),
            hll=_get(d, "hll", str) if "hll" in d else None,
            unseen=_get(d, "unseen", int) if "unseen" in d else None,
        )


Column = NumericColumn | CategoricalColumn


@dataclass
class Profile:
    """A table's profile: row count, build settings and one entry per column, in file order."""

    rows: int
    columns: dict[str, Column]
    top_k: int = 20
    min_count: int = 0
    reference: str | None = None  # digest of the reference a serving profile was built against

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "rows": self.rows,
            "top_k": self.top_k,
            "min_count": self.min_count,
        }
        if self.reference is not None:
            d["reference"] = self.reference
        d["columns"] = {name: col.to_dict() for name, col in self.columns.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        schema = d.get("schema")
        if schema != SCHEMA:
            raise MlmError(f"profile schema {schema!r} is not supported (expected {SCHEMA})")
        columns: dict[str, Column] = {}
        for name, cd in _get(d, "columns", dict).items():
            if not isinstance(cd, Mapping):
                raise MlmError(f"profile column {name!r} is not a table")
            kind = cd.get("kind")
            if kind == NumericColumn.kind:
                columns[name] = NumericColumn.from_dict(cd)
            elif kind == CategoricalColumn.kind:
                columns[name] = CategoricalColumn.from_dict(cd)
            else:
                raise MlmError(f"profile column {name!r} has unknown kind {kind!r}")
        return cls(
            rows=_get(d, "rows", int),
            columns=columns,
            top_k=_get(d, "top_k", int),
            min_count=_get(d, "min_count", int),
            reference=_get(d, "reference", str) if "reference" in d else None,
        )

    def digest(self) -> str:
        """A short content id; serving profiles record their reference's to detect mismatches."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _get(d: Mapping[str, Any], key: str, typ: type[Any]) -> Any:
    if key not in d:
        raise MlmError(f"profile is malformed: missing {key!r}")
    value = d[key]
    # bool is an int in Python; a count must not silently accept `true`.
    if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
        raise MlmError(f"profile is malformed: {key!r} should be {typ.__name__}")
    return value


def _getf(d: Mapping[str, Any], key: str) -> float:
    if isinstance(d.get(key), int) and not isinstance(d.get(key), bool):
        return float(d[key])
    return float(_get(d, key, float))


def _num(x: float) -> float | int:
    # `3` reads better than `3.0` in a diff and is shorter; from_dict turns it back into a float.
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


# ---------------------------------------------------------------------------------------------
# Building


def _natural_kind(s: pd.Series[Any]) -> str | None:
    """'numeric', 'categorical', or None while the column holds only missing values.

    An all-missing chunk says nothing about the kind (a float column of NaN may be a category
    column nobody filled), so the decision waits for values, or for the reference.
    """
    if not s.notna().any():
        return None
    return _dtype_kind(s) or CategoricalColumn.kind


def _dtype_kind(s: pd.Series[Any]) -> str | None:
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CategoricalColumn.kind
    if isinstance(dtype, pd.CategoricalDtype):
        return CategoricalColumn.kind
    if (
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    ):
        return NumericColumn.kind
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred == "empty":
        return None
    if inferred in {"integer", "floating", "mixed-integer-float", "decimal"}:
        return NumericColumn.kind
    return CategoricalColumn.kind


def _as_float(s: pd.Series[Any]) -> tuple[FloatArray, int, int]:
    """(values as float64 with NaN for missing, nulls, invalid): datetimes become epoch seconds."""
    nulls = int(s.isna().sum())
    dtype = s.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        if isinstance(dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert(None)
        unit = (
            "datetime64[ns]" if pd.api.types.is_datetime64_any_dtype(dtype) else "timedelta64[ns]"
        )
        raw = s.to_numpy(dtype=unit).view(np.int64)
        values = raw.astype(np.float64) / 1e9
        values[s.isna().to_numpy()] = np.nan
        return values, nulls, 0
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan), nulls, 0
    # Text (or booleans) in a column profiled as numeric: what parses counts, the rest is invalid.
    coerced = pd.to_numeric(s.astype(object), errors="coerce")
    values = np.asarray(coerced, dtype=np.float64)
    invalid = int(np.isnan(values).sum()) - nulls
    return values, nulls, max(invalid, 0)


class _NumericBuilder:
    def __init__(
        self, dtype: str, edges: list[float] | None, ref_range: tuple[float, float] | None
    ):
        self.col = NumericColumn(dtype=dtype)
        self.integer = dtype.lower().startswith(("int", "uint"))
        self.edges: FloatArray | None = None if edges is None else np.array(edges)
        self.counts = np.zeros(0 if edges is None else len(edges) - 1, dtype=np.int64)
        # Per chunk, folded in order only at the end: partial profiles of partitions then merge
        # into exactly the floats one pass over the same chunks gives.
        self.moments: list[tuple[int, float, float]] = []
        self.parts: list[tuple[int, FloatArray]] = []
        self.ref_range = ref_range
        if ref_range is not None:
            self.col.outside = 0

    def add(self, s: pd.Series[Any]) -> None:
        c = self.col
        values, nulls, invalid = _as_float(s)
        c.count += values.size
        c.nulls += nulls
        c.invalid += invalid
        n_nan = int(np.isnan(values).sum())
        c.nan += n_nan - nulls - invalid
        finite_mask = np.isfinite(values)
        n_finite = int(finite_mask.sum())
        if n_finite + n_nan < values.size:
            c.posinf += int((values == np.inf).sum())
            c.neginf += int((values == -np.inf).sum())
        if n_finite == 0:
            return
        x = np.sort(values[finite_mask] if n_finite < values.size else values)
        if self.edges is None:
            self.set_edges(np.array(sketch.choose_edges(x, self.integer)))
        assert self.edges is not None
        counts, under, over = sketch.bin_counts(x, self.edges)
        self.counts += np.array(counts, dtype=np.int64)
        c.under += under
        c.over += over
        mean = float(np.mean(x))
        self.moments.append((x.size, mean, float(np.sum(np.square(x - mean)))))
        self.parts.append((x.size, sketch.quantiles_sorted(x, sketch.QGRID)))
        if self.ref_range is not None and c.outside is not None:
            lo, hi = self.ref_range
            below = int(np.searchsorted(x, lo, side="left"))
            above = x.size - int(np.searchsorted(x, hi, side="right"))
            c.outside += below + above

    def set_edges(self, edges: FloatArray) -> None:
        self.edges = edges
        self.counts = np.zeros(edges.size - 1, dtype=np.int64)

    def pad(self, rows: int) -> None:
        self.col.count += rows
        self.col.nulls += rows

    def merge(self, b: _NumericBuilder) -> None:
        """Add the builder of the next partition, counted on the same edges (or decided there)."""
        a, c = self.col, b.col
        for f in ("count", "nulls", "nan", "posinf", "neginf", "invalid", "under", "over"):
            setattr(a, f, getattr(a, f) + getattr(c, f))
        if a.outside is not None and c.outside is not None:
            a.outside += c.outside
        if self.edges is None:
            self.edges, self.counts = b.edges, b.counts.copy()
        elif b.edges is not None:
            if not np.array_equal(self.edges, b.edges):
                raise MlmError("partial profiles counted one column on different bin edges")
            self.counts += b.counts
        self.moments.extend(b.moments)
        self.parts.extend(b.parts)

    def finish(self) -> NumericColumn:
        c = self.col
        if self.edges is not None:
            c.edges = [float(e) for e in self.edges]
            c.counts = [int(n) for n in self.counts]
        if self.moments:
            n, mean, m2 = 0, 0.0, 0.0
            for n_b, mean_b, m2_b in self.moments:
                mean, m2 = sketch.merge_moments(n, mean, m2, n_b, mean_b, m2_b)
                n += n_b
            c.mean, c.m2 = mean, m2
            _set_quantiles(c, sketch.merge_points(self.parts))
        return c


def _set_quantiles(c: NumericColumn, points: FloatArray) -> None:
    c.min, c.max = float(points[0]), float(points[-1])
    inner = points[1:-1]
    c.quantiles = sketch.round_values(inner, float(inner[-1] - inner[0]))


def _key(value: str, hashed: bool) -> str:
    if hashed:
        return hashlib.sha256(value.encode()).hexdigest()[:12]
    if len(value) > LONG_VALUE:
        return f"{value[:28]}...{hashlib.sha256(value.encode()).hexdigest()[:8]}"
    return value


def _hll_of(c: CategoricalColumn) -> npt.NDArray[np.uint8]:
    if c.hll is not None:
        return sketch.hll_decode(c.hll)
    registers = np.zeros(1 << HLL_BITS, dtype=np.uint8)
    sketch.hll_update(registers, list(c.top))
    return registers


class _CategoricalBuilder:
    def __init__(self, dtype: str, hashed: bool, required: frozenset[str] | None):
        self.col = CategoricalColumn(dtype=dtype, hashed=hashed)
        self.counts: dict[str, int] = {}
        self.pruned = 0
        self.registers = np.zeros(1 << HLL_BITS, dtype=np.uint8)
        self.required = required

    def add(self, s: pd.Series[Any]) -> None:
        c = self.col
        c.count += len(s)
        c.nulls += int(s.isna().sum())
        vc = s.value_counts(dropna=True, sort=False)
        vc = vc[vc > 0]  # a categorical dtype lists unused categories with zero counts
        keys = [_key(str(v), c.hashed) for v in vc.index]
        counts = self.counts
        for k, n in zip(keys, vc.to_numpy().tolist(), strict=True):
            counts[k] = counts.get(k, 0) + int(n)
        sketch.hll_update(self.registers, keys)
        self._prune()

    def pad(self, rows: int) -> None:
        self.col.count += rows
        self.col.nulls += rows

    def merge(self, b: _CategoricalBuilder) -> None:
        """Add the builder of the next partition: exact while the distinct values stay below
        MAX_EXACT; past it both sides prune as one pass does, so kept counts may be low."""
        self.col.count += b.col.count
        self.col.nulls += b.col.nulls
        counts = self.counts
        for k, n in b.counts.items():
            counts[k] = counts.get(k, 0) + n
        self.pruned += b.pruned
        np.maximum(self.registers, b.registers, out=self.registers)
        self._prune()

    def _prune(self) -> None:
        if len(self.counts) > MAX_EXACT:
            ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
            self.counts = dict(ranked[: MAX_EXACT // 2])
            self.pruned += sum(n for _, n in ranked[MAX_EXACT // 2 :])

    def finish(self, top_k: int, min_count: int) -> CategoricalColumn:
        c = self.col
        required = self.required or frozenset()
        kept: dict[str, int] = {}
        own = 0
        for k, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if k in required:
                kept[k] = n
            elif own < top_k and n >= min_count:
                kept[k] = n
                own += 1
        c.top = kept
        c.other = c.nonnull - sum(kept.values())
        c.distinct = len(self.counts) if not self.pruned else sketch.hll_estimate(self.registers)
        c.hll = sketch.hll_encode(self.registers) if c.other else None
        if self.required is not None:
            c.unseen = sum(n for k, n in self.counts.items() if k not in self.required)
        return c


class _Pending:
    """A column seen only as missing values so far: its kind waits for a value or the reference."""

    def __init__(self, s: pd.Series[Any], rows: int, hash_values: bool) -> None:
        self.dtype = str(s.dtype)
        self.kind = _dtype_kind(s) or CategoricalColumn.kind  # if it stays empty and unreferenced
        self.rows = rows
        self.hash_values = hash_values

    def add(self, s: pd.Series[Any]) -> None:
        self.rows += len(s)

    def pad(self, rows: int) -> None:
        self.rows += rows


_Builder = _NumericBuilder | _CategoricalBuilder | _Pending


def _new_builder(kind: str, dtype: str, ref: Column | None, hash_values: bool) -> _Builder:
    if kind == NumericColumn.kind:
        if isinstance(ref, NumericColumn):
            has_range = ref.finite > 0
            rng = (ref.min, ref.max) if has_range else None
            return _NumericBuilder(dtype, ref.edges or None, rng)
        return _NumericBuilder(dtype, None, None)
    if isinstance(ref, CategoricalColumn):
        return _CategoricalBuilder(dtype, ref.hashed, frozenset(ref.top))
    return _CategoricalBuilder(dtype, hash_values, None)


def build_profile(
    frames: Iterable[pd.DataFrame] | pd.DataFrame,
    *,
    reference: Profile | None = None,
    top_k: int = 20,
    hash_values: bool = False,
    min_count: int = 0,
) -> Profile:
    """Profile a dataset given as chunks; with `reference`, a serving profile on its bins and keys.

    A column's kind comes from the first chunk where it has values (numbers, datetimes →
    numeric; text, booleans, categories → categorical); later chunks are read as that kind, and
    text that does not parse in a numeric column is counted as `invalid`. With a reference, a
    column keeps the reference's hashing choice; one whose kind changed gets its own bins, which
    `compare` reports as schema skew.
    """
    check_options(top_k, min_count)
    partial = partial_profile(frames, reference=reference, hash_values=hash_values)
    return finish_profile(partial, reference=reference, top_k=top_k, min_count=min_count)


def check_options(top_k: int, min_count: int) -> None:
    if top_k < 1:
        raise MlmError("top_k must be at least 1")
    if min_count < 0:
        raise MlmError("min_count must not be negative")


# ---------------------------------------------------------------------------------------------
# Partial profiles: one partition's builders, merged in order into exactly one pass's profile


@dataclass(frozen=True)
class Seed:
    """How a decided column is read from its first values on: kind, the dtype it was decided
    with, and (numeric) the bin edges frozen on its first finite values, None until then."""

    kind: str
    dtype: str
    edges: tuple[float, ...] | None = None

    def to_list(self) -> list[Any]:
        return [self.kind, self.dtype, None if self.edges is None else list(self.edges)]

    @classmethod
    def from_list(cls, v: list[Any]) -> Seed:
        return cls(str(v[0]), str(v[1]), None if v[2] is None else tuple(float(e) for e in v[2]))


Seeds = dict[str, Seed]


@dataclass
class Partial:
    """What chunks of a dataset contribute to its profile, before finishing: the column builders
    (every count, the per-chunk moments and quantile summaries) and the seeds it was given.

    `partial_profile` of the partitions of a dataset, each given the seeds the partitions before
    it decided (`fits_after`), merged in order (`merge_partial`) and finished, is the profile a
    single pass over the same chunks builds: the same bins and counts, the same floats.
    """

    rows: int = 0
    builders: dict[str, _Builder] = field(default_factory=dict)
    given: Seeds = field(default_factory=dict)

    def seeds(self) -> Seeds:
        return {name: s for name, b in self.builders.items() if (s := _seed(b)) is not None}

    def fits_after(self, before: Seeds) -> bool:
        """True when every column this partition decided was decided as the partitions before
        it (whose seeds are `before`) require: the given seed is theirs, or none when they left
        the column undecided."""
        return all(self.given.get(n) == before.get(n) for n in self.seeds())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "given": {n: s.to_list() for n, s in self.given.items()},
            "columns": [[n, _state(b)] for n, b in self.builders.items()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Partial:
        return cls(
            rows=int(d["rows"]),
            builders={str(n): _from_state(st) for n, st in d["columns"]},
            given={str(n): Seed.from_list(v) for n, v in d["given"].items()},
        )


def advance(before: Seeds, part: Partial) -> Seeds:
    """The seeds after `part`, given those before it (when `part.fits_after(before)`)."""
    return {**before, **part.seeds()}


def partial_profile(
    frames: Iterable[pd.DataFrame] | pd.DataFrame,
    *,
    seeds: Seeds | None = None,
    reference: Profile | None = None,
    hash_values: bool = False,
) -> Partial:
    """The builders of `frames` (one partition of a dataset), its columns decided by `seeds`."""
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    seeds = dict(seeds or {})
    ref_cols: Mapping[str, Column] = reference.columns if reference is not None else {}
    part = Partial(given=seeds)
    builders = part.builders
    for frame in frames:
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise MlmError(f"duplicate column names: {', '.join(dups)}")
        for name, (_, s) in zip(names, frame.items(), strict=True):
            b = builders.get(name)
            if b is None:
                seed = seeds.get(name)
                if seed is not None:
                    b = _seeded(seed, ref_cols.get(name), hash_values)
                else:
                    b = _Pending(s, 0, hash_values)
                # A column first seen after `rows` rows was missing in them.
                b.pad(part.rows)
                builders[name] = b
            if isinstance(b, _Pending):
                kind = _natural_kind(s)
                if kind is None:
                    b.add(s)
                    continue
                nb = _new_builder(kind, str(s.dtype), ref_cols.get(name), hash_values)
                nb.pad(b.rows)
                b = builders[name] = nb
            b.add(s)
        absent = builders.keys() - set(names)
        for name in absent:
            builders[name].pad(len(frame))
        part.rows += len(frame)
    return part


def merge_partial(acc: Partial, part: Partial) -> None:
    """Add `part`, the partition after those in `acc`, to `acc` (in place)."""
    for name in acc.builders.keys() - part.builders.keys():
        acc.builders[name].pad(part.rows)
    for name, b in part.builders.items():
        a = acc.builders.get(name)
        if a is None:
            b.pad(acc.rows)
            acc.builders[name] = b
        elif isinstance(b, _Pending):
            a.pad(b.rows)  # only missing values in `part`
        elif isinstance(a, _Pending):
            b.pad(a.rows)  # `part` decided the column on its first values, as one pass does
            acc.builders[name] = b
        elif isinstance(a, _NumericBuilder) and isinstance(b, _NumericBuilder):
            a.merge(b)  # (apart from the next branch so that each merge is typed)
        elif isinstance(a, _CategoricalBuilder) and isinstance(b, _CategoricalBuilder):
            a.merge(b)
        else:
            raise MlmError(f"partial profiles disagree on the kind of column {name!r}")
    acc.rows += part.rows


def finish_profile(
    part: Partial, *, reference: Profile | None = None, top_k: int = 20, min_count: int = 0
) -> Profile:
    """The profile of everything `part` holds."""
    check_options(top_k, min_count)
    if part.rows == 0:
        raise MlmError("no rows to profile: the data is empty")
    ref_cols: Mapping[str, Column] = reference.columns if reference is not None else {}
    columns: dict[str, Column] = {}
    for name, b in part.builders.items():
        if isinstance(b, _Pending):
            ref = ref_cols.get(name)
            kind = ref.kind if ref is not None else b.kind
            nb = _new_builder(kind, b.dtype, ref, b.hash_values)
            nb.pad(b.rows)
            b = nb
        if isinstance(b, _NumericBuilder):
            columns[name] = b.finish()
        elif isinstance(b, _CategoricalBuilder):
            columns[name] = b.finish(top_k, min_count)
    return Profile(
        rows=part.rows,
        columns=columns,
        top_k=top_k,
        min_count=min_count,
        reference=reference.digest() if reference is not None else None,
    )


def _seed(b: _Builder) -> Seed | None:
    if isinstance(b, _NumericBuilder):
        edges = None if b.edges is None else tuple(float(e) for e in b.edges)
        return Seed(NumericColumn.kind, b.col.dtype, edges)
    if isinstance(b, _CategoricalBuilder):
        return Seed(CategoricalColumn.kind, b.col.dtype)
    return None


def _seeded(seed: Seed, ref: Column | None, hash_values: bool) -> _Builder:
    b = _new_builder(seed.kind, seed.dtype, ref, hash_values)
    if isinstance(b, _NumericBuilder) and b.edges is None and seed.edges is not None:
        b.set_edges(np.array(seed.edges))
    return b


def _state(b: _Builder) -> dict[str, Any]:
    if isinstance(b, _NumericBuilder):
        return {
            "b": "numeric",
            "col": b.col.to_dict(),
            "edges": None if b.edges is None else [float(e) for e in b.edges],
            "counts": [int(n) for n in b.counts],
            "moments": [list(m) for m in b.moments],
            "parts": [[n, [float(x) for x in pts]] for n, pts in b.parts],
            "range": None if b.ref_range is None else list(b.ref_range),
        }
    if isinstance(b, _CategoricalBuilder):
        return {
            "b": "categorical",
            "col": b.col.to_dict(),
            "counts": b.counts,
            "pruned": b.pruned,
            "hll": sketch.hll_encode(b.registers),
            "required": None if b.required is None else sorted(b.required),
        }
    return {"b": "pending", "dtype": b.dtype, "kind": b.kind, "rows": b.rows, "hash": b.hash_values}


def _from_state(st: Mapping[str, Any]) -> _Builder:
    if st["b"] == "numeric":
        col = NumericColumn.from_dict(st["col"])
        rng = st["range"]
        nb = _NumericBuilder(col.dtype, st["edges"], None if rng is None else (rng[0], rng[1]))
        nb.col = col
        nb.counts = np.array(st["counts"], dtype=np.int64)
        nb.moments = [(int(n), float(m), float(m2)) for n, m, m2 in st["moments"]]
        nb.parts = [(int(n), np.array(pts, dtype=np.float64)) for n, pts in st["parts"]]
        return nb
    if st["b"] == "categorical":
        cat = CategoricalColumn.from_dict(st["col"])
        req = st["required"]
        cb = _CategoricalBuilder(cat.dtype, cat.hashed, None if req is None else frozenset(req))
        cb.col = cat
        cb.counts = {str(k): int(n) for k, n in st["counts"].items()}
        cb.pruned = int(st["pruned"])
        cb.registers = sketch.hll_decode(st["hll"])
        return cb
    pb = _Pending.__new__(_Pending)
    pb.dtype, pb.kind, pb.rows = str(st["dtype"]), str(st["kind"]), int(st["rows"])
    pb.hash_values = bool(st["hash"])
    return pb


# ---------------------------------------------------------------------------------------------
# Merging


def merge_profiles(a: Profile, b: Profile) -> Profile:
    """Combine the profiles of two parts of one dataset (two days of serving logs, say).

    Exact: rows, counts, nulls, min/max, bin counts (both sides must share edges, i.e. be built
    against the same reference or chunk), categorical counts of values both sides list. Mean and
    m2 are exact to float rounding. A value listed on one side only may have been hidden in the
    other side's `other`, so its merged count can be low by at most that side's smallest listed
    count; the distinct count is exact when both lists are complete and a HyperLogLog union
    otherwise. Quantiles are combined as in `sketch.merge_points` (rank error ≤ about 1%).
    """
    columns: dict[str, Column] = {}
    same_ref = a.reference == b.reference
    top_k = max(a.top_k, b.top_k)
    for name in [*a.columns, *(n for n in b.columns if n not in a.columns)]:
        ca = a.columns.get(name)
        cb = b.columns.get(name)
        if ca is None or cb is None:
            present = ca if ca is not None else cb
            assert present is not None
            columns[name] = _pad_column(present, b.rows if ca is not None else a.rows)
            continue
        if isinstance(ca, NumericColumn) and isinstance(cb, NumericColumn):
            columns[name] = _merge_numeric(name, ca, cb, same_ref)
        elif isinstance(ca, CategoricalColumn) and isinstance(cb, CategoricalColumn):
            columns[name] = _merge_categorical(name, ca, cb, same_ref, top_k)
        else:
            raise MlmError(
                f"cannot merge profiles: column {name!r} is {ca.kind} in one and {cb.kind} in "
                "the other"
            )
    return Profile(
        rows=a.rows + b.rows,
        columns=columns,
        top_k=top_k,
        min_count=max(a.min_count, b.min_count),
        reference=a.reference if same_ref else None,
    )


def _pad_column(c: Column, rows: int) -> Column:
    out: Column
    if isinstance(c, NumericColumn):
        out = NumericColumn.from_dict(c.to_dict())
    else:
        out = CategoricalColumn.from_dict(c.to_dict())
    out.count += rows
    out.nulls += rows
    return out


def _merge_numeric(name: str, a: NumericColumn, b: NumericColumn, same_ref: bool) -> NumericColumn:
    if a.edges and b.edges and a.edges != b.edges:
        raise MlmError(
            f"cannot merge profiles: column {name!r} has different bin edges; build the second "
            "profile with reference= the first"
        )
    edges = a.edges or b.edges
    counts_a = a.counts or [0] * len(b.counts)
    counts_b = b.counts or [0] * len(a.counts)
    out = NumericColumn(
        dtype=a.dtype,
        count=a.count + b.count,
        nulls=a.nulls + b.nulls,
        nan=a.nan + b.nan,
        posinf=a.posinf + b.posinf,
        neginf=a.neginf + b.neginf,
        invalid=a.invalid + b.invalid,
        edges=list(edges),
        counts=[x + y for x, y in zip(counts_a, counts_b, strict=True)],
        under=a.under + b.under,
        over=a.over + b.over,
        outside=a.outside + b.outside
        if same_ref and a.outside is not None and b.outside is not None
        else None,
    )
    if a.finite + b.finite:
        out.mean, out.m2 = sketch.merge_moments(a.finite, a.mean, a.m2, b.finite, b.mean, b.m2)
        _set_quantiles(out, sketch.merge_points([(c.finite, _points(c)) for c in (a, b)]))
    return out


def _points(c: NumericColumn) -> FloatArray:
    if c.finite == 0:
        return np.zeros(0)
    return np.array([c.min, *c.quantiles, c.max], dtype=np.float64)


def _merge_categorical(
    name: str, a: CategoricalColumn, b: CategoricalColumn, same_ref: bool, top_k: int
) -> CategoricalColumn:
    if a.hashed != b.hashed:
        raise MlmError(f"cannot merge profiles: column {name!r} is hashed in one and not the other")
    counts = dict(a.top)
    for k, n in b.top.items():
        counts[k] = counts.get(k, 0) + n
    keep = max(top_k, len(a.top), len(b.top))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    out = CategoricalColumn(
        dtype=a.dtype,
        count=a.count + b.count,
        nulls=a.nulls + b.nulls,
        top=dict(ranked),
        hashed=a.hashed,
        unseen=a.unseen + b.unseen
        if same_ref and a.unseen is not None and b.unseen is not None
        else None,
    )
    out.other = out.nonnull - sum(out.top.values())
    if a.complete and b.complete:
        out.distinct = len(counts)
        registers = None
    else:
        registers = np.maximum(_hll_of(a), _hll_of(b))
        out.distinct = max(sketch.hll_estimate(registers), len(counts))
    if out.other:
        if registers is None:
            registers = np.maximum(_hll_of(a), _hll_of(b))
        out.hll = sketch.hll_encode(registers)
    return out
