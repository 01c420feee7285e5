"""The scan a promotion gate runs when the candidate has none recorded on the gate's data."""

from __future__ import annotations

from pathlib import Path

from gitmlm.core import config, scans
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.scan import engine, record
from gitmlm.scan import settings as scan_settings
from gitmlm.scan.context import Options


def scan_and_record(repo: Repo, subject: str, data: Path, target: str) -> scans.Recorded:
    """Scan `subject` (churn@v1.2.0) on `data` with the [scan] settings, keep the note, and
    return it as the gate reads it."""
    cfg = scan_settings.settings(config.load(repo.workdir))
    options = Options(seed=cfg.seed, sensitive=list(cfg.sensitive))
    if cfg.noise:
        options.noise = cfg.noise
    request = engine.Request(
        subject, data, target, trust=list(cfg.trust), ignore=list(cfg.ignore), options=options
    )
    result = engine.scan(repo, request)
    key = record.record(repo, result)
    assert result.subject.commit is not None
    found = scans.find(repo, result.subject.commit, key)
    if found is None:
        raise MlmError(f"the scan of {subject} was recorded but cannot be read back")
    return found
