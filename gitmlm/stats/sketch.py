"""The numbers behind profiles: quantile summaries, frozen bin edges, moments, HyperLogLog.

Pure numpy on sorted arrays; `gitmlm.stats.profile` builds columns from these and stores the
results.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd

from gitmlm.errors import MlmError

N_BINS = 20
HLL_BITS = 8  # 256 registers: about 6.5% relative error on the distinct count

FloatArray = npt.NDArray[np.float64]

# Percentile grid of the internal quantile summaries: min, p1..p99, max.
QGRID: FloatArray = np.concatenate([[0.0], np.arange(1, 100) / 100.0, [1.0]])
# Each interior percentile stands for 1% of the mass, min and max for half a percent each.
QWEIGHT: FloatArray = np.concatenate([[0.005], np.full(99, 0.01), [0.005]])


def sig(x: float, digits: int) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def decimals(v: float, spread: float) -> int | None:
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


def round_values(values: Iterable[float], spread: float) -> list[float]:
    # Python's round() is correctly rounded, so the stored numbers print short.
    out = []
    for v in values:
        d = decimals(float(v), spread)
        out.append(float(v) if d is None else round(float(v), d))
    return out


def round_out(v: float, spread: float, up: bool) -> float:
    """Round `v` away from the data (down for a lower edge, up for an upper one)."""
    d = decimals(v, spread)
    if d is None:
        return v
    scale = 10.0**d
    return (math.ceil(v * scale) if up else math.floor(v * scale)) / scale


def quantiles_sorted(x: FloatArray, probs: FloatArray) -> FloatArray:
    """Linear-interpolation quantiles (numpy's default) of an already sorted array."""
    pos = probs * (x.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, x.size - 1)
    frac = pos - lo
    out: FloatArray = x[lo] + (x[hi] - x[lo]) * frac
    return out


def merge_points(parts: list[tuple[int, FloatArray]]) -> FloatArray:
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
    weights = np.concatenate([w * QWEIGHT for w, _ in parts])
    order = np.argsort(pts, kind="stable")
    pts, weights = pts[order], weights[order]
    cum = (np.cumsum(weights) - weights / 2) / weights.sum()
    out: FloatArray = np.interp(QGRID, cum, pts)
    out[0], out[-1] = pts[0], pts[-1]
    return out


def merge_moments(
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


def bin_counts(x_sorted: FloatArray, edges: FloatArray) -> tuple[list[int], int, int]:
    """Counts on `edges` (bins [e_i, e_i+1), the last one closed), then under and over."""
    left = np.searchsorted(x_sorted, edges, side="left")
    right_last = int(np.searchsorted(x_sorted, edges[-1], side="right"))
    counts = np.diff(left)
    counts[-1] = right_last - left[-2]
    return [int(c) for c in counts], int(left[0]), int(x_sorted.size - right_last)


def choose_edges(x_sorted: FloatArray, integer: bool) -> list[float]:
    q = quantiles_sorted(x_sorted, np.linspace(0.0, 1.0, N_BINS + 1))
    lo, hi = float(x_sorted[0]), float(x_sorted[-1])
    if integer:
        edges = np.unique(np.round(q))
    else:
        spread = float(quantiles_sorted(x_sorted, np.array([0.99]))[0]) - float(
            quantiles_sorted(x_sorted, np.array([0.01]))[0]
        )
        edges = np.unique(np.array(round_values(q, spread)))
        # Rounding must not leave the chunk's own extremes in under/over.
        if edges[0] > lo:
            edges[0] = min(round_out(lo, spread, up=False), lo)
        if edges[-1] < hi:
            edges[-1] = max(round_out(hi, spread, up=True), hi)
        edges = np.unique(edges)
    if edges.size == 1:
        return [float(edges[0]), float(edges[0])]  # one closed bin [v, v]
    return [float(e) for e in edges]


def hll_update(registers: npt.NDArray[np.uint8], keys: list[str]) -> None:
    if not keys:
        return
    h = pd.util.hash_array(np.array(keys, dtype=object))
    idx = (h >> np.uint64(64 - HLL_BITS)).astype(np.intp)
    rest = (h & np.uint64((1 << (64 - HLL_BITS)) - 1)).astype(np.float64)
    _, exp = np.frexp(rest)
    # Rank = position of the first 1-bit in the remaining bits; frexp gives floor(log2) + 1.
    rank = np.where(rest > 0, (64 - HLL_BITS + 1) - exp, 64 - HLL_BITS + 1)
    np.maximum.at(registers, idx, np.clip(rank, 1, 64 - HLL_BITS + 1).astype(np.uint8))


def hll_estimate(registers: npt.NDArray[np.uint8]) -> int:
    m = registers.size
    alpha = 0.7213 / (1 + 1.079 / m)
    est = alpha * m * m / float(np.sum(np.exp2(-registers.astype(np.float64))))
    zeros = int((registers == 0).sum())
    if est <= 2.5 * m and zeros:
        est = m * math.log(m / zeros)  # linear counting for small cardinalities
    return round(est)


def hll_encode(registers: npt.NDArray[np.uint8]) -> str:
    return base64.b64encode(registers.tobytes()).decode()


def hll_decode(text: str) -> npt.NDArray[np.uint8]:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy()
    if raw.size != 1 << HLL_BITS:
        raise MlmError("profile is malformed: bad hll sketch")
    return raw
