"""Training-serving skew: compare a serving profile with the training (reference) profile.

Per feature, `compare` reports:

- schema skew: a training column missing at serving, a serving column unknown to training, a
  change of kind (numeric ↔ categorical, e.g. numbers arriving as text); a dtype change within a
  kind (int64 → float64) is only a note;
- the missing-value rate (nulls, NaN, and text in a numeric column) in both, checked on its change;
- numeric: the share of serving values outside the training [min, max]; PSI and Jensen–Shannon
  distance on the frozen training bins plus the under/over bins; L∞ (largest change of one bin's
  share); a normalised Wasserstein distance;
- categorical: unseen categories (count and share; exact only when the training list is complete,
  i.e. its `other` is 0); L∞, JS and PSI on the training categories plus an "(other)" bucket;
- the three bins or categories whose share moved most.

Scores are effect sizes, not tests, so a large sample does not make a negligible shift
"significant". PSI smooths every bucket with half a count (so an empty training bucket does not
make it infinite); JS needs no smoothing and is in base 2 (0 = same, 1 = disjoint). The
Wasserstein distance is the mean absolute difference of the 1st..99th percentiles (the quantile
form of W1 on the central 98% of the mass) divided by the training standard deviation (the IQR is
0 for many integer columns), falling back to the training range, then 1. With ``pvalues=True`` a
chi-square test on the same buckets is added; at large n it flags shifts too small to matter,
which the report says in `warnings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gitmlm.errors import MlmError
from gitmlm.stats.profile import CategoricalColumn, Column, NumericColumn, Profile

# Crossing any of these (strictly) marks a feature DRIFT. Chosen so that a 0.5σ shift, a reversed
# category mix, a 1% new category or a 5-point jump in missing values is flagged with margin,
# while samples of 200,000 rows from one distribution are not (see tests/drift_test.py).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "psi": 0.2,  # the usual "significant shift" rule of thumb
    "js": 0.1,  # Jensen–Shannon distance, base 2
    "wasserstein": 0.1,  # in training standard deviations: 0.1σ of shift, or spread change
    "linf": 0.1,  # one bin or category gained or lost 10 points of share
    "null_rate_delta": 0.05,  # missing rate moved by 5 points, either way
    "out_of_range": 0.05,  # 5% of serving values outside the training [min, max]
    "unseen_share": 0.01,  # 1% of serving values are categories training never had
    "pvalue": 0.001,  # only with pvalues=True: flagged when below
}
# Above this many rows a chi-square test rejects for shifts far below any threshold above.
LARGE_N = 10_000
_SMOOTH = 0.5  # counts added to every bucket for PSI
_TOP_MOVES = 3

FloatArray = npt.NDArray[np.float64]


@dataclass
class Move:
    """One bin or category and its share of the non-missing values in training and now."""

    label: str
    ref: float
    now: float


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    role: str = "feature"  # "prediction" for the report's prediction column
    status: str = "ok"  # ok | DRIFT | SCHEMA
    crossed: list[str] = field(default_factory=list)  # checks over their threshold
    schema: list[str] = field(default_factory=list)  # schema problems; any makes it SCHEMA
    notes: list[str] = field(default_factory=list)
    rows_ref: int = 0
    rows_now: int = 0
    null_rate_ref: float | None = None
    null_rate_now: float | None = None
    out_of_range: float | None = None
    unseen: int | None = None
    unseen_share: float | None = None
    unseen_values: list[str] = field(default_factory=list)
    psi: float | None = None
    js: float | None = None
    wasserstein: float | None = None
    linf: float | None = None
    pvalue: float | None = None
    top_moves: list[Move] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key == "top_moves":
                value = [{"bin": m.label, "ref": _r(m.ref), "now": _r(m.now)} for m in value]
            elif isinstance(value, float):
                value = _r(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, list):
                value = list(value)
            # None has no TOML form and NaN no JSON form: leave both out.
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            d[key] = value
        return d


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    reference_rows: int
    serving_rows: int
    prediction: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return any(f.status != "ok" for f in self.features)

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "flagged": self.flagged,
            "reference_rows": self.reference_rows,
            "serving_rows": self.serving_rows,
        }
        if self.prediction is not None:
            d["prediction"] = self.prediction
        d["warnings"] = list(self.warnings)
        d["features"] = [f.to_dict() for f in self.features]
        return d


def _r(x: float) -> float:
    """Six significant digits: enough to read and to diff, not noise."""
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, 5 - math.floor(math.log10(abs(x))))


# ---------------------------------------------------------------------------------------------


def compare(
    reference: Profile,
    serving: Profile,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    *,
    pvalues: bool = False,
    prediction: str | None = None,
) -> DriftReport:
    """Compare `serving` against `reference` feature by feature; see the module docstring.

    `thresholds` maps a feature name, or "*" for all, to overrides of DEFAULT_THRESHOLDS.
    `prediction` names the model-output column, whose drift is reported like any feature.
    Bins and unseen counts are exact when `serving` was built with ``reference=`` this profile;
    otherwise they are estimated from the serving quantiles and the affected features say so.
    """
    warnings: list[str] = []
    names = [*reference.columns, *(n for n in serving.columns if n not in reference.columns)]
    limits = _limits(thresholds, names, warnings)
    if prediction is not None and prediction not in names:
        raise MlmError(f"prediction column {prediction!r} is in neither profile")
    linked = serving.reference is not None and serving.reference == reference.digest()
    if serving.reference is not None and not linked:
        warnings.append(
            "the serving profile was built against a different reference profile; "
            "bins and unseen counts are estimated"
        )
    features: list[FeatureDrift] = []
    for name in names:
        ref = reference.columns.get(name)
        cur = serving.columns.get(name)
        f = FeatureDrift(
            feature=name,
            kind=(ref or cur).kind,  # type: ignore[union-attr]
            role="prediction" if name == prediction else "feature",
            thresholds=limits[name],
        )
        _compare_feature(f, ref, cur, linked, pvalues)
        features.append(f)
    common = reference.columns.keys() & serving.columns.keys()
    if not common and reference.columns:
        warnings.append(
            "the serving data has none of the training columns: is it the right file, "
            "with the same header?"
        )
    if pvalues and min(reference.rows, serving.rows) > LARGE_N:
        warnings.append(
            f"p-values at n = {min(reference.rows, serving.rows):,} rows flag shifts too small "
            "to matter; judge drift by psi, js, wasserstein and linf"
        )
    return DriftReport(
        features=features,
        reference_rows=reference.rows,
        serving_rows=serving.rows,
        prediction=prediction,
        warnings=warnings,
    )


def _limits(
    thresholds: Mapping[str, Mapping[str, float]] | None, names: list[str], warnings: list[str]
) -> dict[str, dict[str, float]]:
    given = thresholds or {}
    for feature, entry in given.items():
        for check, value in entry.items():
            if check not in DEFAULT_THRESHOLDS:
                known = ", ".join(DEFAULT_THRESHOLDS)
                raise MlmError(f"unknown threshold {check!r} for {feature!r} (known: {known})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MlmError(f"threshold {feature}.{check} must be a number, not {value!r}")
        if feature != "*" and feature not in names:
            warnings.append(f"thresholds given for {feature!r}, which neither profile has")
    base = {**DEFAULT_THRESHOLDS, **given.get("*", {})}
    return {name: {**base, **given.get(name, {})} for name in names}


def _compare_feature(
    f: FeatureDrift, ref: Column | None, cur: Column | None, linked: bool, pvalues: bool
) -> None:
    if ref is not None:
        f.rows_ref = ref.count
        f.null_rate_ref = ref.missing / ref.count if ref.count else None
    if cur is not None:
        f.rows_now = cur.count
        f.null_rate_now = cur.missing / cur.count if cur.count else None
    if ref is None:
        f.schema.append("not in training data")
    elif cur is None:
        f.schema.append("missing from serving data")
    elif ref.kind != cur.kind:
        f.schema.append(f"kind changed: {ref.kind} ({ref.dtype}) -> {cur.kind} ({cur.dtype})")
    else:
        if ref.dtype != cur.dtype:
            f.notes.append(f"dtype {ref.dtype} -> {cur.dtype}")
        if isinstance(ref, NumericColumn) and isinstance(cur, NumericColumn):
            _numeric(f, ref, cur, linked, pvalues)
        elif isinstance(ref, CategoricalColumn) and isinstance(cur, CategoricalColumn):
            _categorical(f, ref, cur, linked, pvalues)
        _checks(f, pvalues)
    f.status = "SCHEMA" if f.schema else "DRIFT" if f.crossed else "ok"


def _checks(f: FeatureDrift, pvalues: bool) -> None:
    t = f.thresholds
    over = {
        "psi": f.psi,
        "js": f.js,
        "wasserstein": f.wasserstein,
        "linf": f.linf,
        "out_of_range": f.out_of_range,
        "unseen_share": f.unseen_share,
    }
    if f.null_rate_ref is not None and f.null_rate_now is not None:
        over["null_rate_delta"] = abs(f.null_rate_now - f.null_rate_ref)
    f.crossed = [k for k, v in over.items() if v is not None and v > t[k]]
    if pvalues and f.pvalue is not None and f.pvalue < t["pvalue"]:
        f.crossed.append("pvalue")


# ---------------------------------------------------------------------------------------------
# Numeric


def _numeric(
    f: FeatureDrift, ref: NumericColumn, cur: NumericColumn, linked: bool, pvalues: bool
) -> None:
    if cur.invalid:
        f.notes.append(f"{cur.invalid:,} serving values are not numbers")
    if ref.finite == 0 or not ref.edges:
        f.notes.append("no finite values in training: nothing to compare")
        return
    if cur.finite == 0:
        f.notes.append("no finite values in serving data")
        return
    ref_counts = np.array([ref.under, *ref.counts, ref.over], dtype=np.float64)
    exact = cur.edges == ref.edges
    if exact:
        cur_counts = np.array([cur.under, *cur.counts, cur.over], dtype=np.float64)
    else:
        cur_counts = _rebin(cur, ref.edges)
        f.notes.append("serving profile has other bins: shares estimated from its quantiles")
    labels = _bin_labels(ref.edges)
    _distribution(f, ref_counts, cur_counts, labels, pvalues and exact)
    f.wasserstein = _wasserstein(ref, cur)
    # Infinities are out of range unless training had them too.
    inf = (cur.posinf if not ref.posinf else 0) + (cur.neginf if not ref.neginf else 0)
    if linked and cur.outside is not None:
        outside = float(cur.outside)
    elif cur.min >= ref.min and cur.max <= ref.max:
        outside = 0.0
    else:
        below, above = _cdf(cur, np.array([ref.min, ref.max]))
        outside = cur.finite * (below + 1.0 - above)
        f.notes.append("out-of-range share estimated from serving quantiles")
    f.out_of_range = (outside + inf) / (cur.finite + cur.posinf + cur.neginf)


def _bin_labels(edges: Sequence[float]) -> list[str]:
    e = [_fmt(x) for x in edges]
    inner = [f"[{e[i]}, {e[i + 1]})" for i in range(len(e) - 1)]
    inner[-1] = f"[{e[-2]}, {e[-1]}]"
    return [f"< {e[0]}", *inner, f"> {e[-1]}"]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _cdf(c: NumericColumn, x: FloatArray) -> FloatArray:
    """The serving CDF, piecewise linear through min, p1..p99, max."""
    points = np.array([c.min, *c.quantiles, c.max], dtype=np.float64)
    grid = np.concatenate([[0.0], np.arange(1, 100) / 100.0, [1.0]])
    out: FloatArray = np.interp(x, points, grid, left=0.0, right=1.0)
    return out


def _rebin(c: NumericColumn, edges: Sequence[float]) -> FloatArray:
    cdf = _cdf(c, np.array(edges, dtype=np.float64))
    shares = np.concatenate([[cdf[0]], np.diff(cdf), [1.0 - cdf[-1]]])
    out: FloatArray = shares * c.finite
    return out


def _wasserstein(ref: NumericColumn, cur: NumericColumn) -> float | None:
    if len(ref.quantiles) != len(cur.quantiles) or not ref.quantiles:
        return None
    w = float(np.mean(np.abs(np.array(ref.quantiles) - np.array(cur.quantiles))))
    scale = ref.std
    if not scale > 0:
        scale = ref.max - ref.min
    if not scale > 0:
        scale = 1.0
    return w / scale


# ---------------------------------------------------------------------------------------------
# Categorical


def _categorical(
    f: FeatureDrift, ref: CategoricalColumn, cur: CategoricalColumn, linked: bool, pvalues: bool
) -> None:
    if ref.hashed != cur.hashed:
        f.schema.append("values hashed in one profile and not the other")
        return
    if ref.nonnull == 0:
        f.notes.append("no values in training: nothing to compare")
        return
    if cur.nonnull == 0:
        f.notes.append("no values in serving data")
        return
    keys = list(ref.top)
    # Built against this reference, the serving profile lists every training key it saw, so an
    # absent key is a zero; otherwise an absent key may hide in the serving `other`.
    exact = linked or cur.complete
    if not exact:
        f.notes.append("serving list is truncated: category shares are lower bounds")
    listed = [cur.top.get(k, 0) for k in keys]
    new = {k: n for k, n in cur.top.items() if k not in ref.top}
    ref_counts = np.array([*(ref.top[k] for k in keys), ref.other], dtype=np.float64)
    cur_counts = np.array([*listed, cur.nonnull - sum(listed)], dtype=np.float64)
    labels = [*keys, "(other)"]
    _distribution(f, ref_counts, cur_counts, labels, pvalues and exact)
    if ref.complete:
        # Name the new categories instead of one "(other)" bucket among the moves.
        moves = [m for m in f.top_moves if m.label != "(other)"]
        for k, n in new.items():
            moves.append(Move(k, 0.0, n / cur.nonnull))
        rest = cur.nonnull - sum(listed) - sum(new.values())
        if rest:
            moves.append(Move("(other)", 0.0, rest / cur.nonnull))
        moves.sort(key=lambda m: -abs(m.now - m.ref))
        f.top_moves = moves[:_TOP_MOVES]
        if linked and cur.unseen is not None:
            f.unseen = cur.unseen
        else:
            f.unseen = cur.nonnull - sum(listed)
        f.unseen_share = f.unseen / cur.nonnull
        f.unseen_values = sorted(new, key=lambda k: -new[k])[:_TOP_MOVES]
    elif new:
        f.notes.append(
            "training kept only its top categories, so unseen values cannot be told from rare "
            "ones; they count in (other)"
        )


# ---------------------------------------------------------------------------------------------
# Scores


def _distribution(
    f: FeatureDrift, ref: FloatArray, cur: FloatArray, labels: list[str], pvalue: bool
) -> None:
    p = ref / ref.sum()
    q = cur / cur.sum()
    k = ref.size
    sp = (ref + _SMOOTH) / (ref.sum() + _SMOOTH * k)
    sq = (cur + _SMOOTH) / (cur.sum() + _SMOOTH * k)
    f.psi = float(np.sum((sq - sp) * np.log(sq / sp)))
    f.js = _js(p, q)
    diff = np.abs(q - p)
    f.linf = float(diff.max())
    order = np.argsort(-diff, kind="stable")[:_TOP_MOVES]
    f.top_moves = [Move(labels[i], float(p[i]), float(q[i])) for i in order if diff[i] > 0]
    if pvalue:
        f.pvalue = chi2_pvalue(ref, cur)


def _js(p: FloatArray, q: FloatArray) -> float:
    m = (p + q) / 2

    def kl(a: FloatArray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def chi2_pvalue(ref: FloatArray, cur: FloatArray) -> float:
    """p-value of the chi-square test that two count vectors come from one distribution."""
    obs = np.vstack([ref, cur])
    obs = obs[:, obs.sum(axis=0) > 0]
    if obs.shape[1] < 2:
        return 1.0
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / obs.sum()
    stat = float(np.sum((obs - expected) ** 2 / expected))
    return chi2_sf(stat, obs.shape[1] - 1)


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution: Q(dof/2, x/2), without scipy."""
    return _gammaincc(dof / 2.0, x / 2.0)


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma (Numerical Recipes: series below a+1, else Lentz)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, max(0.0, 1.0 - total * math.exp(log_front)))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, max(0.0, math.exp(log_front) * h))


# ---------------------------------------------------------------------------------------------
# Rendering


def report_rows(report: DriftReport) -> list[dict[str, object]]:
    """One flat row per feature, for a table or markdown; numbers to four significant digits."""
    rows: list[dict[str, object]] = []
    for f in report.features:
        moves = "; ".join(f"{m.label}: {m.ref:.1%} -> {m.now:.1%}" for m in f.top_moves)
        rows.append(
            {
                "feature": f.feature,
                "role": f.role,
                "kind": f.kind,
                "status": f.status,
                "psi": _r4(f.psi),
                "js": _r4(f.js),
                "wasserstein": _r4(f.wasserstein),
                "linf": _r4(f.linf),
                "null_rate_ref": _r4(f.null_rate_ref),
                "null_rate_now": _r4(f.null_rate_now),
                "out_of_range": _r4(f.out_of_range),
                "unseen": f.unseen,
                "unseen_share": _r4(f.unseen_share),
                "top_moves": moves,
                "crossed": ", ".join(f.crossed),
                "detail": "; ".join([*f.schema, *f.notes]),
            }
        )
    return rows


def _r4(x: float | None) -> float | None:
    if x is None or not math.isfinite(x) or x == 0:
        return x
    return round(x, 3 - math.floor(math.log10(abs(x))))
