"""Slices of the evaluation data, found automatically, and the slice-against-rest test.

Each column becomes integer codes, one per slice: a categorical value seen often enough, or a
quantile bin of a numeric column; pairs of columns cross their codes. Statistics per slice come
from `np.bincount` over the codes, so trying a thousand slices costs a few passes over the data.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from gitmlm.errors import MlmError

BINS = 5
MAX_CATEGORIES = 1000
"""A categorical column with more distinct values than this is refused (an id, a free text)."""
MAX_PAIR_COLUMNS = 12
MIN_SUPPORT = 20
Z_GRADE = 1.645
"""One-sided 95%: effects are graded on their lower confidence bound."""


@dataclass
class Column:
    name: str
    codes: np.ndarray
    """Slice index per row; -1 where the row is in no slice of this column."""
    labels: list[str]
    parents: list[tuple[str, str]] | None = None
    """For a pair of columns: the two single slices each slice is made of."""


@dataclass
class Tested:
    """Every slice of every column (and pair), slice against the rest of the rows."""

    names: list[str]
    labels: list[str]
    support: np.ndarray
    mean: np.ndarray
    rest: np.ndarray
    se: np.ndarray
    """Standard error of the slice-minus-rest difference: severities are graded on the effect
    less `Z_GRADE` of these, so a small slice needs a larger drop to be called major."""
    p: np.ndarray
    """One-sided p-value that the slice's mean is higher than the rest's (or lower, two-sided
    when asked)."""
    parents: list[tuple[str, ...]]
    """The labels of the single slices a pair is made of; () for a single slice."""


def is_text(s: pd.Series) -> bool:
    """Free text: strings that are long and have spaces (sliced by nothing, perturbed by typos)."""
    if s.dtype.kind not in "OSU" and str(s.dtype) not in ("string", "str"):
        return False
    sample = s.dropna().astype(str).head(500)
    return (
        bool(len(sample))
        and sample.str.len().mean() >= 20
        and sample.str.contains(" ").mean() > 0.5
    )


def is_categorical(s: pd.Series) -> bool:
    return s.dtype.kind not in "iufcmM" or s.nunique(dropna=True) <= 10


def columns(df: pd.DataFrame, names: list[str], min_support: int) -> list[Column]:
    out = []
    for name in names:
        s = df[name]
        if is_text(s):
            continue
        out.append(_categorical(name, s, min_support) if is_categorical(s) else _numeric(name, s))
    return out


def _quote(v: object) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)


def _categorical(name: str, s: pd.Series, min_support: int) -> Column:
    counts = s.value_counts(dropna=True)
    if len(counts) > MAX_CATEGORIES:
        raise MlmError(
            f"column {name!r} has {len(counts):,} distinct values: too many to slice; "
            f"leave it out with --ignore {name}"
        )
    kept = [v for v, c in counts.items() if c >= min_support]
    codes = np.full(len(s), -1, dtype=np.int64)
    index = {v: i for i, v in enumerate(kept)}
    mapped = s.map(index)
    ok = mapped.notna().to_numpy()
    codes[ok] = mapped.to_numpy()[ok].astype(np.int64)
    return Column(name, codes, [f"{name} == {_quote(v)}" for v in kept])


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _numeric(name: str, s: pd.Series) -> Column:
    x = s.to_numpy(dtype=float, na_value=np.nan)
    finite = x[np.isfinite(x)]
    edges: np.ndarray = (
        np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]))
        if finite.size
        else np.zeros(0)
    )
    codes = np.full(len(x), -1, dtype=np.int64)
    ok = np.isfinite(x)
    codes[ok] = np.searchsorted(edges, x[ok], side="right")
    labels = []
    for i in range(len(edges) + 1):
        if i == 0:
            labels.append(f"{name} < {_fmt(edges[0])}" if len(edges) else f"{name} (all)")
        elif i == len(edges):
            labels.append(f"{name} >= {_fmt(edges[-1])}")
        else:
            labels.append(f"{name} in [{_fmt(edges[i - 1])}, {_fmt(edges[i])})")
    return Column(name, codes, labels)


def crossed(cols: list[Column], pairs: bool) -> list[Column]:
    """The single columns, then (with `pairs`) every pair among the first few columns."""
    out = list(cols)
    if not pairs:
        return out
    for a, b in itertools.combinations(cols[:MAX_PAIR_COLUMNS], 2):
        kb = len(b.labels)
        ok = (a.codes >= 0) & (b.codes >= 0)
        codes = np.where(ok, a.codes * kb + b.codes, -1)
        labels = [f"{la} & {lb}" for la in a.labels for lb in b.labels]
        parents = [(la, lb) for la in a.labels for lb in b.labels]
        out.append(Column(f"{a.name} & {b.name}", codes, labels, parents))
    return out


def test(cols: list[Column], v: np.ndarray, min_support: int, two_sided: bool = False) -> Tested:
    """Per slice: support, mean of `v` in the slice and in the rest, and the p-value of the
    z-test (pooled variance: the two-proportion test when `v` is 0/1)."""
    v = np.asarray(v, dtype=float)
    n = v.size
    total, total_sq = v.sum(), (v * v).sum()
    var = max(total_sq / n - (total / n) ** 2, 0.0)
    names: list[str] = []
    labels: list[str] = []
    parents: list[tuple[str, ...]] = []
    sup, mean, rest = [], [], []
    for c in cols:
        k = len(c.labels)
        if k == 0:
            continue
        ok = c.codes >= 0
        cnt = np.bincount(c.codes[ok], minlength=k).astype(float)
        sm = np.bincount(c.codes[ok], weights=v[ok], minlength=k)
        keep = (cnt >= min_support) & (cnt <= n - min_support)
        idx = np.nonzero(keep)[0]
        for i in idx:
            names.append(c.name)
            labels.append(c.labels[i])
            parents.append(c.parents[i] if c.parents else ())
        sup.append(cnt[idx])
        mean.append(sm[idx] / cnt[idx])
        rest.append((total - sm[idx]) / (n - cnt[idx]))
    s = np.concatenate(sup) if sup else np.zeros(0)
    m = np.concatenate(mean) if mean else np.zeros(0)
    r = np.concatenate(rest) if rest else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var * (1 / s + 1 / (n - s)))
        z = np.where(se > 0, (m - r) / se, np.where(m > r, np.inf, 0.0))
    p = 2 * sps.norm.sf(np.abs(z)) if two_sided else sps.norm.sf(z)
    return Tested(names, labels, s.astype(int), m, r, se, p, parents)
