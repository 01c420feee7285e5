"""mlm.toml: reading the project's declarations, and its schema.

Every reader of mlm.toml goes through `load` (or `parse`): the file is checked once, against
the keys each section may hold, so a typo (`[checkpoint] output = ...`) is an error naming the
known keys instead of a setting silently off. The typed views (`settings`) give each part its
section; what a value means beyond its type lives with its owner (datasets in data/spec.py,
models, stages and gates in models/, checkpoint rules in checkpoints/rules.py, [monitor] in
monitor/).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm.errors import MlmError

FILE = "mlm.toml"

TEMPLATE = """\
# gitmlm project declarations; `git mlm --help` and the docs/ folder of gitmlm explain each.
# Committed with the code; every section is optional.
schema = 1

# Datasets: fingerprinted into mlm.lock and checked on every commit.
# [datasets.train]
# path = "data/train.csv"        # a file, a directory, or a glob

# Models: artifacts the registry versions.
# [models.churn]
# path = "models/churn.pkl"
# description = "churn classifier"

# Which way is better for each metric, for gates and best-of listings.
[metrics]
# acc = "max"
# loss = "min"

# What a run's checkpoint captures, and which files are results a run must have produced.
[checkpoint]
# code = ["**/*.py"]             # what counts as code (default: every tracked, unignored file)
# exclude = ["data/**"]          # never snapshot these
# outputs = ["models/*.pkl"]     # committing these needs a recorded run that made them
# mode = "block"                 # or "warn"

# Model registry stages, in promotion order.
[registry]
stages = ["dev", "staging", "production"]
"""


def path(root: Path) -> Path:
    return root / FILE


SCHEMA = 1
# The keys of each section. A section is checked here for its keys and their types; [monitor]
# and [storage] and [scan] check their own tables (monitor/monitor.py, storage/settings.py,
# scan/settings.py), and so does a gate's `scan` table (models/gates.py), so only their
# presence is known here.
SECTIONS = (
    "schema",
    "datasets",
    "models",
    "metrics",
    "checkpoint",
    "registry",
    "monitor",
    "storage",
    "scan",
)
DATASET_KEYS = ("path", "exclude", "algorithm")
MODEL_KEYS = ("path", "description", "type")
CHECKPOINT_KEYS = ("code", "exclude", "outputs", "mode", "max_size")
REGISTRY_KEYS = ("stages", "gates", "allowed_signers")
GATE_KEYS = (
    "require",
    "better_than_current",
    "datasets_match_lock",
    "clean_checkpoint",
    "signed",
    "scan",
)
DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Dataset:
    """`[datasets.NAME]` (or `NAME = "path"`)."""

    name: str
    path: str
    exclude: tuple[str, ...] = ()
    algorithm: str | None = None


@dataclass(frozen=True)
class Model:
    """`[models.NAME]`."""

    name: str
    path: str | None
    description: str = ""
    type: str = ""


@dataclass(frozen=True)
class Checkpoint:
    """`[checkpoint]`; None where the file says nothing (the owner's default applies)."""

    code: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    mode: str | None = None
    max_size: str | int | None = None


@dataclass(frozen=True)
class Gates:
    """`[registry.gates.STAGE]`."""

    require: tuple[str, ...] = ()
    better_than_current: tuple[str, ...] = ()
    datasets_match_lock: bool = False
    clean_checkpoint: bool = False
    signed: bool = False


@dataclass(frozen=True)
class Registry:
    """`[registry]`; stages None when not declared (the registry's default applies)."""

    stages: tuple[str, ...] | None = None
    gates: dict[str, Gates] = field(default_factory=dict)
    allowed_signers: str | None = None


@dataclass(frozen=True)
class Settings:
    """mlm.toml, typed and checked."""

    datasets: dict[str, Dataset] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    registry: Registry = field(default_factory=Registry)


def read_text(root: Path) -> str | None:
    """mlm.toml's text, None when there is none; a directory or non-UTF-8 bytes are errors."""
    file = path(root)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise MlmError(f"{file} is a directory; mlm.toml must be a TOML file") from None
    except OSError as exc:
        raise MlmError(f"{file}: cannot read it ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex().upper()
        line = data[: exc.start].count(b"\n") + 1
        raise MlmError(
            f"{file}: not UTF-8 text (byte 0x{bad} on line {line}); save it as UTF-8"
        ) from None


def load(root: Path) -> dict[str, Any]:
    """The parsed and checked mlm.toml, or {} when there is none."""
    text = read_text(root)
    return {} if text is None else parse(text, str(path(root)))


def parse(text: str, where: str = FILE) -> dict[str, Any]:
    """mlm.toml's text, parsed and checked against the schema; errors name `where`."""
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise MlmError(f"{where}: invalid TOML ({exc}); fix the file and try again") from exc
    schema = doc.get("schema", SCHEMA)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise MlmError(f"{where}: schema must be the integer {SCHEMA} (schema = 1), not {schema!r}")
    if schema > SCHEMA:
        raise MlmError(
            f"{where}: schema {schema} is newer than this gitmlm reads ({SCHEMA}); upgrade gitmlm"
        )
    settings(doc, where)
    return doc


def settings(cfg: Mapping[str, Any], where: str = FILE) -> Settings:
    """The typed view of a parsed mlm.toml; unknown keys and wrong types are errors."""
    _known(cfg, SECTIONS, where, "the top level")
    return Settings(
        datasets={
            str(k): _dataset(str(k), v, where) for k, v in _table(cfg, "datasets", where).items()
        },
        models={str(k): _model(str(k), v, where) for k, v in _table(cfg, "models", where).items()},
        metrics=_metrics(_table(cfg, "metrics", where), where),
        checkpoint=_checkpoint(_table(cfg, "checkpoint", where), where),
        registry=_registry(_table(cfg, "registry", where), where),
    )


def metric_direction(cfg: dict[str, Any], name: str) -> str | None:
    """ "max" or "min" as declared in [metrics], else None."""
    return _metrics(_table(cfg, "metrics", FILE), FILE).get(name)


# --- the checks ---------------------------------------------------------------------------------


def _known(table: Mapping[str, Any], keys: tuple[str, ...], where: str, section: str) -> None:
    unknown = [str(k) for k in table if k not in keys]
    if unknown:
        near = difflib.get_close_matches(unknown[0], keys, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise MlmError(
            f"{where}: unknown key {unknown[0]!r} in {section}{hint}; known: {', '.join(keys)}"
        )


def _table(cfg: Mapping[str, Any], key: str, where: str, section: str = "") -> dict[str, Any]:
    value = cfg.get(key, {})
    if not isinstance(value, dict):
        name = f"{section}.{key}" if section else key
        raise MlmError(f"{where}: [{name}] must be a table, not {value!r}")
    return value


def _strings(
    table: Mapping[str, Any], key: str, where: str, section: str, what: str = 'strings, like ["a"]'
) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MlmError(f"{where}: [{section}] {key} must be a list of {what}")
    return tuple(value)


_GLOBS = 'globs, like ["*.py"]'


def _string(table: Mapping[str, Any], key: str, where: str, section: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise MlmError(f"{where}: [{section}] {key} must be a string, not {value!r}")
    return value


def _flag(table: Mapping[str, Any], key: str, where: str, section: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise MlmError(f"{where}: [{section}] {key} must be true or false, not {value!r}")
    return value


def _dataset(name: str, decl: Any, where: str) -> Dataset:
    section = f"datasets.{name}"
    if isinstance(decl, str):
        return Dataset(name, decl)
    if not isinstance(decl, dict) or not isinstance(decl.get("path"), str):
        raise MlmError(f'{where}: [{section}] needs path = "a file, folder or glob"')
    _known(decl, DATASET_KEYS, where, f"[{section}]")
    return Dataset(
        name,
        decl["path"],
        _strings(decl, "exclude", where, section, _GLOBS),
        _string(decl, "algorithm", where, section),
    )


def _model(name: str, decl: Any, where: str) -> Model:
    section = f"models.{name}"
    if not isinstance(decl, dict):
        raise MlmError(f'{where}: [{section}] must be a table: path = "models/{name}.pkl"')
    _known(decl, MODEL_KEYS, where, f"[{section}]")
    return Model(
        name,
        _string(decl, "path", where, section),
        _string(decl, "description", where, section) or "",
        _string(decl, "type", where, section) or "",
    )


def _metrics(table: Mapping[str, Any], where: str) -> dict[str, str]:
    for name, value in table.items():
        if value not in DIRECTIONS:
            raise MlmError(f'{where}: [metrics] {name} must be "max" or "min", not {value!r}')
    return {str(k): str(v) for k, v in table.items()}


def _checkpoint(table: Mapping[str, Any], where: str) -> Checkpoint:
    _known(table, CHECKPOINT_KEYS, where, "[checkpoint]")

    def globs(key: str) -> tuple[str, ...] | None:
        return _strings(table, key, where, "checkpoint", _GLOBS) if key in table else None

    size = table.get("max_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, str | int)):
        raise MlmError(f'{where}: [checkpoint] max_size must be a size like "10 MB", not {size!r}')
    return Checkpoint(
        code=globs("code"),
        exclude=globs("exclude"),
        outputs=globs("outputs"),
        mode=_string(table, "mode", where, "checkpoint"),
        max_size=size,
    )


def _registry(table: Mapping[str, Any], where: str) -> Registry:
    _known(table, REGISTRY_KEYS, where, "[registry]")
    names = 'names, like ["dev", "production"]'
    stages = _strings(table, "stages", where, "registry", names) if "stages" in table else None
    gates = {}
    for stage, settings_ in _table(table, "gates", where, "registry").items():
        section = f"registry.gates.{stage}"
        if not isinstance(settings_, dict):
            raise MlmError(f"{where}: [{section}] must be a table")
        _known(settings_, GATE_KEYS, where, f"[{section}]")
        gates[str(stage)] = Gates(
            require=_strings(settings_, "require", where, section),
            better_than_current=_strings(settings_, "better_than_current", where, section),
            datasets_match_lock=_flag(settings_, "datasets_match_lock", where, section),
            clean_checkpoint=_flag(settings_, "clean_checkpoint", where, section),
            signed=_flag(settings_, "signed", where, section),
        )
    return Registry(stages, gates, _string(table, "allowed_signers", where, "registry"))
