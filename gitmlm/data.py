"""Declared datasets: fingerprints, the lock file, status and diffs."""

from __future__ import annotations

from typing import Any

from gitmlm.errors import MlmError
from gitmlm.git import Repo


def run_datasets(repo: Repo, clean: bool) -> dict[str, dict[str, Any]]:
    """The digest of every declared dataset, as a run records it at its start."""
    return {}


def dataset_for_run(repo: Repo, name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(name, fingerprint) of a declared dataset or of a path outside the declarations."""
    raise MlmError("dataset fingerprints arrive with data version management")
