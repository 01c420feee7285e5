"""`import gitmlm.mlflow as mlflow`: MLflow's fluent tracking API, recording into git.

The implementation is gitmlm/compat/mlflow.py; docs/migrate.md says what is covered.
"""

from __future__ import annotations

from gitmlm.compat.mlflow import *  # noqa: F403 - this module is that API under a short name
from gitmlm.compat.mlflow import __all__ as __all__
