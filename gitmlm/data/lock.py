"""mlm.lock: checking what a reader got (it may be hand-edited) and writing it atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from gitmlm.errors import MlmError

if TYPE_CHECKING:  # pygit2 stays unloaded on the fast path of `data status` (cli/datafast.py)
    from gitmlm.core.git import Repo

FILE = "mlm.lock"
HEADER = (
    "# Dataset fingerprints, written by `git mlm data add`: commit it with the code, do not\n"
    "# edit it by hand. `git mlm data status` compares it with the files.\n"
)
KEYS = ("path", "algorithm", "digest", "size", "files", "manifest")
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

ALGORITHMS = ("sha256", "sha512", "blake2b", "sha3_256")
"""What a lock entry may name; `data.hashing` computes them (this module only reads and writes)."""


def _fix(file: str) -> str:
    return f"restore it with `git checkout {FILE}` or rebuild it with `git mlm data add`"


def check(doc: Mapping[str, Any], file: str = FILE) -> dict[str, dict[str, Any]]:
    """The datasets of a parsed lock, or one clear error naming the broken key."""
    schema = doc.get("schema", 1)
    if schema != 1:
        raise MlmError(f"{file}: schema {schema!r} is not one this gitmlm reads (1); upgrade")
    datasets = doc.get("datasets", {})
    if not isinstance(datasets, dict):
        raise MlmError(f"{file}: datasets must be a table; {_fix(file)}")
    out = {}
    for name, entry in datasets.items():
        where = f"{file}: datasets.{name}"
        if not isinstance(entry, dict):
            raise MlmError(f"{where} must be a table; {_fix(file)}")
        missing = [k for k in KEYS if k not in entry]
        if missing:
            raise MlmError(f"{where} lacks {', '.join(missing)}; {_fix(file)}")
        algorithm = entry["algorithm"]
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise MlmError(f"{where}.algorithm {algorithm!r} is unknown; {_fix(file)}")
        length = hashing_length(algorithm)
        digest = entry["digest"]
        if not isinstance(digest, str) or not re.fullmatch(
            rf"{re.escape(algorithm)}:[0-9a-f]{{{length}}}", digest
        ):
            raise MlmError(f"{where}.digest {digest!r} is not {algorithm}:<hex>; {_fix(file)}")
        for key in ("size", "files"):
            value = entry[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MlmError(f"{where}.{key} must be a whole number; {_fix(file)}")
        if not isinstance(entry["path"], str) or not entry["path"]:
            raise MlmError(f"{where}.path must be a path; {_fix(file)}")
        if not isinstance(entry["manifest"], str) or not _OID.fullmatch(entry["manifest"]):
            raise MlmError(f"{where}.manifest must be a git object id; {_fix(file)}")
        out[str(name)] = dict(entry)
    return out


def hashing_length(algorithm: str) -> int:
    return hashlib.new(algorithm).digest_size * 2


def render(datasets: Mapping[str, Mapping[str, Any]]) -> str:
    doc = {
        "schema": 1,
        "datasets": {name: {k: datasets[name][k] for k in KEYS} for name in sorted(datasets)},
    }
    return HEADER + tomli_w.dumps(doc)


def write_text(file: Path, text: str) -> None:
    """Replace `file` atomically: a reader sees the old or the new content, never half."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(root: Path) -> dict[str, dict[str, Any]]:
    """mlm.lock's datasets in the work tree: name -> {path, algorithm, digest, size, files,
    manifest}; {} when there is no lock file; a hand-broken entry is one clear error naming it."""
    file = root / FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text, str(file))


def parse(text: str, where: str = FILE) -> dict[str, dict[str, Any]]:
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise MlmError(
            f"{where}: invalid TOML ({exc}); restore it with `git checkout mlm.lock`"
            " or rebuild it with `git mlm data add`"
        ) from exc
    return check(doc, where)


def at(repo: Repo, rev: str) -> dict[str, dict[str, Any]]:
    """mlm.lock as committed at `rev`; {} when that commit has none."""
    blob = repo.blob_at(repo.resolve(rev), FILE)
    if blob is None:
        return {}
    return parse(repo.blob(blob).decode("utf-8", "replace"), f"{FILE} at {rev}")
