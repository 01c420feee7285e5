"""Declared datasets: fingerprints, the lock file, status and diffs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gitmlm.errors import MlmError
from gitmlm.git import Repo


def run_datasets(repo: Repo, clean: bool) -> dict[str, dict[str, Any]]:
    """The digest of every declared dataset, as a run records it at its start."""
    return {}


def dataset_for_run(repo: Repo, name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(name, fingerprint) of a declared dataset or of a path outside the declarations."""
    raise MlmError("dataset fingerprints arrive with data version management")


LOCK_FILE = "mlm.lock"


def read_lock(root: Path) -> dict[str, dict[str, Any]]:
    """mlm.lock's datasets: name -> {path, algorithm, digest ("sha256:<hex>"), size, files,
    manifest (git oid)}; {} when there is no lock file."""
    file = root / LOCK_FILE
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise MlmError(
            f"{file}: invalid TOML ({exc}); restore it with `git checkout mlm.lock`"
            " or rebuild it with `git mlm data add NAME`"
        ) from exc
    datasets = doc.get("datasets", {})
    return {str(k): dict(v) for k, v in datasets.items()}
