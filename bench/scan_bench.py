"""Model scan benchmark: `python bench/scan_bench.py [--rows 5000 100000] [--giskard PATH]`.

The same gradient-boosting pipeline (saved with joblib) and the same evaluation data, scanned
by Giskard 2.x (its `giskard.scan`, in its own venv: `bash ../shared/peers/install.sh giskard`)
and by `git mlm scan`, side by side in one run. For each size it prints:
  - Giskard's scan time (inside its process, model and data already loaded) and ours measured
    the same way, and `git mlm scan` as a new process (imports included), with the ratios;
  - every issue Giskard reports, and whether `git mlm scan` reports one of the same kind on the
    same feature(s);
  - what `git mlm scan` reports that Giskard cannot (contamination, overfitting).

The data has planted problems: noisy labels where region == "north", a feature the label does
not depend on at training time but the model was given a shortcut through ("promo"), evaluation
rows copied from the training data. Target: >= 10x faster at equal or better findings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

from gitmlm.scan import engine
from gitmlm.scan.context import Options

GISKARD = Path("/tmp/gitmlm-peers/giskard/bin/python")
NUMERIC = ["age", "income", "tenure", "calls"]
CATEGORICAL = ["region", "plan", "promo"]
# Giskard's issue groups and the detector of ours that looks for the same thing.
KINDS = {
    "Performance": ("performance",),
    "Robustness": ("robustness",),
    "Overconfidence": ("overconfidence", "calibration"),
    "Underconfidence": ("underconfidence", "calibration"),
    "Spurious Correlation": ("shortcut",),
    "Stochasticity": ("stochasticity",),
    "Data Leakage": ("batch dependence",),
}

# Fitting happens in Giskard's venv (its numpy is older: a pickle made by a newer numpy does not
# load there, while ours loads its pickle), so both scan the very same fitted model.
FIT_SCRIPT = r"""
import json, sys
import joblib, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
train_path, model_path = sys.argv[1:3]
numeric, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
train = pd.read_csv(train_path)
pre = ColumnTransformer(
    [("num", "passthrough", numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
)
model = Pipeline([("pre", pre), ("gb", GradientBoostingClassifier(random_state=0))])
model.fit(train[numeric + categorical], train["churn"])
joblib.dump(model, model_path)
"""

GISKARD_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import joblib, pandas as pd
import giskard
model_path, data_path, out_path = sys.argv[1:4]
numeric, categorical = json.loads(sys.argv[4]), json.loads(sys.argv[5])
df = pd.read_csv(data_path)
pipe = joblib.load(model_path)
features = numeric + categorical
model = giskard.Model(
    model=lambda d: pipe.predict_proba(d[features]),
    model_type="classification",
    classification_labels=[0, 1],
    feature_names=features,
)
dataset = giskard.Dataset(df, target="churn", cat_columns=categorical)
started = time.perf_counter()
report = giskard.scan(model, dataset, raise_exceptions=True, verbose=False)
seconds = time.perf_counter() - started
issues = []
for issue in report.issues:
    issues.append({
        "group": issue.group.name,
        "level": str(getattr(issue.level, "value", issue.level)),
        "features": list(issue.features or []),
        "slice": str(issue.slicing_fn) if issue.slicing_fn is not None else "",
        "metric": str(issue.meta.get("metric", "")),
        "deviation": str(issue.meta.get("deviation", "")),
        "detector": issue.detector_name or "",
    })
json.dump({"seconds": seconds, "issues": issues}, open(out_path, "w"))
"""


def make(n: int, seed: int, train: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n).round(1),
            "income": rng.lognormal(10, 0.5, n).round(0),
            "tenure": rng.integers(0, 120, n),
            "calls": rng.poisson(3, n),
            "region": rng.choice(["north", "south", "east", "west"], n, p=[0.25, 0.35, 0.2, 0.2]),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
            "promo": rng.choice(["yes", "no"], n, p=[0.15, 0.85]),
        }
    )
    z = (
        0.04 * (df.age - 45)
        - 0.5 * (np.log(df.income) - 10)
        - 0.02 * (df.tenure - 60)
        + 0.15 * (df.calls - 3)
        + df.plan.map({"basic": 0.5, "plus": 0.0, "pro": -0.7})
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int)
    if train:
        y = np.where(df.promo == "yes", 1, y)  # a shortcut: in training, promo meant churn
    else:
        north = (df.region == "north") & (rng.random(n) < 0.5)
        y = np.where(north, 1 - y, y)  # noisy labels on one slice
    df["churn"] = y
    return df


def fit(train: Path, model: Path, python: Path) -> None:
    script = train.parent / "fit.py"
    script.write_text(FIT_SCRIPT)
    subprocess.run(
        [
            str(python),
            str(script),
            str(train),
            str(model),
            json.dumps(NUMERIC),
            json.dumps(CATEGORICAL),
        ],
        check=True,
    )


def giskard_scan(model: Path, data: Path, work: Path, python: Path) -> dict[str, Any]:
    script = work / "giskard_scan.py"
    script.write_text(GISKARD_SCRIPT)
    out = work / "giskard.json"
    env = {**os.environ, "GSK_DISABLE_ANALYTICS": "True", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    proc = subprocess.run(
        [
            str(python),
            str(script),
            str(model),
            str(data),
            str(out),
            json.dumps(NUMERIC),
            json.dumps(CATEGORICAL),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"giskard failed:\n{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["wall"] = wall
    return doc


def ours_in_process(model: Path, data: Path, train: Path) -> tuple[float, engine.Result]:
    import sklearn.ensemble  # noqa: F401  imported before timing, as Giskard's process does

    request = engine.Request(str(model), data, "churn", train=[str(train)], options=Options())
    started = time.perf_counter()
    result = engine.scan(None, request)
    return time.perf_counter() - started, result


def ours_cli(model: Path, data: Path, train: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gitmlm",
            "scan",
            str(model),
            str(data),
            "--target",
            "churn",
            "--train",
            str(train),
            "--no-record",
            "--format",
            "json",
        ],
        capture_output=True,
        env=env,
        cwd=data.parent,
    )
    return time.perf_counter() - started


def matches(issue: dict[str, Any], result: engine.Result) -> str:
    """Whether ours reports the same kind of problem on the same slice (Giskard's slice text
    without its backticks), else on a slice of the same feature(s); with our severity."""
    kinds = KINDS.get(issue["group"], ())
    same_kind = [f for f in result.findings if f.detector in kinds]
    wanted = issue["slice"].replace("`", "").replace(" AND ", " & ")
    for f in same_kind:
        if f.slice == wanted or (not wanted and not f.slice):
            return f"yes, same slice ({f.severity})"
    features = set(issue["features"])
    for f in same_kind:
        if features and f.slice and all(w in f.slice for w in features):
            return f"same feature, other slice: {f.severity} {f.slice}"[:60]
    return "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 100_000])
    parser.add_argument("--giskard", type=Path, default=GISKARD)
    args = parser.parse_args()
    if not args.giskard.exists():
        raise SystemExit(f"{args.giskard} not found: bash ../shared/peers/install.sh giskard")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train = make(20_000, 1, train=True)
        train.to_csv(work / "train.csv", index=False)
        fit(work / "train.csv", work / "model.joblib", args.giskard)
        for n in args.rows:
            data = make(n, 2, train=False)
            copied = train.sample(n // 20, random_state=0)  # 5% of rows seen in training
            data = pd.concat([data.iloc[: n - len(copied)], copied], ignore_index=True)
            path = work / f"eval_{n}.csv"
            data.to_csv(path, index=False)
            print(f"\n=== {n:,} rows, gradient boosting (100 trees), same model and data ===")
            gk = giskard_scan(work / "model.joblib", path, work, args.giskard)
            ours_s, result = ours_in_process(work / "model.joblib", path, work / "train.csv")
            cli_s = ours_cli(work / "model.joblib", path, work / "train.csv")
            print(f"giskard.scan             {gk['seconds']:8.2f} s   (process {gk['wall']:.1f} s)")
            print(
                f"gitmlm scan (in process) {ours_s:8.2f} s   ratio {gk['seconds'] / ours_s:6.1f}x"
                "   (reading the CSVs and unpickling the model included)"
            )
            print(
                f"git mlm scan (new proc.) {cli_s:8.2f} s   ratio {gk['wall'] / cli_s:6.1f}x"
                " (process against process)"
            )
            counts = {s: result.count(s) for s in ("major", "medium", "minor")}
            print(f"giskard issues: {len(gk['issues'])}; ours: {counts}")
            print("\nissue reported by Giskard                                   | level  | ours?")
            for issue in gk["issues"]:
                what = f"{issue['group']}: {issue['slice'] or ', '.join(issue['features'])}"
                print(f"{what[:60]:60} | {issue['level']:6} | {matches(issue, result)}")
            only = sorted(
                {f.detector for f in result.findings if f.severity != "minor"}
                - {d for ks in KINDS.values() for d in ks}
            )
            print(f"\nmajor/medium kinds only git mlm scan reports: {', '.join(only) or 'none'}")
            for f in result.findings:
                if f.severity != "minor":
                    print(f"  ours {f.severity:6} {f.detector:14} {f.message[:90]}")


if __name__ == "__main__":
    main()
