"""One scan: read the evaluation data, get the model's answers, run every detector.

`scan()` returns a `Result` and writes nothing; `gitmlm.scan.record` keeps it as a note.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitmlm.core import codec
from gitmlm.core import digest as artifact_digest
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.scan import loading, slices, source
from gitmlm.scan.context import Context, Options
from gitmlm.scan.detectors import (
    confidence,
    contamination,
    overfitting,
    parity,
    performance,
    robustness,
    shortcut,
    stochasticity,
)
from gitmlm.scan.findings import RANK, Finding, ordered

EXIT_FINDINGS = 3
# In this order: stochasticity first, since robustness means nothing for a random model.
DETECTORS: dict[str, Callable[[Context], list[Finding]]] = {
    "stochasticity": stochasticity.detect,
    "performance": performance.detect,
    "confidence": confidence.detect,
    "robustness": robustness.detect,
    "contamination": contamination.detect,
    "overfitting": overfitting.detect,
    "shortcut": shortcut.detect,
    "parity": parity.detect,
}
MAX_CLASSES_FOR_CLASSIFICATION = 20


@dataclass
class Request:
    model: str
    data: Path
    target: str
    predict: str | None = None
    prediction: str | None = None
    proba: str | None = None
    artifact: str | None = None
    trust: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    train: list[str] = field(default_factory=list)
    options: Options = field(default_factory=Options)


@dataclass
class Limits:
    max_major: int | None = 0
    max_medium: int | None = None
    max_minor: int | None = None

    def exceeded(self, findings: list[Finding] | list[dict[str, Any]]) -> list[str]:
        """Which limits the findings exceed, one line each."""
        out = []
        for severity, limit in (
            ("major", self.max_major),
            ("medium", self.max_medium),
            ("minor", self.max_minor),
        ):
            n = sum(1 for f in findings if _severity(f) == severity)
            if limit is not None and n > limit:
                out.append(f"{n} {severity} finding(s), at most {limit} allowed")
        return out


def _severity(f: Finding | dict[str, Any]) -> str:
    return f.severity if isinstance(f, Finding) else str(f.get("severity", ""))


@dataclass
class Result:
    subject: source.Subject
    data: Path
    data_digest: str
    target: str
    task: str
    rows: int
    findings: list[Finding]
    notes: list[str]
    kind: str
    """How the model answered: skops, joblib, pickle, onnx, function, or columns."""
    seconds: float
    seed: int
    detectors: list[str]
    scanned: str = field(default_factory=codec.now)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


def scan(repo: Repo | None, req: Request, progress: Callable[[str], None] | None = None) -> Result:
    started = time.perf_counter()
    tell = progress or (lambda _msg: None)
    if req.predict and (req.prediction or req.proba):
        raise MlmError("give either --predict or --prediction/--proba, not both")
    asked = req.options.detectors or list(DETECTORS)
    unknown = [d for d in asked if d not in DETECTORS]
    if unknown:
        raise MlmError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}")
    wanted = [d for d in DETECTORS if d in asked]
    subject = _subject(repo, req)
    data_path = _data_path(repo, req.data)
    tell(f"reading {data_path}")
    frame = source.read_table(data_path)
    _check_target(frame, req.target)
    predictor, kind = _predictor(repo, req, subject)
    features = _features(frame, req, predictor)
    x = frame[features]
    y = frame[req.target].to_numpy()
    if pd.isna(frame[req.target]).any():
        raise MlmError(
            f"target column {req.target!r} has {frame[req.target].isna().sum()} empty values"
        )
    tell(f"predicting {len(frame):,} rows ({kind})")
    pred, proba, classes, task = _answers(frame, x, y, req, predictor)
    _check_classes(task, y, req.target)
    sliceable = list(dict.fromkeys([*features, *[s for s in req.options.sensitive if s in frame]]))
    missing_sensitive = [s for s in req.options.sensitive if s not in frame]
    if missing_sensitive:
        raise MlmError(f"sensitive column(s) {', '.join(missing_sensitive)} are not in {data_path}")
    ctx = Context(
        frame=frame,
        X=x,
        target=req.target,
        y=y,
        pred=pred,
        task=task,
        options=req.options,
        columns=[],
        proba=proba,
        classes=classes,
        predictor=predictor,
    )
    ctx.columns = slices.columns(frame, sliceable, ctx.min_support)
    train = source.training(repo, subject.run, req.train, data_path)
    ctx.training = train.frames
    ctx.notes += [f"training data: {u}" for u in train.used]
    ctx.notes += [f"training data not used: {s}" for s in train.skipped]
    ctx.run_metrics = dict(subject.run.metrics) if subject.run else {}
    found: list[Finding] = []
    for name in wanted:
        tell(f"detector {name}")
        found += DETECTORS[name](ctx)
    digest = artifact_digest.of_file(data_path)
    return Result(
        subject,
        data_path,
        digest,
        req.target,
        task,
        len(frame),
        ordered(found),
        ctx.notes,
        kind,
        time.perf_counter() - started,
        req.options.seed,
        wanted,
    )


def _subject(repo: Repo | None, req: Request) -> source.Subject:
    """The model scanned. With answers from a function or from columns, MODEL still names the
    version (or run) the note is kept on; any other name is only a label and nothing is kept."""
    answered = bool(req.predict or req.prediction or req.proba)
    if not answered:
        return source.resolve(repo, req.model, req.artifact)
    if repo is not None and not Path(req.model).is_file():
        try:
            return source.resolve(repo, req.model, req.artifact, read=False)
        except MlmError:
            if source.is_model(repo, req.model):
                raise  # a registered model's missing version is an error, not a label
    return source.Subject(req.model, "", b"", "", "function" if req.predict else "columns")


def _data_path(repo: Repo | None, data: Path) -> Path:
    """A file, or the name of a declared dataset whose path is one file."""
    if data.exists() or repo is None:
        return data
    from gitmlm.core import config
    from gitmlm.data import spec as dataspec

    for s in dataspec.declared(repo.workdir, config.load(repo.workdir)):
        if s.name == str(data):
            p = repo.workdir / s.path
            files = source._tables(p)
            if len(files) != 1:
                raise MlmError(f"dataset {s.name} is {len(files)} files; scan one file of it")
            return files[0]
    raise MlmError(f"{data}: no such file or declared dataset")


def _check_target(frame: pd.DataFrame, target: str) -> None:
    if len(frame) == 0:
        raise MlmError("the evaluation data has no rows")
    if target not in frame.columns:
        close = difflib.get_close_matches(target, [str(c) for c in frame.columns], 3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MlmError(f"no target column {target!r} in the data{hint}")


def _check_classes(task: str, y: np.ndarray, target: str) -> None:
    values = pd.unique(pd.Series(y))
    if len(values) < 2:
        raise MlmError(
            f"target {target!r} has a single value ({values[0]!r}): nothing to measure the "
            "model against"
        )


def _predictor(
    repo: Repo | None, req: Request, subject: source.Subject
) -> tuple[loading.Predictor | None, str]:
    if req.prediction or req.proba:
        return None, "columns"
    if req.predict:
        root = repo.workdir if repo is not None else Path.cwd()
        return loading.function(req.predict, root), "function"
    pred = loading.load(subject.path, subject.content, req.trust)
    return pred, pred.kind


def _features(frame: pd.DataFrame, req: Request, pred: loading.Predictor | None) -> list[str]:
    for col in req.ignore:
        if col not in frame.columns:
            raise MlmError(f"--ignore {col}: no such column in the data")
    if pred is not None and pred.features is not None:
        missing = [c for c in pred.features if c not in frame.columns]
        if missing:
            raise MlmError(
                f"the model needs column(s) the data lacks: {', '.join(missing[:10])}"
                + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            )
        return list(pred.features)
    skip = {req.target, req.prediction, req.proba, *req.ignore}
    return [str(c) for c in frame.columns if c not in skip]


def _answers(
    frame: pd.DataFrame,
    x: pd.DataFrame,
    y: np.ndarray,
    req: Request,
    predictor: loading.Predictor | None,
) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None, str]:
    labels = sorted(pd.unique(pd.Series(y)).tolist(), key=str)
    if predictor is None:
        return _columns(frame, y, req, labels)
    if predictor.kind == "function":
        loading.settle(predictor, x.head(50), labels)
    try:
        pred = np.asarray(predictor.predict(x))
        proba = predictor.proba(x) if predictor.proba is not None else None
    except MlmError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MlmError(f"the model failed to predict the data: {first[:300]}") from exc
    if pred.shape[0] != len(frame):
        raise MlmError(f"the model returned {pred.shape[0]} answers for {len(frame)} rows")
    classes = predictor.classes
    if proba is not None and classes is None and proba.shape[1] == len(labels):
        classes = labels
    if proba is not None and classes is not None and len(classes) == proba.shape[1]:
        return pred, proba, list(classes), "classification"
    return pred, None, None, _task_of(y, pred)


def _columns(
    frame: pd.DataFrame, y: np.ndarray, req: Request, labels: list[Any]
) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None, str]:
    for col in (req.prediction, req.proba):
        if col and col not in frame.columns:
            raise MlmError(f"no column {col!r} in the data")
    proba = None
    classes = None
    if req.proba:
        if len(labels) != 2:
            raise MlmError(f"--proba needs a two-class target; {req.target!r} has {len(labels)}")
        p1 = frame[req.proba].to_numpy(dtype=float)
        if np.nanmin(p1) < 0 or np.nanmax(p1) > 1:
            raise MlmError(f"--proba {req.proba}: values must be probabilities in [0, 1]")
        proba = np.stack([1 - p1, p1], axis=1)
        classes = labels
    if req.prediction:
        pred = frame[req.prediction].to_numpy()
    else:
        assert proba is not None and classes is not None
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        if np.asarray(labels).dtype.kind in "iufb":
            pred = pred.astype(np.asarray(labels).dtype)
    task = "classification" if proba is not None else _task_of(y, pred)
    return pred, proba, classes, task


def _task_of(y: np.ndarray, pred: np.ndarray) -> str:
    if y.dtype.kind not in "iuf" or pred.dtype.kind not in "iuf":
        return "classification"
    if y.dtype.kind in "iu" and len(np.unique(y)) <= MAX_CLASSES_FOR_CLASSIFICATION:
        return "classification"
    return "regression"


def above(result: Result, limits: Limits) -> list[str]:
    return limits.exceeded(result.findings)


def worst(findings: list[Finding]) -> str:
    return min((f.severity for f in findings), key=lambda s: RANK[s], default="none")
