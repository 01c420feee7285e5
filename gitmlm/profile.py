"""Data profiles: small, readable, mergeable summaries of a table, one entry per column.

A *training* profile (no ``reference``) freezes each numeric column's bin edges at the quantiles of
the first chunk that has values in it, then counts every chunk on those edges, so a file larger
than memory is profiled in one pass. A *serving* profile (``reference=``) reuses the reference's
edges and category keys, so its counts line up with the reference bin for bin and
``gitmlm.drift.compare`` can be exact.

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

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from gitmlm.errors import MlmError

SCHEMA = 1
N_BINS = 20
# Distinct categories counted exactly while building; past this the rarest half is folded into
# `other` (their later counts restart from zero, so a kept count may be low by the pruned mass).
MAX_EXACT = 100_000
LONG_VALUE = 40  # longer category values are stored as a prefix plus a short digest
HLL_BITS = 8  # 256 registers: about 6.5% relative error on the distinct count

FloatArray = npt.NDArray[np.float64]

# Percentile grid of the internal quantile summaries: min, p1..p99, max.
_QGRID: FloatArray = np.concatenate([[0.0], np.arange(1, 100) / 100.0, [1.0]])
# Each interior percentile stands for 1% of the mass, min and max for half a percent each.
_QWEIGHT: FloatArray = np.concatenate([[0.005], np.full(99, 0.01), [0.005]])
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})
# Bytes of CSV parsed per call: enough blocks for pyarrow's threads, little memory.
_CSV_PARSE_BYTES = 8 << 20
_COMPRESSED = frozenset({".gz", ".bz2", ".zst", ".zstd", ".lz4", ".br"})


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
            "std": _num(_sig(self.std, 7)),
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
# Numbers


def _sig(x: float, digits: int) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _decimals(v: float, spread: float) -> int | None:
    """Decimals keeping four significant digits of `v`, or three of `spread` if that is finer.

    The spread term keeps a column of large values with a small spread (prices, epoch times) from
    losing the resolution drift needs; the value term keeps small values of a skewed column (the
    low quantiles of a lognormal) from rounding to zero. None means leave the value as it is.
    """
    d_spread = 2 - math.floor(math.log10(spread)) if math.isfinite(spread) and spread > 0 else None
    d_value = 3 - math.floor(math.log10(abs(v))) if math.isfinite(v) and v != 0 else None
    candidates = [d for d in (d_spread, d_value) if d is not None]
    if not candidates or max(candidates) > 300:
        return None
    return max(candidates)


def _round(values: Iterable[float], spread: float) -> list[float]:
    # Python's round() is correctly rounded, so the stored numbers print short.
    out = []
    for v in values:
        d = _decimals(float(v), spread)
        out.append(float(v) if d is None else round(float(v), d))
    return out


def _round_out(v: float, spread: float, up: bool) -> float:
    """Round `v` away from the data (down for a lower edge, up for an upper one)."""
    d = _decimals(v, spread)
    if d is None:
        return v
    scale = 10.0**d
    return (math.ceil(v * scale) if up else math.floor(v * scale)) / scale


def _quantiles_sorted(x: FloatArray, probs: FloatArray) -> FloatArray:
    """Linear-interpolation quantiles (numpy's default) of an already sorted array."""
    pos = probs * (x.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, x.size - 1)
    frac = pos - lo
    out: FloatArray = x[lo] + (x[hi] - x[lo]) * frac
    return out


def _merge_points(parts: list[tuple[int, FloatArray]]) -> FloatArray:
    """Combine quantile summaries (min, p1..p99, max) weighted by how many values each stands for.

    Every summary point carries the mass it represents (1% of its part, half that for min and
    max); the merged quantile is read off the combined points at their mid-cumulative weights. A
    single summary is returned unchanged, and for a merge the rank error of a percentile is at most
    about one percent of the rows (the grid spacing), usually far less for smooth data.
    """
    parts = [(w, p) for w, p in parts if w > 0]
    if len(parts) == 1:
        return parts[0][1]
    pts = np.concatenate([p for _, p in parts])
    weights = np.concatenate([w * _QWEIGHT for w, _ in parts])
    order = np.argsort(pts, kind="stable")
    pts, weights = pts[order], weights[order]
    cum = (np.cumsum(weights) - weights / 2) / weights.sum()
    out: FloatArray = np.interp(_QGRID, cum, pts)
    out[0], out[-1] = pts[0], pts[-1]
    return out


def _merge_moments(
    n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float
) -> tuple[float, float]:
    """Chan et al.'s parallel update of mean and sum of squared deviations."""
    if n_a == 0:
        return mean_b, m2_b
    if n_b == 0:
        return mean_a, m2_a
    n = n_a + n_b
    delta = mean_b - mean_a
    return mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


def _bin_counts(x_sorted: FloatArray, edges: FloatArray) -> tuple[list[int], int, int]:
    """Counts on `edges` (bins [e_i, e_i+1), the last one closed), then under and over."""
    left = np.searchsorted(x_sorted, edges, side="left")
    right_last = int(np.searchsorted(x_sorted, edges[-1], side="right"))
    counts = np.diff(left)
    counts[-1] = right_last - left[-2]
    return [int(c) for c in counts], int(left[0]), int(x_sorted.size - right_last)


def _choose_edges(x_sorted: FloatArray, integer: bool) -> list[float]:
    q = _quantiles_sorted(x_sorted, np.linspace(0.0, 1.0, N_BINS + 1))
    lo, hi = float(x_sorted[0]), float(x_sorted[-1])
    if integer:
        edges = np.unique(np.round(q))
    else:
        spread = float(_quantiles_sorted(x_sorted, np.array([0.99]))[0]) - float(
            _quantiles_sorted(x_sorted, np.array([0.01]))[0]
        )
        edges = np.unique(np.array(_round(q, spread)))
        # Rounding must not leave the chunk's own extremes in under/over.
        if edges[0] > lo:
            edges[0] = min(_round_out(lo, spread, up=False), lo)
        if edges[-1] < hi:
            edges[-1] = max(_round_out(hi, spread, up=True), hi)
        edges = np.unique(edges)
    if edges.size == 1:
        return [float(edges[0]), float(edges[0])]  # one closed bin [v, v]
    return [float(e) for e in edges]


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
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
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
            self.edges = np.array(_choose_edges(x, self.integer))
            self.counts = np.zeros(self.edges.size - 1, dtype=np.int64)
        counts, under, over = _bin_counts(x, self.edges)
        self.counts += np.array(counts, dtype=np.int64)
        c.under += under
        c.over += over
        mean = float(np.mean(x))
        m2 = float(np.sum(np.square(x - mean)))
        self.mean, self.m2 = _merge_moments(self.n, self.mean, self.m2, x.size, mean, m2)
        self.n += x.size
        self.parts.append((x.size, _quantiles_sorted(x, _QGRID)))
        if self.ref_range is not None and c.outside is not None:
            lo, hi = self.ref_range
            below = int(np.searchsorted(x, lo, side="left"))
            above = x.size - int(np.searchsorted(x, hi, side="right"))
            c.outside += below + above

    def pad(self, rows: int) -> None:
        self.col.count += rows
        self.col.nulls += rows

    def finish(self) -> NumericColumn:
        c = self.col
        if self.edges is not None:
            c.edges = [float(e) for e in self.edges]
            c.counts = [int(n) for n in self.counts]
        if self.n:
            c.mean, c.m2 = self.mean, self.m2
            _set_quantiles(c, _merge_points(self.parts))
        return c


def _set_quantiles(c: NumericColumn, points: FloatArray) -> None:
    c.min, c.max = float(points[0]), float(points[-1])
    inner = points[1:-1]
    c.quantiles = _round(inner, float(inner[-1] - inner[0]))


def _key(value: str, hashed: bool) -> str:
    if hashed:
        return hashlib.sha256(value.encode()).hexdigest()[:12]
    if len(value) > LONG_VALUE:
        return f"{value[:28]}...{hashlib.sha256(value.encode()).hexdigest()[:8]}"
    return value


def _hll_update(registers: npt.NDArray[np.uint8], keys: list[str]) -> None:
    if not keys:
        return
    h = pd.util.hash_array(np.array(keys, dtype=object))
    idx = (h >> np.uint64(64 - HLL_BITS)).astype(np.intp)
    rest = (h & np.uint64((1 << (64 - HLL_BITS)) - 1)).astype(np.float64)
    _, exp = np.frexp(rest)
    # Rank = position of the first 1-bit in the remaining bits; frexp gives floor(log2) + 1.
    rank = np.where(rest > 0, (64 - HLL_BITS + 1) - exp, 64 - HLL_BITS + 1)
    np.maximum.at(registers, idx, np.clip(rank, 1, 64 - HLL_BITS + 1).astype(np.uint8))


def _hll_estimate(registers: npt.NDArray[np.uint8]) -> int:
    m = registers.size
    alpha = 0.7213 / (1 + 1.079 / m)
    est = alpha * m * m / float(np.sum(np.exp2(-registers.astype(np.float64))))
    zeros = int((registers == 0).sum())
    if est <= 2.5 * m and zeros:
        est = m * math.log(m / zeros)  # linear counting for small cardinalities
    return round(est)


def _hll_encode(registers: npt.NDArray[np.uint8]) -> str:
    return base64.b64encode(registers.tobytes()).decode()


def _hll_decode(text: str) -> npt.NDArray[np.uint8]:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy()
    if raw.size != 1 << HLL_BITS:
        raise MlmError("profile is malformed: bad hll sketch")
    return raw


def _hll_of(c: CategoricalColumn) -> npt.NDArray[np.uint8]:
    if c.hll is not None:
        return _hll_decode(c.hll)
    registers = np.zeros(1 << HLL_BITS, dtype=np.uint8)
    _hll_update(registers, list(c.top))
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
        _hll_update(self.registers, keys)
        if len(counts) > MAX_EXACT:
            ranked = sorted(counts.items(), key=lambda kv: -kv[1])
            self.counts = dict(ranked[: MAX_EXACT // 2])
            self.pruned += sum(n for _, n in ranked[MAX_EXACT // 2 :])

    def pad(self, rows: int) -> None:
        self.col.count += rows
        self.col.nulls += rows

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
        c.distinct = len(self.counts) if not self.pruned else _hll_estimate(self.registers)
        c.hll = _hll_encode(self.registers) if c.other else None
        if self.required is not None:
            c.unseen = sum(n for k, n in self.counts.items() if k not in self.required)
        return c


class _Pending:
    """A column seen only as missing values so far: its kind waits for a value or the reference."""

    def __init__(self, s: pd.Series[Any], rows: int) -> None:
        self.dtype = str(s.dtype)
        self.kind = _dtype_kind(s) or CategoricalColumn.kind  # if it stays empty and unreferenced
        self.rows = rows

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
    if top_k < 1:
        raise MlmError("top_k must be at least 1")
    if min_count < 0:
        raise MlmError("min_count must not be negative")
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    ref_cols: Mapping[str, Column] = reference.columns if reference is not None else {}
    builders: dict[str, _Builder] = {}
    rows = 0
    for frame in frames:
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise MlmError(f"duplicate column names: {', '.join(dups)}")
        for name, (_, s) in zip(names, frame.items(), strict=True):
            b = builders.get(name)
            if b is None:
                # A column first seen after `rows` rows was missing in them.
                b = builders[name] = _Pending(s, rows)
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
        rows += len(frame)
    if rows == 0:
        raise MlmError("no rows to profile: the data is empty")
    columns: dict[str, Column] = {}
    for name, b in builders.items():
        if isinstance(b, _Pending):
            ref = ref_cols.get(name)
            kind = ref.kind if ref is not None else b.kind
            nb = _new_builder(kind, b.dtype, ref, hash_values)
            nb.pad(b.rows)
            b = nb
        if isinstance(b, _NumericBuilder):
            columns[name] = b.finish()
        elif isinstance(b, _CategoricalBuilder):
            columns[name] = b.finish(top_k, min_count)
    return Profile(
        rows=rows,
        columns=columns,
        top_k=top_k,
        min_count=min_count,
        reference=reference.digest() if reference is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Merging


def merge_profiles(a: Profile, b: Profile) -> Profile:
    """Combine the profiles of two parts of one dataset (two days of serving logs, say).

    Exact: rows, counts, nulls, min/max, bin counts (both sides must share edges, i.e. be built
    against the same reference or chunk), categorical counts of values both sides list. Mean and
    m2 are exact to float rounding. A value listed on one side only may have been hidden in the
    other side's `other`, so its merged count can be low by at most that side's smallest listed
    count; the distinct count is exact when both lists are complete and a HyperLogLog union
    otherwise. Quantiles are combined as in `_merge_points` (rank error ≤ about 1%).
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
        out.mean, out.m2 = _merge_moments(a.finite, a.mean, a.m2, b.finite, b.mean, b.m2)
        _set_quantiles(out, _merge_points([(c.finite, _points(c)) for c in (a, b)]))
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
        out.distinct = max(_hll_estimate(registers), len(counts))
    if out.other:
        if registers is None:
            registers = np.maximum(_hll_of(a), _hll_of(b))
        out.hll = _hll_encode(registers)
    return out


# ---------------------------------------------------------------------------------------------
# Reading


def read_frames(
    path: str | Path, chunk_rows: int = 200_000, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a CSV or Parquet file as DataFrames of about `chunk_rows` rows.

    Parquet is recognised by its `PAR1` magic bytes (whatever the suffix); anything else is read as
    CSV (tab-separated for `.tsv`; `.gz`/`.bz2` are decompressed). Problems that can be seen up
    front (missing or empty file, a `.parquet` that is not Parquet, an unreadable CSV header,
    unknown columns) raise MlmError here rather than at the first chunk.
    """
    p = Path(path)
    if not p.exists():
        raise MlmError(f"{p}: no such file")
    if not p.is_file():
        raise MlmError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise MlmError(f"{p}: file is empty")
    if chunk_rows < 1:
        raise MlmError("chunk_rows must be at least 1")
    with p.open("rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return _read_parquet(p, chunk_rows, columns)
    if p.suffix.lower() in _PARQUET_SUFFIXES:
        raise MlmError(f"{p}: not a Parquet file (it lacks the PAR1 magic bytes)")
    return _read_csv(p, chunk_rows, columns)


def _read_parquet(p: Path, chunk_rows: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MlmError("reading Parquet needs pyarrow: pip install 'gitmlm[parquet]'") from e
    try:
        # Without pre_buffer pyarrow holds one row group's pages, not several: half the memory.
        pf = pq.ParquetFile(p, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise MlmError(f"{p}: cannot read Parquet: {_first_line(e)}") from e
    if columns is not None:
        _check_columns(p, columns, list(pf.schema_arrow.names))

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from pf.iter_batches(batch_size=min(chunk_rows, 65_536), columns=columns)
        except (pa.ArrowException, OSError) as e:
            raise MlmError(f"{p}: cannot read Parquet: {_first_line(e)}") from e
        finally:
            pf.close()

    return _rechunk(batches(), chunk_rows)


def _check_columns(p: Path, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        names = ", ".join(map(repr, missing))
        raise MlmError(f"{p}: no column {names} (has: {', '.join(present)})")


def _first_line(e: BaseException) -> str:
    # Parse errors quote the offending row, which may be binary junk: keep it short and printable.
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    return line if len(line) <= 160 else line[:157] + "..."


def _read_csv(p: Path, chunk_rows: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    delimiter = "\t" if ".tsv" in p.suffixes else ","
    try:
        import pyarrow as pa
    except ImportError:
        return _read_csv_pandas(p, chunk_rows, columns, delimiter, None)
    opts = _CsvOptions(p, chunk_rows, columns, delimiter)
    compressed = bool({s.lower() for s in p.suffixes} & _COMPRESSED)
    try:
        # Reads the header and one block: column names, a first guess at types, checks.
        reader = opts.open(0, probe=not compressed)
    except pa.ArrowInvalid as e:
        try:
            # Quoted newlines need pyarrow's slower, serial row splitter.
            opts.newlines = True
            reader = opts.open(0, probe=not compressed)
        except (pa.ArrowException, OSError):
            # pandas' parser is slower but more forgiving of odd quoting: try it before giving
            # up, and report pyarrow's message if it fails too.
            return _read_csv_pandas(p, chunk_rows, columns, delimiter, e)
    except (pa.ArrowException, OSError) as e:
        raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
    if not compressed:
        return _rechunk(_split_csv(p, opts), chunk_rows)

    def reopen(done: int, error: Exception) -> Any:
        # Types are inferred from the first block, so a later block that does not fit (a "3.5"
        # in an int column) is re-read with that column widened; a row split by a quoted
        # newline is re-read with the serial splitter. The new reader resumes after `done` rows.
        for _ in range(2 * len(opts.inferred) + 2):
            retyped = _widen(list(opts.inferred), opts.types or opts.inferred, str(error))
            if retyped is not None:
                opts.types = retyped
            elif "parse error" in str(error) and not opts.newlines:
                opts.newlines = True
            else:
                raise MlmError(f"{p}: cannot read CSV: {_first_line(error)}") from error
            try:
                return opts.open(done)
            except pa.ArrowInvalid as e:
                error = e
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
        raise MlmError(f"{p}: cannot read CSV: {_first_line(error)}") from error

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal reader
        done = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                reader = reopen(done, e)
                continue
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{p}: cannot read CSV: {_first_line(e)}") from e
            done += batch.num_rows
            yield batch

    return _rechunk(batches(), chunk_rows)


def _rechunk(batches: Iterator[Any], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Frames of exactly `chunk_rows` rows (the last may be shorter) from record batches."""
    import pyarrow as pa

    pending: list[Any] = []
    pending_rows = 0
    for batch in batches:
        if pending and not batch.schema.equals(pending[0].schema):
            # A CSV column was widened mid-file: the rows before it go out as a short frame.
            yield pa.Table.from_batches(pending).to_pandas()
            pending, pending_rows = [], 0
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while pending_rows - start >= chunk_rows:
            yield table.slice(start, chunk_rows).to_pandas()
            start += chunk_rows
        rest = table.slice(start)
        pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).to_pandas()


class _CsvOptions:
    """How to (re)open one CSV with pyarrow's streaming reader."""

    def __init__(self, p: Path, chunk_rows: int, columns: list[str] | None, delimiter: str):
        self.path = p
        # About `chunk_rows` rows per block, but at most 8 MiB: pyarrow's threads parse a
        # read_csv call's blocks in parallel, and smaller calls keep memory low.
        self.block_size = min(_block_size(p, chunk_rows), _CSV_PARSE_BYTES)
        self.columns = columns
        self.delimiter = delimiter
        self.types: dict[str, Any] | None = None  # fixed after the first chunk, then widened
        self.inferred: dict[str, Any] = {}  # every file column, as inferred from the first block
        self.newlines = False

    def parse(self, data: memoryview) -> Any:
        """One chunk of whole records (no header) as a table, with the types of earlier chunks.

        pyarrow's read_csv parses the chunk's blocks in parallel, which its streaming reader
        does not: this is what makes CSV reading about twice as fast as the streaming reader.
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(column_names=list(self.inferred), use_threads=True)
        for _ in range(2 * len(self.inferred) + 2):
            parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self.newlines)
            convert = pacsv.ConvertOptions(
                column_types=self.types or {}, include_columns=self.columns or []
            )
            try:
                table = pacsv.read_csv(pa.py_buffer(data), read, parse, convert)
            except pa.ArrowInvalid as e:
                retyped = _widen(list(self.inferred), self.types or self.inferred, str(e))
                if retyped is not None:
                    self.types = retyped
                elif "parse error" in str(e) and not self.newlines:
                    self.newlines = True
                else:
                    raise MlmError(f"{self.path}: cannot read CSV: {_first_line(e)}") from e
                continue
            except (pa.ArrowException, OSError) as e:
                raise MlmError(f"{self.path}: cannot read CSV: {_first_line(e)}") from e
            binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
            if binary:
                raise MlmError(
                    f"{self.path}: cannot read CSV: column {binary[0]!r} is not UTF-8 text; "
                    "re-encode the file"
                )
            if self.types is None:
                self.types = {f.name: f.type for f in table.schema}
            return table
        raise MlmError(f"{self.path}: cannot read CSV: column types keep changing")

    def open(self, skip: int, probe: bool = False) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        p = self.path
        read = pacsv.ReadOptions(
            block_size=min(self.block_size, 1 << 20) if probe else self.block_size,
            use_threads=True,
            skip_rows_after_names=skip,
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self.newlines)
        convert = pacsv.ConvertOptions(column_types=self.types or {})
        reader = pacsv.open_csv(
            str(p), read_options=read, parse_options=parse, convert_options=convert
        )
        if not self.inferred:
            self.inferred = {f.name: f.type for f in reader.schema}
        binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
        if binary:
            raise MlmError(
                f"{p}: cannot read CSV: column {binary[0]!r} is not UTF-8 text; re-encode the file"
            )
        if self.columns is not None:
            _check_columns(p, self.columns, list(reader.schema.names))
            # include_columns also fixes the order; set it only once the names are known good.
            convert = pacsv.ConvertOptions(
                column_types=self.types or {}, include_columns=self.columns
            )
            reader = pacsv.open_csv(
                str(p), read_options=read, parse_options=parse, convert_options=convert
            )
        return reader


def _block_size(p: Path, chunk_rows: int) -> int:
    # Size blocks so one block is about `chunk_rows` rows: bytes per row from the first 64 KiB.
    with p.open("rb") as f:
        head = f.read(1 << 16)
    lines = max(head.count(b"\n"), 1)
    per_row = max(len(head) // lines, 1)
    return int(min(max(per_row * chunk_rows, 1 << 16), 1 << 28))


def _widen(names: list[str], types: dict[str, Any], message: str) -> dict[str, Any] | None:
    """`types` with the column a conversion error names widened (null, int → float → text).

    `names` are all the file's columns in order: pyarrow numbers columns by file position.
    """
    import re

    import pyarrow as pa

    m = re.search(r"CSV column #(\d+)", message)
    if m is None or "conversion error" not in message or int(m.group(1)) >= len(names):
        return None
    name = names[int(m.group(1))]
    old = types.get(name)
    if old is None or pa.types.is_string(old) or pa.types.is_large_string(old):
        return None
    wider = pa.float64() if pa.types.is_integer(old) or pa.types.is_null(old) else pa.string()
    return {**types, name: wider}


def _split_csv(p: Path, opts: _CsvOptions) -> Iterator[Any]:
    """Record batches of an uncompressed CSV, parsed at most 8 MiB at a time.

    Chunks end at a newline outside quotes: with RFC 4180 quoting (a quote inside a field is
    doubled) that is a newline preceded by an even number of quote characters in the chunk.
    """
    with p.open("rb") as f:
        head = f.read(1 << 20)
        start = _record_end(head, first=True)
        if start < 0:
            return  # a header and no records
        pos = start
        chunk = size = opts.block_size
        while True:
            f.seek(pos)
            buf = f.read(size)
            eof = len(buf) < size
            if not buf.strip():
                return
            cut = len(buf) if eof else _record_end(buf, first=False)
            if cut <= 0:
                size *= 2  # one record longer than a chunk: read more at once
                continue
            yield from opts.parse(memoryview(buf)[:cut]).to_batches()
            if eof:
                return
            # The partial record after `cut` is read again with the next chunk.
            pos += cut
            size = chunk


def _record_end(buf: bytes, *, first: bool) -> int:
    """Offset just past the first (or last) newline outside quotes in `buf`, or -1."""
    if first:
        i = buf.find(b"\n")
        while i >= 0 and buf.count(b'"', 0, i) % 2:
            i = buf.find(b"\n", i + 1)
        return i + 1 if i >= 0 else -1
    i = buf.rfind(b"\n")
    quotes = buf.count(b'"', 0, i) if i >= 0 else 0
    while i >= 0 and quotes % 2:
        j = buf.rfind(b"\n", 0, i)
        quotes -= buf.count(b'"', j + 1 if j >= 0 else 0, i)
        i = j
    return i + 1 if i >= 0 else -1


def _read_csv_pandas(
    p: Path,
    chunk_rows: int,
    columns: list[str] | None,
    delimiter: str,
    arrow_error: BaseException | None,
) -> Iterator[pd.DataFrame]:
    def fail(e: BaseException) -> MlmError:
        shown = arrow_error if arrow_error is not None else e
        return MlmError(f"{p}: cannot read CSV: {_first_line(shown)}")

    try:
        reader = pd.read_csv(p, sep=delimiter, chunksize=chunk_rows, usecols=columns)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise fail(e) from e

    def gen() -> Iterator[pd.DataFrame]:
        try:
            with reader:
                yield from reader
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise fail(e) from e

    return gen()
