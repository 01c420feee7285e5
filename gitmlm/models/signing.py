"""Protected stages: their tags must carry a good signature from an allowed signer.

    [registry]
    allowed_signers = ".mlm/allowed_signers"   # ssh-keygen's format: `email key-type key`

    [registry.gates.production]
    signed = true

Deregistering a version that was in a protected stage, or deprecating its model, must be
signed too: either would take the version out of the stage. ssh signatures are checked by
`git verify-tag` against that file (gpg.ssh.allowedSignersFile); gpg signatures against the
verifying user's keyring, as git does.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitmlm.core import config, tags
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import state as model_registry
from gitmlm.models.state import Event, Registry


@dataclass(frozen=True)
class Verdict:
    tag: str
    ok: bool
    detail: str


def signed_stages(cfg: dict[str, Any]) -> set[str]:
    gates = cfg.get("registry", {}).get("gates", {})
    if not isinstance(gates, dict):
        return set()
    return {s for s in gates if model_registry.is_signed_stage(cfg, s)}


def allowed_signers(cfg: dict[str, Any], root: Path) -> Path:
    value = cfg.get("registry", {}).get("allowed_signers")
    if not isinstance(value, str) or not value:
        raise MlmError(
            f"signed stages need an allowed-signers file: add allowed_signers = "
            f'".mlm/allowed_signers" under [registry] in {config.FILE}'
        )
    path = (root / value).resolve()
    if not path.is_file():
        raise MlmError(
            f"allowed-signers file {value} (from {config.FILE}) does not exist; create it "
            "with one `email key-type key` line per signer"
        )
    return path


def needs_signature(events: list[Event], protected: set[str]) -> list[Event]:
    """The events that can change a protected stage: its stage tags, and the deregistrations
    and deprecations of versions and models that were ever in it (either would empty it)."""
    touched = {(e.model, e.version) for e in events if e.stage in protected}
    models = {model for model, _ in touched}
    out = []
    for e in events:
        if (
            (e.action in (tags.ASSIGN, tags.UNASSIGN) and e.stage in protected)
            or (e.action == tags.DEREGISTER and (e.model, e.version) in touched)
            or (e.action == tags.DEPRECATE and e.model in models)
        ):
            out.append(e)
    return out


def verify(repo: Repo, cfg: dict[str, Any], events: list[Event]) -> list[Verdict]:
    """A verdict for every event that can change a protected stage (none if none is)."""
    protected = signed_stages(cfg)
    if not protected:
        return []
    wanted = needs_signature(events, protected)
    if not wanted:
        return []
    signers = allowed_signers(cfg, repo.workdir)
    # `git verify-tag` runs a process per tag: its verdict on one tag object against one
    # allowed-signers file never changes, so it is kept (a re-made tag is a new object).
    key = hashlib.sha256(signers.read_bytes()).hexdigest()
    path = os.path.join(repo.mlm_dir, "cache", "verified.json")
    cache = _load(path, key)
    out = []
    fresh = False
    for e in wanted:
        if not e.signed:
            why = f"stage {e.stage} is protected" if e.stage else "it affects a protected stage"
            out.append(Verdict(e.tag, False, f"not signed, but {why}"))
            continue
        known = cache.get(e.oid) if e.oid else None
        if known is None:
            ok, detail = repo.verify_tag(e.tag, signers)
            known = [ok, detail or ("good signature" if ok else "bad signature")]
            if e.oid:
                cache[e.oid] = known
                fresh = True
        out.append(Verdict(e.tag, bool(known[0]), str(known[1])))
    if fresh:
        _save(path, key, cache)
    return out


def _load(path: str, key: str) -> dict[str, list[Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return dict(doc["verdicts"]) if doc.get("signers") == key else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save(path: str, key: str, cache: dict[str, list[Any]]) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"signers": key, "verdicts": cache}, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only .git still verifies, just slower


class UnverifiedStageWarning(UserWarning):
    """A protected stage's tag was ignored: its signature does not verify."""


def load(repo: Repo, cfg: dict[str, Any] | None = None) -> tuple[Registry, list[Verdict]]:
    """The registry every reader sees: tags of protected stages whose signature does not verify
    (unsigned, signed by a key not in the allowed-signers file, or forged) are left out, so a
    stage falls back to its last validly signed holder; each is named in `rejected`.

    Also the failed verdicts, for `--verify` and `ci check`, which fail on them.
    """
    if cfg is None:
        cfg = config.load(repo.workdir) if repo.root else {}
    reg = model_registry.load(repo)
    if not signed_stages(cfg):
        return reg, []
    events = [e for m in reg.models.values() for e in (*m.events, *m.dropped)]
    try:
        verdicts = verify(repo, cfg, events)
    except MlmError as exc:
        # Without the allowed-signers file no signature can be trusted: none is.
        wanted = needs_signature(events, signed_stages(cfg))
        verdicts = [Verdict(e.tag, False, str(exc)) for e in wanted]
    bad = [v for v in verdicts if not v.ok]
    if not bad:
        return reg, []
    rejected = {v.tag for v in bad}
    reg = model_registry.load(repo, drop=lambda e: e.tag in rejected)
    for v in bad:
        note = f"ignored {v.tag}: {v.detail}; its stage keeps the last validly signed holder"
        reg.rejected.append(note)
        reg.problems.append(note)
    return reg, bad


def warn(reg: Registry) -> None:
    """Python readers (`gitmlm.resolve`, `gitmlm.registry`) see each ignored tag as a warning."""
    for note in reg.rejected:
        warnings.warn(note, UnverifiedStageWarning, stacklevel=3)
