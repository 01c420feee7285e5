"""One registry on every clone: local registry events are replayed after the remote's.

The remote orders the registry. A tag on the remote is final: every clone that fetches it
reads it, so a clone never keeps another object under that name. Events made here and not yet
on the remote (an offline `register`, `promote`…) are published only if they come after every
event of their model the remote holds, by sequence and by tagger time. Otherwise they are
replayed, like a rebase: in their order, each is made again as the model's next event, and

- a register whose version name the remote took for another commit takes the next free
  version (the same name when it is still free); one whose commit the remote has registered
  already is that version;
- stage tags, deregistrations and deprecations follow the versions they act on, and are left
  out when the remote's state already says the same (the version holds the stage already).

Each replay is reported. The old tags are parked under `refs/mlm-replay/` before anything is
deleted, so an interrupted replay resumes on the next sync and loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import tags
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import state
from gitmlm.models.state import Event, Model

PARKED = "refs/mlm-replay/"
"""Local events taken out of refs/tags/ until they are made again (never pushed)."""

LOCK = "registry"  # the writers' lock (ops.LOCK): a replay is a writer


@dataclass
class Converged:
    notes: list[str] = field(default_factory=list)
    """What was replayed or dropped, one line each."""


def converge(repo: Repo, remote: str, remote_tags: Mapping[str, str]) -> Converged:
    """Make this clone's registry tags agree with `remote_tags` (short name -> object id,
    every registry tag the remote has, objects fetched) and replay local events after them."""
    with repo.lock(LOCK):
        return _converge(repo, remote, remote_tags)


def _converge(repo: Repo, remote: str, remote_tags: Mapping[str, str]) -> Converged:
    out = Converged()
    local = dict(repo.tag_refs())
    parked = {ref[len(PARKED) :]: oid for ref, oid in repo.ref_table(PARKED).items()}
    differing = {n: o for n, o in remote_tags.items() if n in local and local[n] != o}
    events, _ = state.read_events(repo, [(n, o) for n, o in local.items()])
    mine = [e for e in events if remote_tags.get(e.tag) != e.oid]
    theirs = [e for e in events if remote_tags.get(e.tag) == e.oid]
    by_model: dict[str, list[Event]] = {}
    for e in mine:
        by_model.setdefault(e.model, []).append(e)
    replay: dict[str, list[Event]] = {}
    parked_events, _ = state.read_events(repo, list(parked.items()))
    for e in parked_events:
        replay.setdefault(e.model, []).append(e)
    for model, evs in by_model.items():
        if model in replay or any(e.tag in differing for e in evs) or _behind(evs, theirs, model):
            replay.setdefault(model, []).extend(evs)
    if not replay:
        return out
    todo = [e for evs in replay.values() for e in evs]
    if any(e.signed for e in todo) and not repo.config_get("user.signingkey"):
        names = ", ".join(sorted(e.tag for e in todo if e.signed))
        raise MlmError(
            f"{remote} has registry events that come before yours; yours must be made again "
            f"after them, and {names} must be signed: set git config user.signingkey, then "
            f"run `git mlm sync {remote}` again (nothing was changed)"
        )
    # Park every event to replay, then give each name the remote's object (or none).
    for e in todo:
        if e.tag not in parked:
            repo.update_ref(PARKED + e.tag, e.oid, None, "gitmlm: park a registry event")
            parked[e.tag] = e.oid
        if e.tag in differing:
            repo.update_ref("refs/tags/" + e.tag, differing[e.tag], e.oid, "gitmlm: remote's")
        elif local.get(e.tag) == e.oid:
            repo.delete_ref("refs/tags/" + e.tag, e.oid)
    for _model, evs in sorted(replay.items()):
        renamed: dict[str, str] = {}
        for e in state.ordered({(e.tag, e.oid): e for e in evs}.values()):
            note = _replay(repo, e, renamed)
            if note:
                out.notes.append(note)
            repo.delete_ref(PARKED + e.tag, e.oid)
    return out


def _behind(mine: list[Event], theirs: list[Event], model: str) -> bool:
    """Whether any of our events does not come after all of the remote's for this model."""
    top = [e for e in theirs if e.model == model]
    if not top:
        return False
    number = max(max(e.sequence or 0, e.counter or 0) for e in top)
    when = max(e.time for e in top)
    return any((e.sequence or e.counter or 0) <= number or e.time <= when for e in mine)


def _replay(repo: Repo, e: Event, renamed: dict[str, str]) -> str | None:
    """Make event `e` again as its model's next event; a line saying what happened, if notable."""
    reg = state.load(repo)
    model = reg.models.get(e.model) or Model(e.model)
    body = {k: v for k, v in e.body.items() if k not in ("schema", "event", "sequence", "model")}
    body.setdefault("who", e.who)
    if not e.body:
        body.setdefault("why", e.text)
    body["replayed"] = e.tag
    was = body.get("version") if isinstance(body.get("version"), str) else e.version
    version = renamed.get(str(was), was) if was else None
    subject = e.subject or e.text.partition("\n")[0]
    if e.action == tags.REGISTER:
        assert e.version is not None
        at = next(
            (v for v in model.versions.values() if v.commit == e.commit and v.active and v.tag),
            None,
        )
        if at is not None:
            renamed[e.version] = at.version
            return (
                f"{e.tag}: the remote registered the same commit as {e.model}@{at.version}; "
                "yours is that version"
            )
        version = e.version if e.version not in model.versions else _next_free(model)
        renamed[e.version] = version
        body["version"] = version
        tag = _write(repo, reg, e, body, subject.replace(e.version, version), version=version)
        if tag == e.tag:
            return None
        return (
            f"{e.tag} was taken by another commit on the remote: your {e.model} "
            f"(commit {e.commit[:10]}) is now {tag}"
        )
    found = model.versions.get(str(version)) if version else None
    if e.action == tags.DEREGISTER:
        if found is None or not found.active:
            return f"{e.tag}: already deregistered on the remote; dropped"
        body["version"] = found.version
        tag = _write(repo, reg, e, body, subject, version=found.version)
        return None if tag == e.tag else f"{e.tag} is now {tag}"
    if e.action in (tags.ASSIGN, tags.UNASSIGN):
        assert e.stage is not None
        holder = model.holder(e.stage)
        held = found is not None and holder is not None and holder.version == found.version
        if (e.action == tags.ASSIGN) == held:
            return f"{e.tag}: the remote says the same already; dropped"
        if found is not None:
            body["version"] = found.version
            subject = subject.replace(str(was), found.version) if was else subject
        tag = _write(repo, reg, e, body, subject, stage=e.stage)
        return f"{e.tag} is now {tag}, after the remote's events"
    if e.action == tags.DEPRECATE and model.deprecated:
        return f"{e.tag}: the model is deprecated on the remote already; dropped"
    taken = repo.ref("refs/tags/" + tags.format_tag(e.action, e.model)) is not None
    tag = _write(repo, reg, e, body, subject, counted=taken)
    return None if tag == e.tag else f"{e.tag} is now {tag}"


def _next_free(model: Model) -> str:
    """The next patch version after every name the model has used: names are never reused."""
    named = [v.version for v in model.versions.values() if v.registered is not None]
    return tags.bump(max(named, key=tags.version_key) if named else None, "patch")


def _write(
    repo: Repo,
    reg: state.Registry,
    e: Event,
    body: dict[str, Any],
    subject: str,
    **names: Any,
) -> str:
    return state.write_event(
        repo, reg, e.action, e.model, e.commit, subject, body, sign=e.signed, **names
    )
