"""Where objects live: the local cache (git config) and the remotes (mlm.toml [storage]).

    [storage]
    default = "s3"                    # the remote used when none is named
    link = "reflink,copy"             # how checkouts place files (also git config mlm.link)
    push_with_records = false         # `git mlm push`/`sync` carry the bytes too (as --data)

    [storage.remotes.s3]
    url = "s3://bucket/prefix"        # or a folder, or any URL fsspec reaches
    endpoint_url = "http://…"         # optional; else AWS_ENDPOINT_URL from the environment

Credentials never live here: they come from the environment and the libraries' own
configuration (~/.aws/credentials, …), so mlm.toml can be committed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitmlm.core import config
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.storage import objects

CACHE_KEY = "mlm.cache"
"""git config: a folder to use as the object cache instead of .git/mlm/objects (share it)."""
LINK_KEY = "mlm.link"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
SECRET_KEYS = (
    "key",
    "secret",
    "token",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "access_key",
    "secret_key",
    "account_key",
    "sas_token",
)
CREDENTIALS_HOME = (
    "credentials belong in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, …) or the storage library's own config (~/.aws/credentials), never in "
    "mlm.toml, which is committed"
)


def cache(repo: Repo) -> objects.Store:
    shared = repo.config_get(CACHE_KEY)
    if shared:
        return objects.Store(Path(shared).expanduser())
    return objects.Store(repo.mlm_dir / "objects")


KEYS = ("default", "link", "push_with_records", "remotes")


def _table(cfg: dict[str, Any]) -> dict[str, Any]:
    table = cfg.get("storage", {})
    if not isinstance(table, dict):
        raise MlmError(f"{config.FILE}: [storage] must be a table")
    unknown = [str(k) for k in table if k not in KEYS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], KEYS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise MlmError(
            f"{config.FILE}: unknown key {unknown[0]!r} in [storage]{hint}; "
            f"known: {', '.join(KEYS)}"
        )
    return table


def links(repo: Repo) -> tuple[str, ...]:
    text = repo.config_get(LINK_KEY)
    if text is None and repo.root is not None:
        value = _table(config.load(repo.root)).get("link")
        text = value if isinstance(value, str) else None
    return objects.check_links(text) if text else objects.DEFAULT_LINKS


def push_with_records(repo: Repo) -> bool:
    if repo.root is None:
        return False
    return _table(config.load(repo.root)).get("push_with_records") is True


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Other keys of the table, handed to the fsspec filesystem (region, …)."""


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise MlmError(f"the remote URL carries credentials; {CREDENTIALS_HOME}")
    if not url.strip():
        raise MlmError("the remote URL is empty")
    return url


def _remote(name: str, table: Any) -> Remote:
    where = f"{config.FILE} [storage.remotes.{name}]"
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise MlmError(f'{where}: needs url = "s3://bucket/prefix" (or a folder)')
    secrets = [k for k in table if k.lower() in SECRET_KEYS]
    if secrets:
        raise MlmError(f"{where}: {', '.join(secrets)} is a credential; {CREDENTIALS_HOME}")
    check_url(table["url"])
    endpoint = table.get("endpoint_url")
    if endpoint is not None and not isinstance(endpoint, str):
        raise MlmError(f"{where}: endpoint_url must be a URL")
    extra = {k: v for k, v in table.items() if k not in ("url", "endpoint_url")}
    return Remote(name, table["url"], endpoint, extra)


def remotes(repo: Repo) -> tuple[dict[str, Remote], str | None]:
    """The declared remotes and the default's name (the only one when just one is declared)."""
    table = _table(config.load(repo.workdir))
    declared = table.get("remotes", {})
    if not isinstance(declared, dict):
        raise MlmError(f"{config.FILE}: [storage.remotes] must hold [storage.remotes.NAME] tables")
    found = {name: _remote(name, t) for name, t in declared.items()}
    default = table.get("default")
    if default is not None and default not in found:
        raise MlmError(
            f"{config.FILE}: [storage] default = {default!r} names no remote; "
            f"`git mlm storage list` shows them"
        )
    if default is None and len(found) == 1:
        default = next(iter(found))
    return found, default


def pick(repo: Repo, name: str | None) -> Remote:
    """The remote called NAME, or the default; one clear error otherwise."""
    found, default = remotes(repo)
    if name is None:
        if default is None:
            if not found:
                raise MlmError(
                    "no storage remote is set up; add one with "
                    "`git mlm storage add NAME URL --default`"
                )
            raise MlmError(
                f"no default storage remote among {', '.join(sorted(found))}; name one "
                "with --remote, or `git mlm storage add NAME URL --default`"
            )
        name = default
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(found)) or "none"
        raise MlmError(f"no storage remote named {name!r} ({hint}known: {known})")
    return found[name]


def for_url(repo: Repo, url: str) -> Remote:
    """How to reach a data URL (`s3://bucket/logs/…`): the settings of the declared remote on
    the same bucket (its endpoint and options), else the environment's."""
    check_url(url)
    scheme, _, rest = url.partition("://")
    bucket = rest.split("/", 1)[0]
    found, default = remotes(repo)
    same = [
        r
        for r in found.values()
        if r.url.partition("://")[0] == scheme
        and r.url.partition("://")[2].split("/", 1)[0] == bucket
    ]
    same.sort(key=lambda r: r.name != default)  # the default first, when it is one of them
    base = same[0] if same else Remote("data", url)
    return Remote(base.name, url, base.endpoint_url, dict(base.options))


def add(repo: Repo, name: str, url: str, *, default: bool, endpoint_url: str | None) -> Remote:
    from gitmlm.core import tomledit

    if not NAME.fullmatch(name):
        raise MlmError(f"bad remote name {name!r}: use letters, digits, _ and -")
    check_url(url)
    found, _ = remotes(repo)
    if name in found:
        raise MlmError(
            f"storage remote {name!r} exists ({found[name].url}); `git mlm storage rm {name}` first"
        )
    file = config.path(repo.workdir)
    text = file.read_text(encoding="utf-8") if file.exists() else "schema = 1\n"
    values: dict[str, Any] = {"url": url}
    if endpoint_url:
        values["endpoint_url"] = endpoint_url
    text = tomledit.set_keys(text, f"storage.remotes.{name}", values)
    if default:
        text = tomledit.set_keys(text, "storage", {"default": name})
    _write(file, text)
    return Remote(name, url, endpoint_url)


def remove(repo: Repo, name: str) -> None:
    from gitmlm.core import tomledit

    # Read the names only: removing is how a broken table (one with a secret) gets fixed.
    declared = _table(config.load(repo.workdir)).get("remotes", {})
    names = list(declared) if isinstance(declared, dict) else []
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MlmError(
            f"no storage remote named {name!r} ({hint}known: {', '.join(sorted(names)) or 'none'})"
        )
    file = config.path(repo.workdir)
    text = tomledit.remove_table(file.read_text(encoding="utf-8"), f"storage.remotes.{name}")
    table = _table(config.load(repo.workdir))
    if table.get("default") == name:
        text = _drop_default(text)
    _write(file, text)


def _drop_default(text: str) -> str:
    from gitmlm.core import tomledit

    lines = text.splitlines(keepends=True)
    pattern = re.compile(r"^\s*default\s*=")
    span = tomledit._table_span(lines, "storage")
    if span is not None:
        start, end = span
        lines = [ln for i, ln in enumerate(lines) if not (start < i < end and pattern.match(ln))]
    return "".join(lines)


def _write(file: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, file)
