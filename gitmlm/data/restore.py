"""Dataset bytes: store recorded versions in the object cache, push and pull them, and check a
recorded version out into the dataset's path. Domain code: returns data, never prints.

A version is what mlm.lock records (at REV, or in the work tree): its manifest (a git object)
names every file by digest, and those digests are the object store's names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm import storage
from gitmlm.core import config
from gitmlm.core.git import Repo
from gitmlm.data import datasets, hashing, manifest, statcache
from gitmlm.data import lock as lockfile
from gitmlm.data import spec as dataspec
from gitmlm.errors import MlmError
from gitmlm.storage import objects, settings, transfer


@dataclass
class Version:
    name: str
    path: str
    """The recorded, repo-relative path (a file, a folder or a glob)."""
    algorithm: str
    digest: str
    base: str
    """The folder manifest paths are relative to ("" for the root)."""
    kind: str
    """"file", "dir" or "glob"."""
    entries: manifest.Entries
    rev: str | None

    def digests(self) -> list[str]:
        return [f"{self.algorithm}:{hex_}" for _, hex_ in self.entries.values()]

    def full(self, rel: str) -> str:
        """Repo-relative path of a manifest entry."""
        return f"{self.base}/{rel}" if self.base else rel

    @property
    def label(self) -> str:
        return f"{self.name} at {self.rev}" if self.rev else self.name

    @property
    def size(self) -> int:
        return sum(size for size, _ in self.entries.values())


def _version(repo: Repo, name: str, entry: dict[str, Any], rev: str | None) -> Version:
    entries = manifest.read(repo, entry["manifest"])
    path = str(entry["path"])
    algorithm = str(entry["algorithm"])
    spec = dataspec.Spec(name, path, (), algorithm)
    if spec.is_glob:
        kind, base = "glob", dataspec._static_prefix(path)
    elif len(entries) == 1 and entry["digest"] == f"{algorithm}:{next(iter(entries.values()))[1]}":
        kind, base = "file", path.rpartition("/")[0]
    else:
        kind, base = "dir", path
    return Version(name, path, algorithm, str(entry["digest"]), base, kind, entries, rev)


def versions(repo: Repo, names: Sequence[str] | None, rev: str | None) -> list[Version]:
    """The versions mlm.lock records (at REV when given) of the named datasets (or all)."""
    lock = lockfile.load(repo.workdir) if rev is None else lockfile.at(repo, rev)
    label = "mlm.lock" if rev is None else f"mlm.lock at {rev}"
    chosen = list(dict.fromkeys(names)) if names else sorted(lock)
    out = []
    for name in chosen:
        if name not in lock:
            known = ", ".join(sorted(lock)) or "none"
            raise MlmError(f"dataset {name!r} is not recorded in {label} (recorded: {known})")
        out.append(_version(repo, name, lock[name], rev))
    if not out:
        raise MlmError(f"{label} records no datasets; `git mlm data add NAME PATH` records one")
    return out


# --- storing into the cache --------------------------------------------------------------------


def _from_worktree(repo: Repo, v: Version, digests: set[str]) -> set[str]:
    """Store the wanted objects the work tree still holds (a version recorded before storing
    was on); returns those stored."""
    store = settings.cache(repo)
    done = set()
    try:
        for rel, (size, hex_) in v.entries.items():
            digest = f"{v.algorithm}:{hex_}"
            if digest not in digests or digest in done:
                continue
            full = repo.workdir / v.full(rel)
            try:
                if full.stat().st_size != size:
                    continue
                store.add_file(full, digest)
            except (OSError, MlmError):
                continue
            done.add(digest)
    finally:
        store.flush()  # small files went into a pack: it becomes visible
    return done


# --- push, pull, verify ------------------------------------------------------------------------


@dataclass
class Moved:
    remote: str
    versions: list[Version]
    report: transfer.Report
    unavailable: list[str] = field(default_factory=list)
    """Objects a push could not find anywhere here (their files were overwritten unstored)."""


def push(
    repo: Repo,
    names: Sequence[str] | None = None,
    rev: str | None = None,
    *,
    remote: str | None = None,
    progress: transfer.Progress | None = None,
) -> Moved:
    """Upload every file of the recorded versions that the remote lacks: one listing, then
    the missing objects in parallel (an unchanged dataset costs the listing)."""
    target = settings.pick(repo, remote)
    chosen = versions(repo, names, rev)
    conn = transfer.connect(repo, target)
    there = transfer.present(conn)
    store = settings.cache(repo)
    wanted = list(dict.fromkeys(d for v in chosen for d in v.digests()))
    lacking = {d for d in wanted if d not in there and not store.has(d)}
    for v in chosen:
        if lacking:
            lacking -= _from_worktree(repo, v, lacking)
    report = transfer.push(conn, store, [d for d in wanted if d not in lacking], progress, there)
    return Moved(target.name, chosen, report, sorted(lacking))


def pull(
    repo: Repo,
    names: Sequence[str] | None = None,
    rev: str | None = None,
    *,
    remote: str | None = None,
    progress: transfer.Progress | None = None,
) -> Moved:
    """Download into the cache every file of the recorded versions that it lacks, checked."""
    target = settings.pick(repo, remote)
    chosen = versions(repo, names, rev)
    wanted = list(dict.fromkeys(d for v in chosen for d in v.digests()))
    store = settings.cache(repo)
    if all(store.has(d) for d in wanted):
        return Moved(target.name, chosen, transfer.Report(already=len(wanted)))
    report = storage.ensure(repo, wanted, remote=target.name, progress=progress)
    return Moved(target.name, chosen, report)


@dataclass
class Verified:
    version: Version
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    where: str = "cache"


def verify(
    repo: Repo,
    names: Sequence[str] | None = None,
    rev: str | None = None,
    *,
    remote: str | None = None,
    on_remote: bool = False,
) -> list[Verified]:
    """Re-hash what is stored for each version: the cache, or (`on_remote`) the remote."""
    chosen = versions(repo, names, rev)
    out = []
    if on_remote:
        target = settings.pick(repo, remote)
        conn = transfer.connect(repo, target)
        for v in chosen:
            r = transfer.check_remote(conn, v.digests())
            out.append(Verified(v, len(r.moved), r.missing, r.bad, f"remote {target.name}"))
        return out
    store = settings.cache(repo)
    for v in chosen:
        found = Verified(v)
        for digest in dict.fromkeys(v.digests()):
            state = store.check(digest)  # loose or packed, re-hashed
            if state == "missing":
                found.missing.append(digest)
            elif state == "bad":
                found.bad.append(digest)
            else:
                found.ok += 1
        out.append(found)
    return out


# --- checkout ----------------------------------------------------------------------------------


@dataclass
class CheckedOut:
    version: Version
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    replaced: list[str] = field(default_factory=list)
    """Local changes stored nowhere that --force overwrote or removed."""
    how: dict[str, int] = field(default_factory=dict)
    """How files were placed: reflink / hardlink / copy -> count."""


def _current(repo: Repo, v: Version, force: bool) -> dict[str, tuple[int, str]]:
    """What the dataset's path holds now: manifest-relative path -> (size, hex)."""
    root = repo.workdir
    top = root / v.path if v.kind != "glob" else root / v.base if v.base else root
    if v.kind == "dir" and top.exists() and not top.is_dir():
        if not force:
            raise MlmError(
                f"dataset {v.name}: {v.path} is now a file where the dataset's folder was; "
                "move it away, or give --force to replace it"
            )
        return {"": (top.stat().st_size, objects.hash_path(top, v.algorithm))}
    if v.kind == "file" and top.is_dir():
        raise MlmError(
            f"dataset {v.name}: {v.path} is now a folder where the dataset's file was; "
            "move it away first"
        )
    if not top.exists():
        return {}
    spec = dataspec.Spec(v.name, v.path, _excludes(repo, v), v.algorithm)
    try:
        fs = dataspec.enumerate_files(root, spec)
    except MlmError:
        if top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
            return {}  # an empty folder: nothing to compare, nothing to lose
        raise
    if fs.base != v.base:
        return {}
    cache = statcache.StatCache.load(repo.mlm_dir, root)
    try:
        (fp,) = datasets.fingerprint(repo, [fs], cache, None)
        return fp.entries()
    finally:
        cache.save()


def _excludes(repo: Repo, v: Version) -> tuple[str, ...]:
    with contextlib.suppress(MlmError):
        for s in dataspec.declared(repo.workdir, config.load(repo.workdir)):
            if s.name == v.name and s.path == v.path:
                return s.exclude
    return ()


def checkout(
    repo: Repo,
    name: str,
    rev: str | None = None,
    *,
    force: bool = False,
    remote: str | None = None,
    progress: transfer.Progress | None = None,
) -> CheckedOut:
    """Make dataset NAME's path hold exactly the version mlm.lock records (at REV).

    Everything is fetched and checked first; files that would be overwritten or removed and
    are stored nowhere (not in the cache) stop it unless `force`, which then lists them."""
    (v,) = versions(repo, [name], rev)
    storage.ensure(repo, v.digests(), remote=remote, progress=progress)
    current = _current(repo, v, force)
    store = settings.cache(repo)
    out = CheckedOut(v)
    to_write = [rel for rel, e in v.entries.items() if current.get(rel, (None, None))[1] != e[1]]
    to_remove = [rel for rel in current if rel not in v.entries]
    touched = [rel for rel in (*to_write, *to_remove) if rel in current]
    unstored = [rel for rel in touched if not store.has(f"{v.algorithm}:{current[rel][1]}")]
    if unstored and not force:
        shown = ", ".join(v.full(r) if r else v.path for r in sorted(unstored)[:3])
        more = f" and {len(unstored) - 3} more" if len(unstored) > 3 else ""
        raise MlmError(
            f"checkout of {v.label} would overwrite {len(unstored)} local change(s) stored "
            f"nowhere ({shown}{more}); `git mlm data add {name}` stores them, or give --force"
        )
    damaged = store.damaged_packed(f"{v.algorithm}:{v.entries[rel][1]}" for rel in to_write)
    if damaged:
        raise MlmError(
            f"checkout of {v.label}: {len(damaged)} cached object(s) ({damaged[0][:19]}…) do "
            "not match their digest (the cache was changed); nothing was written. `git mlm "
            "data verify` lists them"
        )
    out.replaced = sorted(v.full(r) if r else v.path for r in unstored)
    root = repo.workdir
    if "" in current:  # a file where the folder was, and --force
        (root / v.path).unlink()
    links = settings.links(repo)
    written: dict[str, hashing.Hashed] = {}
    made: set[str] = set()
    top = str(root)
    for rel in to_write:
        full = v.full(rel)
        target = f"{top}/{full}"
        parent = os.path.dirname(target)
        if parent not in made:
            try:
                os.makedirs(parent, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise MlmError(
                    f"dataset {v.name}: cannot create {os.path.relpath(parent, top)}: a file "
                    "is in the way; move it"
                ) from exc
            made.add(parent)
        hex_ = v.entries[rel][1]
        how = store.place(f"{v.algorithm}:{hex_}", target, links)
        out.how[how] = out.how.get(how, 0) + 1
        out.written.append(full)
        written[full] = hashing.Hashed(hashing.stat_key(os.stat(target)), hex_)
    for rel in to_remove:
        if not rel:
            continue
        gone = root / v.full(rel)
        gone.unlink()
        out.removed.append(v.full(rel))
        _prune_empty(gone.parent, root / (v.base or "."))
    out.unchanged = len(v.entries) - len(to_write)
    if written:
        # The stat cache learns the digests just placed, so `data status` reads nothing.
        cache = statcache.StatCache.load(repo.mlm_dir, root)
        cache.put_many(v.algorithm, written, cache.stamp())
        cache.save()
    return out


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# --- what gc keeps -----------------------------------------------------------------------------


def live(repo: Repo) -> set[str]:
    """Every file digest of every manifest gitmlm keeps (refs/mlm/manifests/*): each recorded
    version of each dataset, so gc never drops data a lock in history names."""
    from gitmlm.core import refs

    out: set[str] = set()
    for name, commit in repo.refs(refs.MANIFESTS).items():
        del name
        info = repo.commit(commit)
        algorithm = "sha256"
        for word in info.message.split():
            if ":" in word and word.split(":", 1)[0] in lockfile.ALGORITHMS:
                algorithm = word.split(":", 1)[0]
        tree = repo.tree_of(commit)
        out.update(f"{algorithm}:{hex_}" for _, hex_ in manifest.read(repo, tree).values())
    return out
