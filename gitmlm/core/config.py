"""mlm.toml: reading the project's declarations. Each section's meaning lives with its owner
(datasets in data/spec.py, models and stages in models/state.py, checkpoint in
checkpoints/rules.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gitmlm.errors import MlmError

FILE = "mlm.toml"

TEMPLATE = """\
# gitmlm project declarations; `git mlm --help` and the docs/ folder of gitmlm explain each.
# Committed with the code; every section is optional.
schema = 1

# Datasets: fingerprinted into mlm.lock and checked on every commit.
# [datasets.train]
# path = "data/train.csv"        # a file, a directory, or a glob

# Models: artifacts the registry versions.
# [models.churn]
# path = "models/churn.pkl"
# description = "churn classifier"

# Which way is better for each metric, for gates and best-of listings.
[metrics]
# acc = "max"
# loss = "min"

# What a run's checkpoint captures, and which files are results a run must have produced.
[checkpoint]
# code = ["**/*.py"]             # what counts as code (default: every tracked, unignored file)
# exclude = ["data/**"]          # never snapshot these
# outputs = ["models/*.pkl"]     # committing these needs a recorded run that made them
# mode = "block"                 # or "warn"

# Model registry stages, in promotion order.
[registry]
stages = ["dev", "staging", "production"]
"""


def path(root: Path) -> Path:
    return root / FILE


def load(root: Path) -> dict[str, Any]:
    """The parsed mlm.toml, or {} when there is none; malformed TOML is a clear error."""
    file = path(root)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MlmError(f"{file}: invalid TOML ({exc}); fix the file and try again") from exc
    schema = doc.get("schema", 1)
    if schema != 1:
        raise MlmError(f"{file}: schema {schema!r} is newer than this gitmlm reads (1); upgrade")
    return doc


def metric_direction(cfg: dict[str, Any], name: str) -> str | None:
    """ "max" or "min" as declared in [metrics], else None."""
    value = cfg.get("metrics", {}).get(name)
    if value is None:
        return None
    if value not in ("max", "min"):
        raise MlmError(f'{FILE}: [metrics] {name} must be "max" or "min", not {value!r}')
    return str(value)
