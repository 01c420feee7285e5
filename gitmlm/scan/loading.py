"""Turning a model artifact into predictions: skops, pickle/joblib, ONNX or a function.

skops files are the format to prefer: `skops.io` rebuilds only the types it trusts (scikit-learn,
numpy, scipy) and refuses others unless they are named (`--trust`), while a pickle or joblib file
runs whatever code it contains when it is loaded — load those only from a registry you trust.
ONNX models run through onnxruntime. Anything else can be scanned through `--predict
module:function`, a function taking a DataFrame and returning labels (1-D) or class
probabilities (2-D, columns in the order of the sorted labels).
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitmlm.errors import MlmError

FORMATS = ("skops", "joblib", "pickle", "onnx")
SUFFIXES = {
    ".skops": "skops",
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".onnx": "onnx",
}


@dataclass
class Predictor:
    """A model as the detectors see it: labels or values, and class probabilities if any."""

    kind: str
    predict: Callable[[pd.DataFrame], np.ndarray]
    proba: Callable[[pd.DataFrame], np.ndarray] | None = None
    classes: list[Any] | None = None
    features: list[str] | None = None
    """The columns the model was fitted on, when it says (scikit-learn's feature_names_in_)."""


def format_of(path: str, data: bytes) -> str:
    """The artifact's format from its suffix, else from its first bytes."""
    suffix = Path(path).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if data[:2] == b"PK":
        return "skops"  # a zip archive: skops's container
    if data[:1] == b"\x80":
        return "pickle"
    if data[:1] == b"\x08":
        return "onnx"  # protobuf field 1 (ir_version), varint
    raise MlmError(
        f"{path}: cannot tell the model format; expected one of {', '.join(FORMATS)} "
        "(by suffix .skops/.joblib/.pkl/.onnx), or scan with --predict module:function"
    )


def load(path: str, data: bytes, trust: Sequence[str] = ()) -> Predictor:
    kind = format_of(path, data)
    try:
        if kind == "skops":
            return _estimator("skops", _skops(path, data, trust))
        if kind in ("joblib", "pickle"):
            import joblib  # reads plain pickles too

            return _estimator(kind, joblib.load(io.BytesIO(data)))
        return _onnx(data)
    except MlmError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlmError(f"{path}: cannot load it as a {kind} model ({first})") from exc


def _skops(path: str, data: bytes, trust: Sequence[str]) -> Any:
    from skops import io as sio

    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in trust]
    if untrusted:
        raise MlmError(
            f"{path}: the skops file holds types skops does not trust by default "
            f"({', '.join(untrusted)}); if you trust them, pass --trust for each"
        )
    return sio.loads(data, trusted=list(trust) or None)


def _estimator(kind: str, model: Any) -> Predictor:
    if not hasattr(model, "predict"):
        raise MlmError(f"the {kind} file holds a {type(model).__name__}, which has no predict()")
    names = getattr(model, "feature_names_in_", None)
    proba = getattr(model, "predict_proba", None)
    classes = getattr(model, "classes_", None)

    def predict(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(df))

    def predict_proba(df: pd.DataFrame) -> np.ndarray:
        assert proba is not None
        return np.asarray(proba(df), dtype=float)

    return Predictor(
        kind,
        predict,
        predict_proba if proba is not None and classes is not None else None,
        list(classes) if classes is not None else None,
        [str(n) for n in names] if names is not None else None,
    )


def _onnx(data: bytes) -> Predictor:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]
    single = len(inputs) == 1
    features = None if single else [i.name for i in inputs]

    def feed(df: pd.DataFrame) -> dict[str, Any]:
        if single:
            dtype = _onnx_dtype(inputs[0].type)
            return {inputs[0].name: df.to_numpy().astype(dtype)}
        return {
            i.name: df[i.name].to_numpy().astype(_onnx_dtype(i.type)).reshape(-1, 1) for i in inputs
        }

    def run(df: pd.DataFrame) -> list[Any]:
        out: list[Any] = session.run(outputs, feed(df))
        return out

    classes: list[Any] | None = None

    def predict(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(run(df)[0]).ravel()

    def proba(df: pd.DataFrame) -> np.ndarray:
        nonlocal classes
        got = run(df)[1]
        if isinstance(got, list):  # ZipMap: one {class: p} per row
            classes = list(got[0]) if got else classes
            return np.array([[row[c] for c in classes or []] for row in got], dtype=float)
        return np.asarray(got, dtype=float)

    return Predictor("onnx", predict, proba if len(outputs) > 1 else None, classes, features)


def _onnx_dtype(kind: str) -> Any:
    if "string" in kind:
        return object
    if "int64" in kind:
        return np.int64
    if "double" in kind:
        return np.float64
    return np.float32


def function(spec: str, root: Path) -> Predictor:
    """`module:function` from the repository (or anywhere on sys.path)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise MlmError(f"--predict {spec!r} is not module:function (for example model:predict)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MlmError(f"--predict {spec}: cannot import it ({exc})") from exc

    def raw(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(fn(df))

    return Predictor("function", raw, raw)


def settle(pred: Predictor, sample: pd.DataFrame, labels: list[Any]) -> None:
    """A function's answer shape is known only once it is called: a 2-D answer gives class
    probabilities (columns in the order of the sorted labels) and labels as their argmax."""
    if pred.kind != "function":
        return
    raw = pred.predict
    out = raw(sample)
    if out.ndim == 1:
        pred.proba = None
        return
    if out.ndim != 2 or out.shape[1] != len(labels):
        raise MlmError(
            f"--predict returned shape {out.shape}: expected one label per row, or one "
            f"probability per class ({len(labels)} classes in the target)"
        )
    classes = np.asarray(labels, dtype=object)
    pred.classes = list(labels)

    def predict(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(classes[raw(df).argmax(axis=1)])

    def proba(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(raw(df), dtype=float)

    pred.predict, pred.proba = predict, proba
