"""The registry's tag grammar — GTO's, so teams can switch both ways — in one place.

Every tag name is made from one table of templates and read by one parser:

    churn@v1.2.0        register a version          churn@v1.2.0!       deregister it
    churn#prod#7        assign a stage (7th event)  churn#prod!#8       unassign it
    churn@deprecated    deprecate the model     churn@created       declare it (no version)

Names follow GTO 1.10's alphabet exactly (letters of either case, digits, `-`, `_`, `/`), so
every tag GTO reads is read here too. GTO appends the `#N` counter (one per model, over all its
tags) to stage tags, and to the others only when forced. A tag's message is a subject line, a
blank line and a TOML body (`schema = 1`, event, sequence, run, artifact, metrics, who, why);
GTO's own tags carry a plain sentence instead, which reads as a tag without a body.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

import tomli_w

from gitmlm.errors import MlmError

REGISTER = "register"
DEREGISTER = "deregister"
ASSIGN = "assign"
UNASSIGN = "unassign"
DEPRECATE = "deprecate"
CREATE = "create"

TEMPLATES = {
    REGISTER: "{model}@{version}",
    DEREGISTER: "{model}@{version}!",
    ASSIGN: "{model}#{stage}",
    UNASSIGN: "{model}#{stage}!",
    DEPRECATE: "{model}@deprecated",
    CREATE: "{model}@created",
}
COUNTER = "{tag}#{counter}"
COUNTED = frozenset({ASSIGN, UNASSIGN})
"""Actions whose tags always carry the counter, as GTO writes them."""

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9/\-_]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9\-_./]+"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = (
    r"v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_MODEL_IN_TAG = rf"(?:{_DIRNAME}=)?{_NAME}"
_TAG = re.compile(
    rf"(?P<model>{_MODEL_IN_TAG})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>{SEMVER}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?"
)
_MODEL = re.compile(rf"(?:{_DIRNAME}:)?{_NAME}")
_STAGE = re.compile(_NAME)
_VERSION = re.compile(SEMVER)
_SPEC = re.compile(
    rf"(?P<model>(?:{_DIRNAME}:)?{_NAME})(?:#(?P<stage>{_NAME})|@(?P<version>latest|greatest|{SEMVER}))?"
)
_SIGNATURE = re.compile(r"^-----BEGIN (?:PGP SIGNATURE|SSH SIGNATURE|SIGNED MESSAGE)-----$", re.M)

_BODY = re.compile(r"^schema\s*=", re.M)

BODY_SCHEMA = 1


@dataclass(frozen=True)
class TagName:
    action: str
    model: str
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def parse(tag: str) -> TagName | None:
    """A tag name in the grammar (with or without `refs/tags/`), or None for any other tag."""
    m = _TAG.fullmatch(tag.removeprefix("refs/tags/"))
    if m is None:
        return None
    counter = int(m["counter"]) if m["counter"] else None
    model = m["model"].replace("=", ":")  # GTO writes a `dir:name` model as `dir=name` in tags
    if m["deprecated"]:
        return TagName(DEPRECATE, model, counter=counter)
    if m["created"]:
        return TagName(CREATE, model, counter=counter)
    cancel = m["cancel"] == "!"
    if m["version"]:
        return TagName(DEREGISTER if cancel else REGISTER, model, m["version"], None, counter)
    return TagName(UNASSIGN if cancel else ASSIGN, model, None, m["stage"], counter)


def format_tag(
    action: str,
    model: str,
    *,
    version: str | None = None,
    stage: str | None = None,
    counter: int | None = None,
) -> str:
    tag = TEMPLATES[action].format(model=model.replace(":", "="), version=version, stage=stage)
    return tag if counter is None else COUNTER.format(tag=tag, counter=counter)


def is_model_name(name: str) -> bool:
    return _MODEL.fullmatch(name) is not None


def check_model_name(name: str) -> str:
    if not is_model_name(name):
        raise MlmError(
            f"model name {name!r} is not valid in registry tags: use letters, digits, '-', '_' "
            "and '/', starting and ending with a letter or digit (e.g. churn, team/churn_v2)"
        )
    return name


def check_stage_name(stage: str) -> str:
    if _STAGE.fullmatch(stage) is None:
        raise MlmError(
            f"stage name {stage!r} is not valid in registry tags: use letters, digits, '-', "
            "'_' and '/', starting and ending with a letter or digit (e.g. staging, Prod_EU)"
        )
    return stage


# --- versions ------------------------------------------------------------------------------


def is_version(text: str) -> bool:
    return _VERSION.fullmatch(text) is not None


def check_version(text: str) -> str:
    if not is_version(text):
        raise MlmError(
            f"version {text!r} is not semver: write vMAJOR.MINOR.PATCH, optionally with a "
            "pre-release (v1.2.0, v2.0.0-rc.1)"
        )
    return text


def version_key(version: str) -> tuple[Any, ...]:
    """Semver precedence: 1.0.0-rc.1 < 1.0.0-rc.2 < 1.0.0 < 1.0.1; build metadata is ignored."""
    m = _VERSION.fullmatch(version)
    if m is None:
        # GTO names a version it found only through a stage tag by its commit: sort those first.
        return (-1, -1, -1, 0, ())
    pre = m["pre"]
    core = (int(m["major"]), int(m["minor"]), int(m["patch"]))
    if pre is None:
        return (*core, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*core, 0, parts)


def bump(version: str | None, part: str) -> str:
    """The next version after `version` (None: the first one, v0.0.1 as GTO starts)."""
    if version is None:
        return "v0.0.1"
    m = _VERSION.fullmatch(version)
    if m is None:
        raise MlmError(f"cannot bump {version!r}: it is not semver")
    major, minor, patch = int(m["major"]), int(m["minor"]), int(m["patch"])
    if part == "major":
        return f"v{major + 1}.0.0"
    if part == "minor":
        return f"v{major}.{minor + 1}.0"
    if part == "patch":
        # A pre-release bumps to its release: v1.3.0-rc.1 -> v1.3.0.
        return f"v{major}.{minor}.{patch if m['pre'] else patch + 1}"
    raise MlmError(f"--bump takes major, minor or patch, not {part!r}")


# --- NAME@vX.Y.Z / NAME#STAGE / NAME@latest -------------------------------------------------


@dataclass(frozen=True)
class Spec:
    model: str
    version: str | None = None
    stage: str | None = None


def parse_spec(text: str) -> Spec:
    """`churn`, `churn@latest`, `churn@v1.2.0` or `churn#production`."""
    m = _SPEC.fullmatch(text.strip())
    if m is None:
        raise MlmError(
            f"{text!r} names no model version: write NAME, NAME@vX.Y.Z, NAME@latest or "
            "NAME#STAGE (e.g. churn#production)"
        )
    version = m["version"]
    return Spec(m["model"], None if version in ("latest", "greatest") else version, m["stage"])


# --- tag messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    """The message without its signature block: what GTO shows as the tag's message."""
    body: dict[str, Any]
    """The TOML body ({} for a tag written by another tool, or one whose body is unreadable)."""
    signed: bool
    problem: str | None = None


def encode_message(subject: str, body: dict[str, Any]) -> str:
    doc = {"schema": BODY_SCHEMA, **{k: v for k, v in body.items() if v is not None}}
    return f"{subject}\n\n{tomli_w.dumps(doc)}"


def decode_message(message: str) -> Message:
    m = _SIGNATURE.search(message)
    signed = m is not None
    text = message[: m.start()] if m else message
    subject, _, rest = text.partition("\n")
    if _BODY.search(rest) is None:
        return Message(subject.strip(), text.strip(), {}, signed)
    try:
        body = tomllib.loads(rest)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        return Message(subject.strip(), text.strip(), {}, signed, f"its body is not TOML ({exc})")
    schema = body.get("schema")
    if schema != BODY_SCHEMA:
        problem = f"its body has schema {schema!r}; this gitmlm reads {BODY_SCHEMA}"
        return Message(subject.strip(), text.strip(), {}, signed, problem)
    return Message(subject.strip(), text.strip(), body, signed)
