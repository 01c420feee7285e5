"""mlm.toml `[checkpoint]`: which paths are code, which are results, which are never snapshot.

Kept free of pygit2 so the pre-commit hook can decide "this commit touches no outputs" fast.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitmlm.core import config
from gitmlm.core.globs import Globs
from gitmlm.errors import MlmError

DEFAULT_MAX_BYTES = 10 * 1000 * 1000
GITMLM_OWN = (".mlm/**",)
"""gitmlm's own files (promotion requests, allowed signers): never code, whatever the rules
say, so committing a promotion request changes no run's code."""
MODES = ("block", "warn")
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3}


@dataclass(frozen=True)
class Rules:
    code: Globs
    """What counts as code; empty means every tracked or unignored file."""
    exclude: Globs
    """Never snapshot, never compared."""
    outputs: Globs
    """Results: a commit of one needs a run that made it; never part of the code."""
    datasets: Globs
    """Declared dataset paths: fingerprinted by digest, never snapshot."""
    mode: str = "block"
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def identity(self) -> bool:
        """No rule restricts the code: two trees have the same code iff they are equal."""
        return not (self.code or self.exclude or self.outputs or self.datasets)

    def not_code(self, path: str) -> str | None:
        """Why `path` is not code ("exclude", "dataset", "output", "code"), or None if it is."""
        if self.exclude.match(path):
            return "exclude"
        if self.datasets.match(path):
            return "dataset"
        if self.outputs.match(path):
            return "output"
        if self.code and not self.code.match(path):
            return "code"
        return None

    def is_code(self, path: str) -> bool:
        return self.not_code(path) is None

    def fingerprint(self) -> str:
        """Identifies the rules, so cached code keys computed under other rules are not reused."""
        parts = [g.patterns for g in (self.code, self.exclude, self.outputs, self.datasets)]
        return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def parse_size(value: Any) -> int:
    """10000000, "10 MB", "512KiB" -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if m and m.group(2).lower() in _UNITS:
        return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise MlmError(
        f'{config.FILE}: [checkpoint] max_size {value!r} is not a size; write e.g. "10 MB"'
    )


def dataset_globs(cfg: Mapping[str, Any]) -> list[str]:
    """The paths and globs of every declared dataset (`[datasets.NAME] path = ...`)."""
    return [d.path for d in config.settings(cfg).datasets.values()]


def from_config(cfg: Mapping[str, Any]) -> Rules:
    typed = config.settings(cfg)
    section = typed.checkpoint
    mode = section.mode or "block"
    if mode not in MODES:
        raise MlmError(f'{config.FILE}: [checkpoint] mode must be "block" or "warn", not {mode!r}')
    return Rules(
        code=Globs(list(section.code or ())),
        exclude=Globs([*GITMLM_OWN, *(section.exclude or ())]),
        outputs=Globs(list(section.outputs or ())),
        datasets=Globs([d.path for d in typed.datasets.values()]),
        mode=mode,
        max_bytes=parse_size(DEFAULT_MAX_BYTES if section.max_size is None else section.max_size),
    )


def load(root: Path) -> Rules:
    return from_config(config.load(root))
