"""Model observation: serving data against the training profile of a model version's run.

`observe` reads the serving file once, in chunks: it profiles it on the training profile's bins
(`gitmlm.stats.profile`), keeps only the few columns quality and latency need, and compares
(`gitmlm.stats.drift`, `gitmlm.stats.quality`). `record` keeps a compact copy of the result as
a note on the model version's commit (`refs/notes/mlm-observations`, one table per observation
id, like run notes, so `git mlm sync` merges them by id); `history` reads them back.

Settings live in mlm.toml (all optional)::

    [monitor]
    ignore = ["request_id"]           # serving columns never compared
    slo = { p95 = 0.2 }               # latency SLO per window, in the latency column's unit

    [monitor.thresholds."*"]          # every feature (defaults: stats.drift.DEFAULT_THRESHOLDS)
    psi = 0.25
    [monitor.thresholds.age]          # one feature
    wasserstein = 0.2

    [monitor.quality]                 # realised quality per window: flagged when worse
    accuracy = 0.85                   # accuracy, f1, auc: a floor
    mae = 3.0                         # mae, rmse: a ceiling
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmlm.core import codec, config, ids, refs
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import Run
from gitmlm.errors import MlmError
from gitmlm.tracking import profiles as profile_store

if TYPE_CHECKING:
    import pandas as pd

    from gitmlm.models.ops import Resolved
    from gitmlm.partitions import source
    from gitmlm.stats.drift import DriftReport
    from gitmlm.stats.profile import Profile

EXIT_FLAGGED = 3
"""Exit code of `git mlm monitor` when a threshold, an SLO or a quality bound is crossed."""
HIGHER_IS_BETTER = ("accuracy", "f1", "auc")
LOWER_IS_BETTER = ("mae", "rmse")
# The run's metric shown beside a realised one: the first of these names the run logged.
TRAINING_NAMES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "acc", "val_accuracy", "val_acc", "test_accuracy", "test_acc"),
    "f1": ("f1", "f1_score", "val_f1", "test_f1"),
    "auc": ("auc", "roc_auc", "val_auc", "test_auc"),
    "mae": ("mae", "val_mae", "test_mae"),
    "rmse": ("rmse", "val_rmse", "test_rmse"),
    "bias": ("bias",),
}


# --- settings ----------------------------------------------------------------------------------


@dataclass
class Settings:
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    slo: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)


def settings(cfg: Mapping[str, Any]) -> Settings:
    """The [monitor] section of mlm.toml, checked; unknown names are clear errors."""
    section = cfg.get("monitor", {})
    if not isinstance(section, Mapping):
        raise MlmError(f"{config.FILE}: [monitor] must be a table")
    known = {"thresholds", "slo", "quality", "ignore"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise MlmError(
            f"{config.FILE}: unknown [monitor] key {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    thresholds = _table(section, "thresholds")
    for feature, entry in thresholds.items():
        if not isinstance(entry, Mapping):
            raise MlmError(
                f'{config.FILE}: [monitor.thresholds."{feature}"] must be a table, '
                'e.g. [monitor.thresholds."*"] psi = 0.2'
            )
    slo = {k: _number(f"[monitor] slo.{k}", v) for k, v in _table(section, "slo").items()}
    from_quality = _table(section, "quality")
    quality = {k: _number(f"[monitor.quality] {k}", v) for k, v in from_quality.items()}
    bad = sorted(set(quality) - set(HIGHER_IS_BETTER) - set(LOWER_IS_BETTER))
    if bad:
        known_q = ", ".join((*HIGHER_IS_BETTER, *LOWER_IS_BETTER))
        raise MlmError(
            f"{config.FILE}: [monitor.quality] {', '.join(bad)} is not a quality metric "
            f"(known: {known_q})"
        )
    ignore = section.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise MlmError(f'{config.FILE}: [monitor] ignore must be a list of column names: ["id"]')
    return Settings(
        thresholds={str(k): dict(v) for k, v in thresholds.items()},
        slo=slo,
        quality=quality,
        ignore=list(ignore),
    )


def _table(section: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = section.get(key, {})
    if not isinstance(value, Mapping):
        raise MlmError(f"{config.FILE}: [monitor] {key} must be a table")
    return value


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MlmError(f"{config.FILE}: {where} must be a number, not {value!r}")
    return float(value)


# --- what is monitored -------------------------------------------------------------------------


@dataclass
class Target:
    """The run whose training profile is the reference, and where observations are kept."""

    run: Run
    run_commits: list[str]
    commit: str
    """Observations go in the note on this commit: the model version's, else the run's."""
    model: str | None = None
    version: str | None = None
    stage: str | None = None

    @property
    def label(self) -> str:
        if self.model is None:
            return f"run {self.run.id[: ids.SHORT]}"
        where = f"#{self.stage} " if self.stage else " "
        return f"{self.model}{where}{self.version or ''}".strip()


def resolve_target(repo: Repo, model: str | None, run_id: str | None) -> Target:
    """MODEL[@vX|#STAGE] through the registry, and/or a run by id; the run gives the profile."""
    from gitmlm.tracking import record as tracking

    if model is None and run_id is None:
        raise MlmError("name a model version (churn#production, churn@v1.2.0) or a run (--run ID)")
    listing = tracking.list_runs(repo)
    version = stage = commit = name = None
    if model is not None:
        resolved = _registry_resolve(repo, model)
        name, version, stage, commit = (
            resolved.model,
            resolved.version,
            resolved.stage,
            resolved.commit,
        )
        if run_id is None:
            if not resolved.run:
                raise MlmError(
                    f"{name} {version} was registered without a run, so it has no training "
                    "profile; pass --run ID (the run that trained it)"
                )
            run_id = resolved.run
    assert run_id is not None
    run = tracking.resolve(listing, run_id)
    return Target(
        run=run,
        run_commits=listing.commits.get(run.id, []),
        commit=commit or run.commit,
        model=name,
        version=version,
        stage=stage,
    )


def _registry_resolve(repo: Repo, spec: str) -> Resolved:
    from gitmlm.models import ops as lifecycle

    return lifecycle.resolved(repo, spec)


# --- observing ---------------------------------------------------------------------------------


@dataclass
class Request:
    data: str | Path
    """A file, a folder of files (hive partitions too), a glob, or a URL (`s3://…`)."""
    dataset: str | None = None
    prediction: str | None = None
    labels: str | None = None
    time: str | None = None
    window: str | None = None
    latency: str | None = None
    pvalues: bool = False
    ignore: list[str] = field(default_factory=list)
    chunk_rows: int = 200_000
    engine: str = "local"
    """`spark`: the serving profile is computed file by file on a Spark cluster (`master`)."""
    master: str | None = None


@dataclass
class Result:
    target: Target
    dataset: str
    data: str | Path
    observed: str
    reference: Profile
    serving: Profile
    report: DriftReport
    quality: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, float] = field(default_factory=dict)
    """Realised-quality metric name -> the run's metric of that meaning, where it logged one."""
    warnings: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    """The thresholds of every feature without an override (for the report's legend)."""
    slo: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Why this result is flagged, one line each; empty when nothing crossed a limit."""
        out: list[str] = []
        drift = [f.feature for f in self.report.features if f.status == "DRIFT"]
        schema = [f.feature for f in self.report.features if f.status == "SCHEMA"]
        if drift:
            out.append(f"drift in {', '.join(drift)}")
        if schema:
            out.append(f"schema skew in {', '.join(schema)}")
        for row in self.quality:
            for metric in row.get("breaches", []):
                out.append(f"{metric} {_short(row.get(metric))} in window {day(row['window'])}")
        for row in self.latency:
            for p in row.get("breaches", []):
                out.append(f"latency {p} {_short(row.get(p))} in window {day(row['window'])}")
        return out

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def exit_code(self) -> int:
        return EXIT_FLAGGED if self.flagged else 0


def data_name(data: str | Path) -> str:
    """The last part of the serving data's name (a file, a folder, a URL): what a record keeps."""
    text = str(data).rstrip("/")
    return text.rsplit("/", 1)[-1] or text


def day(window: object) -> str:
    """`2024-01-05T00:00:00` reads as `2024-01-05`: daily windows start at midnight."""
    text = str(window)
    return text[:10] if text.endswith("T00:00:00") else text


def _short(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def observe(repo: Repo, target: Target, req: Request, cfg: Settings) -> Result:
    """Compare the serving data of `req` with the target run's training profile."""
    from gitmlm.partitions import profiling
    from gitmlm.stats.drift import DEFAULT_THRESHOLDS, compare

    profiling.check_engine(req.engine)
    dataset, reference = profile_store.load(repo, target.run, target.run_commits, req.dataset)
    if req.labels and not req.prediction:
        raise MlmError("--labels needs --prediction: the column holding the model's output")
    window = req.window
    if req.time and not window:
        window = "1d"
    if window and not req.time:
        raise MlmError("--window needs --time: the column holding each row's time")
    side = list(dict.fromkeys(c for c in (req.labels, req.prediction, req.time, req.latency) if c))
    # Operational columns are not features: the time always drifts, latency is not an input;
    # labels and predictions are compared only when training profiled them too.
    drop = {*cfg.ignore, *req.ignore}
    drop.update(c for c in (req.time, req.latency) if c)
    drop.update(c for c in (req.labels, req.prediction) if c and c not in reference.columns)
    for name in sorted({*cfg.ignore, *req.ignore} & set(reference.columns)):
        reference.columns.pop(name)  # ignored on both sides, not "missing from serving"
    serving, side_frame = _read_serving(repo, req, reference, side, drop)
    warnings: list[str] = []
    prediction = req.prediction if req.prediction in reference.columns else None
    if req.prediction and prediction is None:
        warnings.append(
            f"the training profile has no {req.prediction!r} column, so prediction drift is not "
            "measured: profile a frame that holds the model's predictions to get it"
        )
    report = compare(reference, serving, cfg.thresholds, pvalues=req.pvalues, prediction=prediction)
    extra = [c for c in serving.columns if c not in reference.columns]
    if extra:
        warnings.append(
            f"serving columns the training data lacks count as schema skew: {_names(extra)}; "
            "if they are not model inputs, name them with --labels, --prediction, --time or "
            "--latency, or leave them out with --ignore (or [monitor] ignore in mlm.toml)"
        )
    result = Result(
        target=target,
        dataset=dataset,
        data=req.data,
        observed=codec.now(),
        reference=reference,
        serving=serving,
        report=report,
        warnings=[*warnings, *report.warnings],
        thresholds={**DEFAULT_THRESHOLDS, **cfg.thresholds.get("*", {})},
    )
    if side_frame is not None:
        _performance(result, side_frame, req, window, cfg)
    return result


def _read_serving(
    repo: Repo, req: Request, reference: Profile, side: list[str], drop: set[str]
) -> tuple[Profile, pd.DataFrame | None]:
    import pandas as pd

    from gitmlm.partitions import source
    from gitmlm.stats.profile import build_profile

    data = source.resolve(repo, str(req.data))
    if req.engine != "local":
        return _read_serving_on(data, req, reference, side, drop)
    parts: list[pd.DataFrame] = []
    rows = 0
    read_all = False

    def chunks() -> Iterator[pd.DataFrame]:
        nonlocal rows, read_all
        for i, frame in enumerate(data.all_frames(req.chunk_rows)):
            if i == 0:
                _check_first(req.data, frame, reference, side, drop)
            rows += len(frame)
            if side:
                parts.append(frame[side].copy())
            gone = [c for c in frame.columns if c in drop]
            yield frame.drop(columns=gone) if gone else frame
        read_all = True

    try:
        serving = build_profile(chunks(), reference=reference)
    except MlmError as exc:
        if read_all and rows == 0:
            raise MlmError(
                f"{req.data}: no data rows (a header only?); nothing to monitor"
            ) from exc
        raise
    side_frame = pd.concat(parts, ignore_index=True) if parts else None
    return serving, side_frame


def _read_serving_on(
    data: source.Source, req: Request, reference: Profile, side: list[str], drop: set[str]
) -> tuple[Profile, pd.DataFrame | None]:
    """The serving profile from a cluster; the checks of the first chunk and the side columns
    (labels, predictions, times, latencies: a few columns) are read here."""
    import pandas as pd

    from gitmlm.partitions import profiling

    first = next(data.frames(0, req.chunk_rows), None)
    if first is None:
        raise MlmError(f"{req.data}: no data rows (a header only?); nothing to monitor")
    _check_first(req.data, first, reference, side, drop)
    serving = profiling.profile(
        data,
        engine=req.engine,
        master=req.master,
        reference=reference,
        drop=sorted(drop),
        chunk_rows=req.chunk_rows,
    )
    side_frame = None
    if side:
        frames = [f for i in range(len(data.files)) for f in data.frames(i, columns=side)]
        side_frame = pd.concat(frames, ignore_index=True)
    return serving, side_frame


def _check_first(
    path: str | Path, frame: pd.DataFrame, reference: Profile, side: list[str], drop: set[str]
) -> None:
    have = [str(c) for c in frame.columns]
    missing = [c for c in side if c not in have]
    if missing:
        raise MlmError(f"{path}: no column {', '.join(map(repr, missing))} (has: {_names(have)})")
    features = [c for c in have if c not in drop]
    if reference.columns and not set(features) & set(reference.columns):
        raise MlmError(
            f"{path} has none of the training columns ({_names(list(reference.columns))}); "
            f"it has {_names(have)}: is it the right file, with a header row?"
        )


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _performance(
    result: Result, df: pd.DataFrame, req: Request, window: str | None, cfg: Settings
) -> None:
    from gitmlm.stats.quality import window_latency, window_quality

    if req.labels and req.prediction:
        rows = window_quality(df, req.labels, req.prediction, req.time, window)
        for row in rows:
            breaches = []
            for metric, bound in cfg.quality.items():
                value = row.get(metric)
                if not isinstance(value, float) or not math.isfinite(value):
                    continue
                worse = value < bound if metric in HIGHER_IS_BETTER else value > bound
                if worse:
                    breaches.append(metric)
            row["breaches"] = breaches
        result.quality = rows
        logged = result.target.run.metrics
        for metric, names in TRAINING_NAMES.items():
            if not any(metric in row for row in rows):
                continue
            found = next((n for n in names if n in logged), None)
            if found is not None:
                result.training[metric] = logged[found]
    if req.latency:
        result.latency = window_latency(df, req.latency, req.time, window, cfg.slo)
        result.slo = dict(cfg.slo)


# --- recording and history ---------------------------------------------------------------------

FEATURE_KEYS = (
    "status",
    "psi",
    "js",
    "wasserstein",
    "linf",
    "null_rate_ref",
    "null_rate_now",
    "out_of_range",
    "unseen_share",
)


def observation(result: Result) -> dict[str, Any]:
    """The compact record `--record` keeps: per feature its scores and status, the quality and
    latency rows, which file, how many rows, when."""
    t = result.target
    doc: dict[str, Any] = {
        "observed": result.observed,
        "model": t.model,
        "version": t.version,
        "stage": t.stage,
        "run": t.run.id,
        "dataset": result.dataset,
        "data": data_name(result.data),
        "rows": result.serving.rows,
        "reference_rows": result.reference.rows,
        "flagged": result.flagged,
        "reasons": result.reasons,
    }
    features: dict[str, Any] = {}
    for f in result.report.features:
        entry: dict[str, Any] = {}
        for key in FEATURE_KEYS:
            value = getattr(f, key)
            if value is not None:
                entry[key] = _round(value) if isinstance(value, float) else value
        if f.role != "feature":
            entry["role"] = f.role
        if f.crossed:
            entry["crossed"] = list(f.crossed)
        features[f.feature] = entry
    doc["features"] = features
    if result.quality:
        doc["quality"] = [_compact(r) for r in result.quality]
    if result.training:
        doc["training"] = {k: _round(v) for k, v in result.training.items()}
    if result.latency:
        doc["latency"] = [_compact(r) for r in result.latency]
    return {k: v for k, v in doc.items() if v is not None}


def _round(x: float) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, 3 - math.floor(math.log10(abs(x))))


def _compact(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            continue  # TOML has no null; a missing key reads as "not measured"
        out[k] = _round(v) if isinstance(v, float) else v
    return out


def record(repo: Repo, result: Result) -> str:
    """Keep `result` as a note on the target's commit; returns the observation id."""
    oid = ids.new_run_id()
    what = result.target.label
    store.put_runs(
        repo,
        refs.OBSERVATIONS,
        result.target.commit,
        {oid: observation(result)},
        f"gitmlm: observe {what} on {data_name(result.data)}",
    )
    return oid


@dataclass
class Observation:
    id: str
    commit: str
    doc: dict[str, Any]

    @property
    def observed(self) -> str:
        return str(self.doc.get("observed", ""))


def history(repo: Repo, spec: str | None = None, run_id: str | None = None) -> list[Observation]:
    """Recorded observations of a model (any version, or the one `spec` names) or of a run,
    oldest first."""
    if spec is None and run_id is None:
        raise MlmError("name a model (churn, churn@v1.2.0, churn#production) or a run (--run ID)")
    model = version = None
    if spec is not None:
        from gitmlm.core import tags

        parsed = tags.parse_spec(spec)
        model, version = parsed.model, parsed.version
        if parsed.stage is not None:
            version = _registry_resolve(repo, spec).version
    snap = store.snapshot(repo, refs.OBSERVATIONS)
    out: list[Observation] = []
    for commit, doc in store.read_all(repo, snap).items():
        for oid, table in doc.items():
            if model is not None and table.get("model") != model:
                continue
            if version is not None and table.get("version") != version:
                continue
            if run_id is not None and not str(table.get("run", "")).startswith(run_id.lower()):
                continue
            out.append(Observation(oid, commit, table))
    for commit, problem in snap.errors:
        raise MlmError(f"the observation note on {commit[:12]} is not valid: {problem}")
    out.sort(key=lambda o: (o.observed, o.id))
    return out
