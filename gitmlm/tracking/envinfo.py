"""What a run ran on: interpreter, platform, and the versions of key packages it imported."""

from __future__ import annotations

import platform
import sys
from typing import Any

# Only packages already imported are recorded: reading installed metadata costs tens of ms,
# and what the training code actually loaded is the version that matters.
KEY_PACKAGES = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "torch",
    "tensorflow",
    "jax",
    "xgboost",
    "lightgbm",
    "catboost",
    "transformers",
    "polars",
    "pyarrow",
)


def capture() -> dict[str, Any]:
    from gitmlm import __version__

    packages = {"gitmlm": __version__}
    for name in KEY_PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            packages[name] = version
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "packages": packages,
    }
