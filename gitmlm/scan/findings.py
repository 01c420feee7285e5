"""What a detector reports, how severe it is, and the multiple-testing correction.

Every detector tests many hypotheses (one per slice, feature or group). A finding is only
reported when its Benjamini–Hochberg adjusted p-value (`q`) is below `ALPHA`, so among the
findings of one detector at most about 5% are expected to be false alarms, however many slices
were tried; the severity then comes from the effect size alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ALPHA = 0.05
SEVERITIES = ("major", "medium", "minor")
RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    detector: str
    severity: str
    message: str
    slice: str = ""
    """Where: `region == "north"`, `age in [30, 45)`, a feature name, or "" for the whole set."""
    metric: str = ""
    value: float = float("nan")
    """The metric on the slice (or the measured rate)."""
    reference: float = float("nan")
    """The same metric on the whole set (or the tolerated rate)."""
    effect: float = float("nan")
    support: int = 0
    p: float = float("nan")
    q: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """As stored in the note: rounded, NaN (not measured) left out."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if k == "extra":
                continue
            if isinstance(v, float):
                if not np.isfinite(v):
                    continue
                v = float(f"{v:.4g}")
            out[k] = v
        return out


def grade(effect: float, minor: float, medium: float, major: float) -> str | None:
    """The severity of an effect against three ascending limits; None below the first."""
    if effect >= major:
        return "major"
    if effect >= medium:
        return "medium"
    if effect >= minor:
        return "minor"
    return None


def bh(pvalues: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(ranked, 1.0)
    return out


def ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (RANK[f.severity], f.detector, -_abs(f.effect)))


def _abs(x: float) -> float:
    return abs(x) if np.isfinite(x) else 0.0
