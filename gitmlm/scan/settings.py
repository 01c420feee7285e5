"""`[scan]` in mlm.toml (all optional)::

[scan]
sensitive = ["gender", "age_band"]   # parity is checked across these columns
ignore = ["customer_id"]             # never fed to the model nor sliced
seed = 0                             # sampling and perturbations
max_major = 0                        # `git mlm scan` exits 3 above these
max_medium = 5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import config
from gitmlm.errors import MlmError

KNOWN = ("sensitive", "ignore", "trust", "seed", "max_major", "max_medium", "max_minor", "noise")


@dataclass
class Settings:
    sensitive: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    trust: list[str] = field(default_factory=list)
    seed: int = 0
    limits: dict[str, int] = field(default_factory=dict)
    noise: float | None = None


def settings(cfg: dict[str, Any]) -> Settings:
    section = cfg.get("scan", {})
    if not isinstance(section, dict):
        raise MlmError(f"{config.FILE}: [scan] must be a table")
    unknown = sorted(set(section) - set(KNOWN))
    if unknown:
        raise MlmError(
            f"{config.FILE}: [scan] has unknown key(s) {', '.join(unknown)}; known: "
            f"{', '.join(KNOWN)}"
        )
    out = Settings()
    for key in ("sensitive", "ignore", "trust"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MlmError(f"{config.FILE}: [scan] {key} must be a list of strings")
        setattr(out, key, list(value))
    for key in ("seed", "max_major", "max_medium", "max_minor"):
        value = section.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MlmError(f"{config.FILE}: [scan] {key} must be a whole number >= 0")
        if key == "seed":
            out.seed = value
        else:
            out.limits[key] = value
    noise = section.get("noise")
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 < noise < 1:
            raise MlmError(f"{config.FILE}: [scan] noise must be a number between 0 and 1")
        out.noise = float(noise)
    return out
