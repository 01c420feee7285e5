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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitmlm.core import config, tags
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import state as model_registry
from gitmlm.models.state import Event


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
    signers = allowed_signers(cfg, repo.workdir)
    out = []
    for e in wanted:
        if not e.signed:
            why = f"stage {e.stage} is protected" if e.stage else "it affects a protected stage"
            out.append(Verdict(e.tag, False, f"not signed, but {why}"))
            continue
        ok, detail = repo.verify_tag(e.tag, signers)
        out.append(Verdict(e.tag, ok, detail or ("good signature" if ok else "bad signature")))
    return out
