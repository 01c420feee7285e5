from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
import tomli_w

from gitmlm.errors import MlmError
from gitmlm.stats.drift import (
    DEFAULT_THRESHOLDS,
    DriftReport,
    chi2_sf,
    compare,
    report_rows,
)
from gitmlm.stats.profile import Profile, build_profile
from gitmlm.stats.quality import auc, window_latency, window_quality

N = 200_000
MIX = ["a", "b", "c", "d"]
P_MIX = [0.5, 0.3, 0.15, 0.05]


def _data(rng: np.random.Generator, shifted: bool) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            # Same distribution on both sides: must not be flagged.
            "normal": rng.normal(10, 2, N),
            "uniform": rng.uniform(0, 1, N),
            "integer": rng.poisson(3, N),
            "lognormal": rng.lognormal(0, 1, N),
            "category": rng.choice(MIX, N, p=P_MIX),
            # Shifted on the serving side.
            "normal_shift": rng.normal(10, 2, N),
            "integer_shift": rng.poisson(4, N),
            "lognormal_shift": rng.lognormal(0, 1, N),
            "category_reversed": rng.choice(MIX, N, p=P_MIX),
            "category_new": rng.choice(MIX, N, p=P_MIX),
            "nulls": rng.normal(0, 1, N),
            "score": rng.uniform(0, 1, N),
        }
    )
    if shifted:
        df["normal_shift"] += 0.5 * 2
        df["integer_shift"] += 1  # 0.5σ of a Poisson(4)
        df["lognormal_shift"] += 0.5 * math.sqrt((math.e - 1) * math.e)
        df["category_reversed"] = rng.choice(MIX, N, p=P_MIX[::-1])
        new = rng.random(N) < 0.03
        df.loc[new, "category_new"] = "zzz"
        df.loc[rng.random(N) < 0.2, "nulls"] = np.nan
    return df


@pytest.fixture(scope="module")
def profiles() -> tuple[Profile, Profile]:
    rng = np.random.default_rng(0)
    reference = build_profile(_data(rng, shifted=False))
    # Two chunks, as read_frames would give them.
    serving_df = _data(rng, shifted=True)
    chunks = [serving_df.iloc[: N // 2], serving_df.iloc[N // 2 :]]
    return reference, build_profile(chunks, reference=reference)


@pytest.fixture(scope="module")
def report(profiles: tuple[Profile, Profile]) -> DriftReport:
    return compare(*profiles, prediction="score")


@pytest.mark.parametrize("name", ["normal", "uniform", "integer", "lognormal", "category", "score"])
def test_no_false_alarm_at_large_n(report: DriftReport, name: str) -> None:
    f = report.feature(name)
    assert f.status == "ok", f
    # With margin: every score well under its threshold.
    for check in ("psi", "js", "wasserstein", "linf", "out_of_range", "unseen_share"):
        value = getattr(f, check)
        if value is not None:
            assert value < DEFAULT_THRESHOLDS[check] / 3, (name, check, value)


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("normal_shift", "wasserstein"),
        ("integer_shift", "wasserstein"),
        ("lognormal_shift", "psi"),
        ("category_reversed", "linf"),
        ("category_new", "unseen_share"),
        ("nulls", "null_rate_delta"),
    ],
)
def test_drift_is_flagged(report: DriftReport, name: str, check: str) -> None:
    f = report.feature(name)
    assert f.status == "DRIFT"
    assert check in f.crossed


def test_shift_scores_and_moves(report: DriftReport) -> None:
    shift = report.feature("normal_shift")
    assert shift.wasserstein == pytest.approx(0.5, abs=0.05)
    assert shift.psi is not None and shift.psi > DEFAULT_THRESHOLDS["psi"]
    assert shift.js is not None and shift.js > DEFAULT_THRESHOLDS["js"]
    # The top bin gained most: moves name bins as value ranges.
    assert shift.top_moves[0].label.endswith("]") and shift.top_moves[0].now > 0.1
    new = report.feature("category_new")
    assert new.unseen_values == ["zzz"]
    assert new.unseen_share == pytest.approx(0.03, abs=0.003)
    assert new.top_moves[0].label == "zzz"
    reversed_ = report.feature("category_reversed")
    assert {m.label for m in reversed_.top_moves[:2]} == {"a", "d"}
    nulls = report.feature("nulls")
    assert nulls.null_rate_ref == 0.0
    assert nulls.null_rate_now == pytest.approx(0.2, abs=0.01)
    assert report.flagged
    assert report.prediction == "score" and report.feature("score").role == "prediction"


def test_report_is_json_and_toml_safe_and_flat(report: DriftReport) -> None:
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert tomllib.loads(tomli_w.dumps(d))["flagged"] is True
    rows = report_rows(report)
    assert len(rows) == len(report.features)
    expected = {
        "feature",
        "kind",
        "status",
        "psi",
        "js",
        "wasserstein",
        "linf",
        "null_rate_ref",
        "null_rate_now",
        "out_of_range",
        "unseen",
        "top_moves",
    }
    assert expected <= rows[0].keys()
    row = next(r for r in rows if r["feature"] == "category_new")
    assert row["status"] == "DRIFT" and "zzz: 0.0% -> 3." in str(row["top_moves"])


def test_thresholds_override_per_feature_and_default(profiles: tuple[Profile, Profile]) -> None:
    loose = {"wasserstein": 10.0, "psi": 10.0, "js": 10.0, "linf": 10.0}
    r = compare(*profiles, {"normal_shift": loose})
    assert r.feature("normal_shift").status == "ok"
    assert r.feature("integer_shift").status == "DRIFT"
    r = compare(*profiles, {"*": {"null_rate_delta": 0.5}})
    assert "null_rate_delta" not in r.feature("nulls").crossed
    r = compare(*profiles, {"*": {"wasserstein": 0.001}})
    assert "wasserstein" in r.feature("normal").crossed
    with pytest.raises(MlmError, match="unknown threshold 'psii'"):
        compare(*profiles, {"*": {"psii": 0.1}})
    r = compare(*profiles, {"no_such_feature": {"psi": 0.1}})
    assert any("no_such_feature" in w for w in r.warnings)


def test_pvalues_come_with_a_large_n_warning(profiles: tuple[Profile, Profile]) -> None:
    r = compare(*profiles, pvalues=True)
    shifted = r.feature("normal_shift")
    assert shifted.pvalue is not None and shifted.pvalue < 1e-10
    assert "pvalue" in shifted.crossed
    assert r.feature("normal").pvalue is not None
    assert any("p-values" in w for w in r.warnings)
    assert compare(*profiles).feature("normal").pvalue is None


def test_chi2_survival_function() -> None:
    # Reference values from scipy.stats.chi2.sf.
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(18.307038053275146, 10) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(0.5, 3) == pytest.approx(0.9188914116546758, rel=1e-9)
    assert chi2_sf(30, 2) == pytest.approx(3.0590232050182594e-07, rel=1e-9)
    assert chi2_sf(100, 20) == pytest.approx(1.2596084591660847e-12, rel=1e-6)


def test_serving_without_any_training_column() -> None:
    ref = build_profile(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}))
    cur = build_profile(pd.DataFrame({"A": [1.0, 2.0], "B": ["x", "y"]}), reference=ref)
    r = compare(ref, cur)
    assert r.flagged
    assert [f.status for f in r.features] == ["SCHEMA"] * 4
    assert r.feature("a").schema == ["missing from serving data"]
    assert r.feature("A").schema == ["not in training data"]
    assert any("none of the training columns" in w for w in r.warnings)


def test_numeric_column_turned_into_text() -> None:
    rng = np.random.default_rng(0)
    ref = build_profile(pd.DataFrame({"age": rng.integers(18, 90, 1000)}))
    text = pd.DataFrame({"age": [f"{v} years" for v in rng.integers(18, 90, 1000)]})
    r = compare(ref, build_profile(text, reference=ref))
    f = r.feature("age")
    assert f.status == "SCHEMA"
    assert f.schema == ["kind changed: numeric (int64) -> categorical (str)"]


def test_all_null_serving_column() -> None:
    rng = np.random.default_rng(0)
    ref = build_profile(pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(MIX, 1000)}))
    # Missing text read as float NaN, missing numbers as None: neither is a change of kind.
    empty = pd.DataFrame({"x": pd.Series([None] * 500, dtype=object), "c": [np.nan] * 500})
    cur = build_profile(empty, reference=ref)
    assert cur.columns["x"].kind == "numeric" and cur.columns["c"].kind == "categorical"
    r = compare(ref, cur)
    for name in ("x", "c"):
        f = r.feature(name)
        assert f.status == "DRIFT" and f.crossed == ["null_rate_delta"]
        assert f.null_rate_now == 1.0 and f.psi is None


def test_serving_profile_not_built_against_the_reference() -> None:
    rng = np.random.default_rng(0)
    ref = build_profile(pd.DataFrame({"x": rng.normal(0, 1, 50_000)}))
    same = build_profile(pd.DataFrame({"x": rng.normal(0, 1, 50_000)}))
    moved = build_profile(pd.DataFrame({"x": rng.normal(0.5, 1, 50_000)}))
    assert compare(ref, same).feature("x").status == "ok"
    f = compare(ref, moved).feature("x")
    assert f.status == "DRIFT" and {"psi", "wasserstein"} <= set(f.crossed)
    assert any("estimated" in n for n in f.notes)


def test_out_of_range_share() -> None:
    ref = build_profile(pd.DataFrame({"x": np.linspace(0, 10, 1001)}))
    cur = build_profile(pd.DataFrame({"x": np.linspace(5, 15, 1001)}), reference=ref)
    f = compare(ref, cur).feature("x")
    assert f.out_of_range == pytest.approx(500 / 1001)
    assert "out_of_range" in f.crossed


def test_prediction_column_must_exist(profiles: tuple[Profile, Profile]) -> None:
    with pytest.raises(MlmError, match="prediction column 'nope'"):
        compare(*profiles, prediction="nope")


# ---------------------------------------------------------------------------------------------
# Windows


def test_auc_by_ranks() -> None:
    truth = np.array([True, True, False, False])
    assert auc(truth, np.array([0.9, 0.8, 0.3, 0.1])) == 1.0
    assert auc(truth, np.array([0.1, 0.3, 0.8, 0.9])) == 0.0
    assert auc(truth, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # One positive outranks one of the two negatives, the other outranks both: 3 of 4 pairs.
    assert auc(truth, np.array([0.9, 0.4, 0.5, 0.1])) == 0.75
    assert auc(np.array([True, True]), np.array([0.1, 0.2])) is None


def test_window_quality_classification() -> None:
    df = pd.DataFrame(
        {
            "t": pd.to_datetime(
                [
                    *("2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00"),
                    *("2024-01-01 13:00", "2024-01-02 09:00", "2024-01-02 10:00"),
                ]
            ),
            "y": [1, 1, 0, 0, 1, 0],
            "p": [0.9, 0.4, 0.5, 0.1, 0.8, 0.7],
        }
    )
    rows = window_quality(df, "y", "p", time="t", window="1d")
    assert [r["window"] for r in rows] == ["2024-01-01T00:00:00", "2024-01-02T00:00:00"]
    day1, day2 = rows
    assert day1["n"] == 4
    # Thresholded at 0.5: predictions 1, 0, 1, 0 against 1, 1, 0, 0.
    assert day1["accuracy"] == 0.5 and day1["f1"] == 0.5 and day1["auc"] == 0.75
    assert (day2["accuracy"], day2["auc"]) == (0.5, 1.0)
    everything = window_quality(df, "y", "p")
    assert everything[0]["window"] == "all" and everything[0]["n"] == 6


def test_window_quality_labels_multiclass_and_regression() -> None:
    df = pd.DataFrame({"y": ["cat", "dog", "dog", None], "p": ["cat", "dog", "cat", "dog"]})
    (row,) = window_quality(df, "y", "p")
    assert (row["n"], row["dropped"], row["accuracy"]) == (3, 1, 2 / 3)
    assert row["f1"] == pytest.approx(2 / 3)  # positive class "dog": tp 1, fn 1, fp 0
    three = pd.DataFrame({"y": [0, 1, 2, 2], "p": [0, 1, 1, 2]})
    (row,) = window_quality(three, "y", "p")
    assert row["accuracy"] == 0.75 and row["auc"] is None
    assert row["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    reg = pd.DataFrame({"y": [1.0, 2.0, 3.0], "p": [1.5, 2.0, 2.0]})
    (row,) = window_quality(reg, "y", "p")
    assert row["mae"] == pytest.approx(0.5)
    assert row["rmse"] == pytest.approx(math.sqrt((0.25 + 1) / 3))
    with pytest.raises(MlmError, match="no column 'z'"):
        window_quality(reg, "z", "p")


def test_window_latency() -> None:
    df = pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=200, freq="30min"),
            "ms": np.concatenate([np.arange(1, 101), np.arange(1, 101) * 10]),
        }
    )
    rows = window_latency(df, "ms", time="t", window="2d", slo={"p95": 200})
    assert len(rows) == 3
    first = rows[0]  # 2024-01-01..02: 96 half-hours of 1..96
    assert first["n"] == 96 and first["p50"] == pytest.approx(48.5)
    assert first["slo_breached"] is False
    assert rows[1]["slo_breached"] is True and rows[1]["breaches"] == ["p95"]
    (whole,) = window_latency(df, "ms")
    assert whole["n"] == 200 and whole["slo_breached"] is False
    with pytest.raises(MlmError, match="unknown SLO p90"):
        window_latency(df, "ms", slo={"p90": 1.0})
    with pytest.raises(MlmError, match="bad window"):
        window_latency(df, "ms", time="t", window="soon")
