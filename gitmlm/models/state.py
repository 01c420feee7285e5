"""The model registry: its state read from tags, and the tags that change it.

State is a fold over each model's tag events in order. gitmlm's tags carry an explicit
per-model `sequence` in their TOML body (and stage tags repeat it as GTO's `#N` counter), so
two promotions within one second still have an order. Tags written by GTO carry no sequence:
they are placed by tagger time, then counter, as GTO itself orders them, and merged with
gitmlm's by time (within one second, GTO's counter against our sequence: both tools number
past the highest number a model's tags carry), never reordering gitmlm's among themselves.

A stage holds the version assigned to it most recently that is still assigned (GTO's reading):
demoting that version hands the stage back to the one assigned before it, if any.
"""

from __future__ import annotations

import gc
import heapq
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gitmlm.core import config, tags
from gitmlm.core.git import Repo, TagExists
from gitmlm.errors import MlmError

DEFAULT_STAGES = ("dev", "staging", "production")
_PRIORITY = {
    tags.CREATE: -1,
    tags.REGISTER: 0,
    tags.ASSIGN: 1,
    tags.UNASSIGN: 2,
    tags.DEREGISTER: 3,
    tags.DEPRECATE: 4,
}


@dataclass(slots=True)
class Event:
    tag: str
    action: str
    model: str
    version: str | None
    """The version acted on; for stage tags, the one registered at the tagged commit."""
    stage: str | None
    counter: int | None
    commit: str
    tagger: str
    email: str
    time: int
    offset: int
    signed: bool
    subject: str
    text: str
    body: dict[str, Any]
    oid: str = ""
    """The tag object's id."""

    @property
    def sequence(self) -> int | None:
        value = self.body.get("sequence")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def who(self) -> str:
        return f"{self.tagger} <{self.email}>" if self.email else self.tagger

    @property
    def why(self) -> str:
        if self.body:
            return str(self.body.get("why", ""))
        return self.text


@dataclass
class Version:
    model: str
    version: str
    commit: str
    registered: Event | None
    """None for a version GTO knows only by a stage tag on an unregistered commit."""
    active: bool = True

    @property
    def body(self) -> dict[str, Any]:
        return self.registered.body if self.registered else {}

    @property
    def tag(self) -> str | None:
        return self.registered.tag if self.registered else None

    @property
    def run(self) -> str | None:
        run = self.body.get("run")
        return str(run) if run else None

    @property
    def artifact(self) -> dict[str, Any]:
        return dict(self.body.get("artifact", {}))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.body.get("metrics", {}))

    @property
    def datasets(self) -> dict[str, Any]:
        return dict(self.body.get("datasets", {}))


@dataclass
class Model:
    name: str
    versions: dict[str, Version] = field(default_factory=dict)
    assigned: dict[str, dict[str, None]] = field(default_factory=dict)
    """Stage -> versions still assigned to it, the most recently assigned last (a dict as an
    ordered set, so moving a version to the end stays O(1) however many there are)."""
    events: list[Event] = field(default_factory=list)
    deprecated: bool = False
    dropped: list[Event] = field(default_factory=list)
    """Events left out of the state (say, badly signed tags of a protected stage): their
    names and numbers are still taken, so the next event numbers past them."""

    def holder(self, stage: str) -> Version | None:
        held = self.assigned.get(stage)
        return self.versions[next(reversed(held))] if held else None

    def stages_of(self, version: str) -> list[str]:
        return [s for s, held in self.assigned.items() if held and next(reversed(held)) == version]

    def latest(self) -> Version | None:
        """The greatest registered, active version by semver precedence."""
        live = [v for v in self.versions.values() if v.active and v.registered is not None]
        return max(live, key=lambda v: tags.version_key(v.version)) if live else None

    def next_sequence(self) -> int:
        """One more than any sequence or counter this model's tags carry."""
        top = 0
        for e in (*self.events, *self.dropped):
            top = max(top, e.sequence or 0, e.counter or 0)
        return top + 1

    def next_time(self) -> int:
        """One second after this model's newest tag: GTO orders events by tagger time, so
        each new tag of a model is dated strictly after the others (GTO then reads them in
        gitmlm's order, even for two promotions within one second)."""
        return max((e.time for e in (*self.events, *self.dropped)), default=0) + 1


@dataclass
class Registry:
    models: dict[str, Model]
    problems: list[str]
    rejected: list[str] = field(default_factory=list)
    """Tags of protected stages left out because their signature does not verify (also in
    `problems`): every reader warns about these."""

    def model(self, name: str) -> Model:
        found = self.models.get(name)
        if found is None:
            known = ", ".join(sorted(self.models)) or "none yet"
            raise MlmError(
                f"model {name!r} has no registered versions (known: {known}); "
                f"register one with `git mlm register {name}`"
            )
        return found


# --- reading ---------------------------------------------------------------------------------


_CACHE_VERSION = 3


@dataclass(frozen=True, slots=True)
class _Tag:
    """What one tag object says, as the cache keeps it (a tag object never changes)."""

    annotated: bool
    commit: str | None
    tagger: str
    email: str
    time: int
    offset: int
    message: tags.Message


_EMPTY = tags.Message("", "", {}, False)


def _cache_file(repo: Repo) -> str:
    return os.path.join(repo.mlm_dir, "cache", "registry-tags.json")


def _load_cache(path: str) -> dict[str, list[Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if isinstance(doc, dict) and doc.get("version") == _CACHE_VERSION:
            return dict(doc["tags"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {}


def _save_cache(path: str, entries: dict[str, list[Any]]) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": _CACHE_VERSION, "tags": entries}, fh, default=str)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only .git still reads, just slower


def _read_tags(repo: Repo, refs: list[tuple[str, str]]) -> dict[str, _Tag]:
    """Each tag object, by id: read and parsed once, then served from the cache.

    The cache is keyed by the tag object's id, so it is never stale: a re-created tag is
    a new object. Only the ref list is read on every call.
    """
    path = _cache_file(repo)
    cached = _load_cache(path)
    out: dict[str, _Tag] = {}
    fresh = False
    for name, oid in refs:
        entry = cached.get(oid)
        if entry is None:
            info = repo.tag_info(name, oid)
            if info is None:
                continue
            msg = tags.decode_message(info.message) if info.annotated else _EMPTY
            # The message text is kept only for tags without a body (GTO's): it is their "why".
            entry = [
                info.annotated,
                info.commit,
                info.tagger,
                info.email,
                info.time,
                info.offset,
                msg.subject,
                "" if msg.body else msg.text,
                msg.body,
                msg.signed,
                msg.problem,
            ]
            cached[oid] = entry
            fresh = True
        subject, text, body, signed, problem = entry[6:]
        message = tags.Message(subject, text, body, signed, problem)
        out[oid] = _Tag(entry[0], entry[1], entry[2], entry[3], entry[4], entry[5], message)
    if fresh:
        # Keep only live tags, so deleted ones do not grow the file forever.
        live = {oid for _, oid in refs}
        _save_cache(path, {k: v for k, v in cached.items() if k in live})
    return out


def read_events(
    repo: Repo, refs: Iterable[tuple[str, str]] | None = None
) -> tuple[list[Event], list[str]]:
    """Every registry event in the repository's tags (or in these (tag name, object id)
    pairs), and what was ignored and why."""
    problems: list[str] = []
    wanted: list[tuple[str, str, tags.TagName]] = []
    for name, oid in repo.tag_refs() if refs is None else refs:
        if "@" not in name and "#" not in name:
            continue  # a release tag or the like: not ours to read
        parsed = tags.parse(name)
        if parsed is not None:
            wanted.append((name, oid, parsed))
    objects = _read_tags(repo, [(name, oid) for name, oid, _ in wanted])
    events = []
    for name, oid, parsed in wanted:
        t = objects.get(oid)
        if t is None:
            problems.append(f"ignored tag {name}: its object {oid[:12]} is missing")
            continue
        if not t.annotated:
            problems.append(
                f"ignored lightweight tag {name}: registry tags are annotated "
                f"(delete it with `git tag -d {name}` and use git mlm to re-create it)"
            )
            continue
        if t.commit is None:
            problems.append(f"ignored tag {name}: it does not point at a commit")
            continue
        msg = t.message
        if msg.problem:
            problems.append(f"tag {name}: {msg.problem}; read as a plain tag")
        events.append(
            Event(
                tag=name,
                action=parsed.action,
                model=parsed.model,
                version=parsed.version,
                stage=parsed.stage,
                counter=parsed.counter,
                commit=t.commit,
                tagger=t.tagger,
                email=t.email,
                time=t.time,
                offset=t.offset,
                signed=msg.signed,
                subject=msg.subject,
                text=msg.text,
                body=msg.body,
                oid=oid,
            )
        )
    return events, problems


def ordered(events: Iterable[Event]) -> list[Event]:
    """gitmlm's events by sequence; GTO's by (time, counter), merged in by time, then number."""
    ours: list[Event] = []
    theirs: list[Event] = []
    for e in events:
        (ours if e.sequence is not None else theirs).append(e)
    ours.sort(key=lambda e: (e.sequence, _PRIORITY[e.action], e.tag))
    theirs.sort(key=lambda e: (e.time, e.counter or 0, _PRIORITY[e.action], e.tag))
    # Within one second, GTO's `#N` and our sequence compare: both tools number a model's
    # events past the highest number its tags carry. Left ties go to GTO's (registers first).
    return list(heapq.merge(theirs, ours, key=_merge_key))


def _merge_key(e: Event) -> tuple[int, int]:
    return (e.time, e.sequence if e.sequence is not None else (e.counter or 0))


def _fold(name: str, events: list[Event], problems: list[str]) -> Model:
    model = Model(name, events=events)
    by_commit: dict[str, str] = {}

    def version_of(e: Event) -> Version:
        wanted = e.body.get("version")
        if isinstance(wanted, str) and wanted in model.versions:
            return model.versions[wanted]
        known = by_commit.get(e.commit)
        if known is not None:
            return model.versions[known]
        # GTO's reading of a stage tag on a commit with no registered version.
        found = Version(name, e.commit, e.commit, None)
        model.versions[e.commit] = found
        by_commit[e.commit] = e.commit
        return found

    for e in events:
        if e.action == tags.REGISTER:
            assert e.version is not None
            old = model.versions.get(e.version)
            if old is not None and old.active and old.registered is not None:
                problems.append(f"tag {e.tag}: {name} {e.version} was registered already; ignored")
                continue
            model.versions[e.version] = Version(name, e.version, e.commit, e)
            by_commit[e.commit] = e.version
            model.deprecated = False
        elif e.action == tags.DEREGISTER:
            assert e.version is not None
            gone = model.versions.get(e.version)
            if gone is None:
                problems.append(f"tag {e.tag}: {name} {e.version} was never registered; ignored")
                continue
            gone.active = False
            for held in model.assigned.values():
                held.pop(e.version, None)
            # The commit still names this version (as in GTO): a later stage tag there acts on
            # the deregistered version, and is ignored, rather than inventing a version.
        elif e.action in (tags.ASSIGN, tags.UNASSIGN):
            assert e.stage is not None
            v = version_of(e)
            e.version = v.version
            held = model.assigned.setdefault(e.stage, {})
            held.pop(v.version, None)
            if e.action == tags.ASSIGN:
                if not v.active:
                    problems.append(f"tag {e.tag}: {name} {v.version} is deregistered; ignored")
                    continue
                held[v.version] = None
        elif e.action == tags.DEPRECATE:
            model.deprecated = True
        elif e.action == tags.CREATE:
            model.deprecated = False  # GTO's `NAME@created`: the model exists, without versions
    return model


def load(repo: Repo, *, drop: Callable[[Event], bool] | None = None) -> Registry:
    """The registry as the tags say now; `drop` leaves out events (say, unverified ones)."""
    # Reading builds many small objects and no cycles: the cycle collector's repeated passes
    # over them made reading thousands of tags grow faster than linearly.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(repo, drop)
    finally:
        if was_enabled:
            gc.enable()


def _load(repo: Repo, drop: Callable[[Event], bool] | None) -> Registry:
    events, problems = read_events(repo)
    grouped: dict[str, list[Event]] = {}
    left_out: dict[str, list[Event]] = {}
    for e in events:
        (left_out if drop is not None and drop(e) else grouped).setdefault(e.model, []).append(e)
    models = {name: _fold(name, ordered(evs), problems) for name, evs in sorted(grouped.items())}
    for name, evs in left_out.items():
        models.setdefault(name, Model(name)).dropped = evs
    return Registry(models, problems)


# --- configuration -----------------------------------------------------------------------------


def stages(cfg: dict[str, Any]) -> list[str]:
    """`[registry] stages` in promotion order; dev, staging, production when not declared."""
    declared = cfg.get("registry", {}).get("stages")
    if declared is None:
        return list(DEFAULT_STAGES)
    if not isinstance(declared, list) or not all(isinstance(s, str) for s in declared):
        raise MlmError(f'{config.FILE}: [registry] stages must be a list of names, like ["dev"]')
    return [tags.check_stage_name(s) for s in declared]


def check_stage(cfg: dict[str, Any], stage: str) -> str:
    known = stages(cfg)
    if stage not in known:
        raise MlmError(
            f"unknown stage {stage!r}: stages are {', '.join(known)} "
            f"(declare more in {config.FILE} [registry] stages)"
        )
    return stage


def declared_models(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    models = cfg.get("models", {})
    if not isinstance(models, dict):
        raise MlmError(f"{config.FILE}: [models] must hold tables like [models.churn]")
    return {str(k): dict(v) for k, v in models.items() if isinstance(v, dict)}


def declared(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """A model's `[models.NAME]` table, with a `path`; a clear error when it is missing."""
    found = declared_models(cfg).get(name)
    if found is None or not isinstance(found.get("path"), str):
        key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
        raise MlmError(
            f"model {name!r} is not declared: add to {config.FILE}\n"
            f'[models.{key}]\npath = "models/{name}.pkl"'
        )
    return found


def stage_settings(cfg: dict[str, Any], stage: str) -> dict[str, Any]:
    """`[registry.gates.STAGE]`: the gates and protection of one stage ({} when none)."""
    gates = cfg.get("registry", {}).get("gates", {})
    table = gates.get(stage, {}) if isinstance(gates, dict) else {}
    if not isinstance(table, dict):
        raise MlmError(f"{config.FILE}: [registry.gates.{stage}] must be a table")
    return dict(table)


def is_signed_stage(cfg: dict[str, Any], stage: str) -> bool:
    return stage_settings(cfg, stage).get("signed") is True


# --- writing -----------------------------------------------------------------------------------


def identity(repo: Repo) -> str:
    sig = repo.signature()
    return f"{sig.name} <{sig.email}>"


def check_tag_name(repo: Repo, name: str) -> None:
    if not repo.is_valid_ref_name("refs/tags/" + name):
        raise MlmError(
            f"git refuses {name!r} as a tag name (see `git check-ref-format`); "
            "rename the model or stage"
        )


def write_event(
    repo: Repo,
    reg: Registry,
    action: str,
    model: str,
    commit: str,
    subject: str,
    body: dict[str, Any],
    *,
    version: str | None = None,
    stage: str | None = None,
    sign: bool = False,
    counted: bool = False,
) -> str:
    """Create the tag for one event, numbered after every event of the model; its name.

    Stage tags (and any tag whose plain name is taken, when `counted`) end in GTO's `#N`,
    which is the event's sequence: GTO's next counter (max + 1) then follows ours.
    """
    counted = counted or action in tags.COUNTED
    known = reg.models.get(model)
    sequence = known.next_sequence() if known else 1
    for _ in range(50):
        counter = sequence if counted else None
        name = tags.format_tag(action, model, version=version, stage=stage, counter=counter)
        check_tag_name(repo, name)
        full = {"event": action, "sequence": sequence, "model": model, **body}
        try:
            not_before = known.next_time() if known else 0
            repo.create_tag(
                name, commit, tags.encode_message(subject, full), sign=sign, not_before=not_before
            )
            return name
        except TagExists:
            if not counted:
                raise MlmError(f"tag {name} exists already; nothing was changed") from None
            sequence += 1  # another writer took this number first: take the next one
    raise MlmError(f"could not find a free tag name for {model} {stage}; try again")
