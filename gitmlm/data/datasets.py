"""Declared datasets: fingerprints, the lock file, status and diffs. Domain code: returns data.

A dataset's fingerprint is computed through the stat cache, so a pass over unchanged data reads
no file; changed files are hashed in parallel. Recording a dataset (`add`) stores its manifest
as git objects kept reachable by a ref, and writes its digest into mlm.lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmlm.core import config, refs
from gitmlm.core.git import CasFailed, Repo
from gitmlm.data import hashing, manifest, statcache
from gitmlm.data import lock as lockfile
from gitmlm.data import spec as dataspec
from gitmlm.data.spec import FileSet, Spec
from gitmlm.errors import MlmError

if TYPE_CHECKING:
    from gitmlm.storage.objects import Store

LOCK_FILE = lockfile.FILE


def file_set(root: Path, spec: Spec, cache: statcache.StatCache) -> FileSet:
    """The files `spec` means now: from the stat cache's memo when nothing it saw changed
    (no walk), else by a walk."""
    top = os.path.normpath(os.path.abspath(root))
    found = statcache.quick(top, spec, cache.memos.get(spec.memo_key))
    if found is not None:
        return found
    try:
        stamp = cache.stamp()  # before the walk stats its folders: see statcache
    except OSError:
        stamp = 0  # a read-only .git: the memo will not vouch for the folders
    fs = dataspec.enumerate_files(root, spec)
    fs.stamp = stamp
    return fs


# --- fingerprints ------------------------------------------------------------------------------


@dataclass
class Fingerprint:
    fileset: FileSet
    digest: str
    size: int
    cache: statcache.StatCache
    root: str
    stored: set[str] = field(default_factory=set)
    """Repo-relative paths whose bytes went into the object store as they were hashed."""
    _entries: manifest.Entries | None = None

    @property
    def spec(self) -> Spec:
        return self.fileset.spec

    @property
    def files(self) -> int:
        return len(self.fileset.path_list())

    def entries(self, checked: bool = False) -> manifest.Entries:
        """Path relative to the dataset folder -> (size, hex), from the cache. A file whose entry
        does not match its stat (the table was deleted, or another process saved an older one
        beside our memo) is hashed now; `checked`: the caller just made the table match."""
        if self._entries is not None:
            return self._entries
        algorithm = self.spec.algorithm
        table = self.cache.table(algorithm)
        stat_key = hashing.stat_key
        missing = []
        for path, st in [] if checked else self.fileset.files:
            entry = table.get(path)
            if entry is None or entry[0] != stat_key(st):
                missing.append((path, st.st_size))
        if missing:
            stamp = self.cache.stamp()
            done = hashing.hash_files(self.root, missing, algorithm, stamp=stamp)
            self.cache.put_many(algorithm, done, stamp)
        cut = len(self.fileset.base) + 1 if self.fileset.base else 0
        out: manifest.Entries = {}
        for path in self.fileset.path_list():
            key, hex_, _stamp = table[path]
            out[path[cut:]] = (key[0], hex_)
        self._entries = out
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.spec.path,
            "algorithm": self.spec.algorithm,
            "digest": self.digest,
            "size": self.size,
            "files": self.files,
        }


def fingerprint(
    repo: Repo,
    filesets: Sequence[FileSet],
    cache: statcache.StatCache,
    progress: hashing.ProgressFactory | None = None,
    store: Store | None = None,
) -> list[Fingerprint]:
    """Digests of file sets: from a dataset's memo when no file's stat moved, else per file
    from the cache where the stat vouches for it, hashing the rest (storing their bytes into
    `store` as they are read, where `hashing.hash_file` can)."""
    root = str(repo.workdir)
    out: list[Fingerprint | None] = []
    for fs in filesets:
        memo = cache.hit(fs)
        out.append(Fingerprint(fs, memo.digest, memo.size, cache, root) if memo else None)
    todo = [fs for fs, fp in zip(filesets, out, strict=True) if fp is None]
    stale: dict[str, list[tuple[str, int]]] = {}
    for fs in todo:
        table = cache.table(fs.spec.algorithm)
        stale.setdefault(fs.spec.algorithm, []).extend(
            (path, st.st_size)
            for path, st in fs.files
            if not statcache.fresh(table.get(path), hashing.stat_key(st))
        )
    jobs = [job for group in stale.values() for job in group]
    stored: set[str] = set()
    if jobs:
        stamp = cache.stamp()
        bar = progress(sum(s for _, s in jobs), len(jobs)) if progress else None
        try:
            for algorithm, group in stale.items():
                done = hashing.hash_files(root, group, algorithm, bar, store=store, stamp=stamp)
                cache.put_many(algorithm, done, stamp)
                stored.update(p for p, h in done.items() if h.stored)
        finally:
            if store is not None:
                store.flush()  # the small objects this process packed become visible
            if bar:
                bar.close()
    for i, fs in enumerate(filesets):
        if out[i] is not None:
            continue
        fp = Fingerprint(fs, "", 0, cache, root, stored)
        entries = fp.entries(checked=True)  # every file is fresh in the table or just hashed
        fp.digest = manifest.digest(fs.spec.algorithm, fs.kind, entries)
        fp.size = sum(size for size, _ in entries.values())
        cache.remember(fs, fp.digest, fp.size)
        out[i] = fp
    return [fp for fp in out if fp is not None]


def _keep(repo: Repo, tree: str, what: str) -> None:
    """Keep a manifest reachable (gc, push) by a ref of its own, created once."""
    name = refs.manifest(tree)
    if repo.ref(name) is None:
        commit = repo.commit_tree(tree, [], f"gitmlm manifest: {what}\n")
        # CasFailed: made meanwhile by another writer; the tree is reachable either way.
        with contextlib.suppress(CasFailed):
            repo.update_ref(name, commit, None, "gitmlm: keep dataset manifest")


def store_manifest(repo: Repo, fp: Fingerprint) -> str:
    tree = manifest.write(repo, fp.entries())
    _keep(repo, tree, f"{fp.spec.name} {fp.digest}")
    return tree


# --- the project's datasets --------------------------------------------------------------------


@dataclass
class Project:
    """mlm.toml's declarations and mlm.lock's records, read once."""

    root: Path
    specs: dict[str, Spec]
    lock: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, repo: Repo, lock_text: str | None = None) -> Project:
        root = repo.workdir
        specs = {s.name: s for s in dataspec.declared(root, config.load(root))}
        lock = lockfile.load(root) if lock_text is None else lockfile.parse(lock_text)
        return cls(root, specs, lock)

    def names(self, wanted: Sequence[str] | None) -> list[str]:
        known = list(self.specs) + [n for n in self.lock if n not in self.specs]
        if not wanted:
            return known
        for name in wanted:
            if name not in known:
                raise MlmError(
                    f"no dataset named {name!r}; `git mlm data ls` lists them, "
                    f"`git mlm data add {name} PATH` declares one"
                )
        return list(dict.fromkeys(wanted))


@dataclass
class Status:
    name: str
    path: str
    state: str
    """clean | modified | unrecorded (declared, not in mlm.lock) | undeclared (only in the lock)
    | error (its files cannot be read as declared: `note` says why)"""
    locked: dict[str, Any] | None = None
    current: Fingerprint | None = None
    changes: manifest.Changes | None = None
    """File-level changes for a modified dataset (None when its manifest is not here)."""
    note: str = ""


def status(
    repo: Repo,
    names: Sequence[str] | None = None,
    *,
    lock_text: str | None = None,
    changes: bool = True,
    progress: hashing.ProgressFactory | None = None,
) -> list[Status]:
    """Each dataset against mlm.lock (or against `lock_text`, the staged lock for the hook)."""
    project = Project.load(repo, lock_text)
    chosen = project.names(names)
    declared = [n for n in chosen if n in project.specs]
    cache = statcache.StatCache.load(repo.mlm_dir, project.root)
    try:
        return _status(repo, project, chosen, declared, cache, names, changes, progress)
    finally:
        cache.save()


def _status(
    repo: Repo,
    project: Project,
    chosen: list[str],
    declared: list[str],
    cache: statcache.StatCache,
    names: Sequence[str] | None,
    changes: bool,
    progress: hashing.ProgressFactory | None,
) -> list[Status]:
    # One dataset's problem (a broken symlink, an unreadable file) is reported as its state;
    # the others are still compared.
    problems: dict[str, str] = {}
    filesets = []
    for n in declared:
        try:
            filesets.append(file_set(project.root, project.specs[n], cache))
        except MlmError as exc:
            problems[n] = str(exc).removeprefix(f"dataset {n}: ")
    if not names:
        dataspec.check_disjoint(filesets)
    try:
        fingerprints = fingerprint(repo, filesets, cache, progress)
    except MlmError:
        fingerprints = []
        for fs in filesets:
            try:
                fingerprints += fingerprint(repo, [fs], cache, progress)
            except MlmError as exc:
                problems[fs.spec.name] = str(exc).removeprefix(f"dataset {fs.spec.name}: ")
    current = {fp.spec.name: fp for fp in fingerprints}
    if not names:
        cache.prune(
            (p for fs in filesets for p in fs.path_list()),
            (s.memo_key for s in project.specs.values()),
        )
    out = []
    for name in chosen:
        locked = project.lock.get(name)
        fp = current.get(name)
        if name in problems:
            spec = project.specs[name]
            out.append(Status(name, spec.path, "error", locked, note=problems[name]))
            continue
        if fp is None:
            out.append(Status(name, locked["path"] if locked else "", "undeclared", locked))
            continue
        st = Status(name, fp.spec.path, "clean", locked, fp)
        if locked is None:
            st.state = "unrecorded"
        elif (locked["path"], locked["algorithm"]) != (fp.spec.path, fp.spec.algorithm):
            st.state = "modified"
            st.note = f"declared as {fp.spec.path} ({fp.spec.algorithm}), recorded as " + (
                f"{locked['path']} ({locked['algorithm']})"
            )
        elif locked["digest"] != fp.digest:
            st.state = "modified"
        if (
            st.state == "modified"
            and changes
            and locked is not None
            and locked["algorithm"] == fp.spec.algorithm
        ):
            try:
                st.changes = manifest.compare(manifest.read(repo, locked["manifest"]), fp.entries())
            except MlmError as exc:
                st.note = st.note or str(exc)
        out.append(st)
    return out


# --- recording ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    name: str
    entry: dict[str, Any]
    previous: str | None
    """The digest mlm.lock held before, None for a new dataset."""
    declared: bool = False
    """Whether mlm.toml was changed to declare it."""


def add(
    repo: Repo,
    name: str | None = None,
    path: str | None = None,
    *,
    cwd: Path | None = None,
    stage: bool = True,
    progress: hashing.ProgressFactory | None = None,
    store: bool = True,
) -> list[Recorded]:
    """Record datasets in mlm.lock (declaring NAME as PATH first when given); all when no NAME.

    Everything is checked and hashed before anything is written; then manifests and their refs,
    mlm.toml, mlm.lock, and (with `stage`) `git add` of the two files.
    """
    from gitmlm.core import tomledit

    root = repo.workdir
    with repo.lock("mlm-data"):
        toml_file = config.path(root)
        text = config.read_text(root) or ""
        new_text = None
        if path is not None:
            if name is None:
                raise MlmError("give the dataset a name: git mlm data add NAME PATH")
            dataspec.check_name(name)
            rel = dataspec.normalise(root, path, "git mlm data add", cwd or Path.cwd())
            before = {s.name: s.path for s in dataspec.declared(root, config.load(root))}
            if before.get(name) != rel:
                new_text = tomledit.set_path(text or "schema = 1\n", name, rel)
        cfg = config.parse(new_text) if new_text is not None else config.load(root)
        specs = {s.name: s for s in dataspec.declared(root, cfg)}
        if name is not None and name not in specs:
            raise MlmError(
                f"dataset {name!r} is not declared; give its path: git mlm data add {name} PATH"
            )
        if not specs:
            raise MlmError("no datasets are declared; declare one with: git mlm data add NAME PATH")
        try:
            lock = lockfile.load(root)
        except MlmError:
            if name is not None:
                raise
            lock = {}  # recording every dataset rebuilds a broken lock from scratch
        targets = [name] if name is not None else list(specs)
        cache = statcache.StatCache.load(repo.mlm_dir, root)
        filesets = [file_set(root, s, cache) for s in specs.values()]
        dataspec.check_disjoint(filesets)
        chosen = [fs for fs in filesets if fs.spec.name in targets]
        from gitmlm.data import keep

        # The bytes, so the version can be checked out later: small files are stored from the
        # read that hashes them; the rest (and files the stat cache vouched for) below.
        objects = keep.cache(repo) if store else None
        try:
            fps = fingerprint(repo, chosen, cache, progress, objects)
        finally:
            cache.save()
        for fp in fps if store else []:
            if fp.stored.issuperset(fp.fileset.path_list()):
                continue  # every file went in from its hashing read (checked in one C loop)
            entries = fp.entries()
            kept = {
                path: entries[fp.fileset.rel(path)]
                for path in fp.fileset.path_list()
                if path not in fp.stored
            }
            keep.store_files(repo, root, kept, fp.spec.algorithm)
        out = []
        new_lock = dict(lock)
        for fp in fps:
            old = lock.get(fp.spec.name)
            if old is not None and old["digest"] == fp.digest and old["path"] == fp.spec.path:
                entry = old if repo.has_object(old["manifest"]) else None
            else:
                entry = None
            if entry is None:
                entry = fp.summary() | {"manifest": store_manifest(repo, fp)}
            new_lock[fp.spec.name] = entry
            out.append(
                Recorded(fp.spec.name, entry, old["digest"] if old else None, new_text is not None)
            )
        if new_text is not None:
            lockfile.write_text(toml_file, new_text)
        lock_path = root / LOCK_FILE
        if new_lock != lock or not lock_path.exists():
            lockfile.write_text(lock_path, lockfile.render(new_lock))
        if stage:
            files = [LOCK_FILE] + ([config.FILE] if new_text is not None else [])
            repo.run_git("add", "--", *files)
        return out


def remove(repo: Repo, name: str, *, stage: bool = True) -> None:
    """Forget a dataset: its table in mlm.toml and its record in mlm.lock (data stays)."""
    from gitmlm.core import tomledit

    root = repo.workdir
    with repo.lock("mlm-data"):
        cfg = config.load(root)
        lock = lockfile.load(root)
        declared = name in cfg.get("datasets", {})
        if not declared and name not in lock:
            raise MlmError(f"no dataset named {name!r}; `git mlm data ls` lists them")
        staged = []
        if declared:
            toml_file = config.path(root)
            new_text = tomledit.remove(config.read_text(root) or "", name)
            lockfile.write_text(toml_file, new_text)
            staged.append(config.FILE)
        if name in lock:
            del lock[name]
            lockfile.write_text(root / LOCK_FILE, lockfile.render(lock))
            staged.append(LOCK_FILE)
        if stage and staged:
            repo.run_git("add", "--", *staged)


# --- history and diffs -------------------------------------------------------------------------


@dataclass
class DataDiff:
    name: str
    a: str
    """What the old side is: "mlm.lock", "mlm.lock at REV"."""
    b: str
    a_digest: str
    b_digest: str
    changes: manifest.Changes = field(default_factory=manifest.Changes)


def diff(repo: Repo, name: str, rev_a: str | None = None, rev_b: str | None = None) -> DataDiff:
    """What changed in dataset NAME: mlm.lock (or mlm.lock at REV_A) against the files (or
    against mlm.lock at REV_B)."""

    def recorded(rev: str | None) -> tuple[str, dict[str, Any]]:
        label = LOCK_FILE if rev is None else f"{LOCK_FILE} at {rev}"
        lock = lockfile.load(repo.workdir) if rev is None else lockfile.at(repo, rev)
        if name not in lock:
            raise MlmError(f"dataset {name!r} is not recorded in {label}")
        return label, lock[name]

    a_label, a = recorded(rev_a)
    if rev_b is not None:
        b_label, b = recorded(rev_b)
        if a["digest"] == b["digest"]:
            return DataDiff(name, a_label, b_label, a["digest"], b["digest"])
        return DataDiff(
            name,
            a_label,
            b_label,
            a["digest"],
            b["digest"],
            manifest.diff(repo, a["manifest"], b["manifest"]),
        )
    (st,) = status(repo, [name], changes=False)
    if st.current is None:
        raise MlmError(
            f"dataset {name!r} is not declared in mlm.toml, so it has no files to compare"
        )
    fp = st.current
    out = DataDiff(name, a_label, "files", a["digest"], fp.digest)
    if a["digest"] != fp.digest:
        out.changes = manifest.compare(manifest.read(repo, a["manifest"]), fp.entries())
    return out


@dataclass
class Listed:
    name: str
    path: str
    digest: str
    size: int | None
    files: int | None
    changed: str
    """The commit that last changed its record, "uncommitted", or "" when not recorded."""
    declared: bool


def listing(repo: Repo) -> list[Listed]:
    """Declared and recorded datasets with the commit that last changed each record."""
    project = Project.load(repo)
    names = project.names(None)
    head_lock = {}
    if repo.head().commit is not None:
        head_lock = lockfile.at(repo, "HEAD")
    changed: dict[str, str] = {}
    pending = {n for n in names if n in project.lock and n in head_lock}
    for n in names:
        if n in project.lock and head_lock.get(n, {}).get("digest") != project.lock[n]["digest"]:
            changed[n] = "uncommitted"
    if pending:
        newer: dict[str, str] = {}
        for commit in repo.commits_touching(LOCK_FILE):
            try:
                lock = lockfile.at(repo, commit)
            except MlmError:
                lock = {}
            for n in list(pending):
                if lock.get(n, {}).get("digest") == head_lock[n]["digest"]:
                    newer[n] = commit
                else:
                    pending.discard(n)
            if not pending:
                break
        for n, commit in newer.items():
            changed.setdefault(n, commit)
    out = []
    for n in names:
        locked = project.lock.get(n)
        spec = project.specs.get(n)
        out.append(
            Listed(
                n,
                spec.path if spec else (locked or {}).get("path", ""),
                locked["digest"] if locked else "",
                locked["size"] if locked else None,
                locked["files"] if locked else None,
                changed.get(n, ""),
                spec is not None,
            )
        )
    return out


# --- runs --------------------------------------------------------------------------------------


def _run_info(repo: Repo, st: Status) -> dict[str, Any]:
    fp = st.current
    assert fp is not None
    if st.state == "clean" and st.locked is not None:
        info = {k: st.locked[k] for k in ("digest", "path", "size", "files", "manifest")}
        return info | {"source": "lock"}
    return fp.summary() | {"manifest": store_manifest(repo, fp), "source": "hashed"}


def run_datasets(repo: Repo, clean: bool) -> dict[str, dict[str, Any]]:
    """The digest of every declared dataset, as a run records it at its start.

    The lock's record when the files match it (source "lock"), otherwise the files' own digest
    (source "hashed"): a run on edited data never claims the recorded version. The stat cache
    makes the check free on unchanged data, whatever `clean` (the code's state) says.
    """
    del clean  # the code being committed says nothing about data, which is usually untracked
    project = Project.load(repo)
    if not project.specs:
        return {}
    out = {}
    for st in status(repo, list(project.specs), changes=False):
        out[st.name] = _run_info(repo, st)
    return out


def dataset_for_run(repo: Repo, name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(name, fingerprint) of a declared dataset or of a path outside the declarations."""
    project = Project.load(repo)
    if name_or_path in project.specs:
        (st,) = status(repo, [name_or_path], changes=False)
        return name_or_path, _run_info(repo, st)
    rel, fp = _path_fingerprint(repo, name_or_path, "log_dataset")
    return rel, fp.summary() | {"manifest": store_manifest(repo, fp), "source": "hashed"}


def current_digest(repo: Repo, name: str, path: str) -> str:
    """The digest a run would record now for its dataset `name` at `path`, writing no record
    (how a scan checks that the work tree still holds a run's training data)."""
    project = Project.load(repo)
    if name in project.specs and project.specs[name].path == path:
        (st,) = status(repo, [name], changes=False)
        return st.current.digest if st.current else ""
    return _path_fingerprint(repo, path, "scan")[1].digest


def _path_fingerprint(repo: Repo, name_or_path: str, what: str) -> tuple[str, Fingerprint]:
    root = repo.workdir
    rel = dataspec.normalise(root, name_or_path, what, Path.cwd())
    if not (root / rel).exists() and not any(c in rel for c in dataspec.GLOB_CHARS):
        raise MlmError(
            f"{what}: {name_or_path!r} is neither a declared dataset nor an existing path"
        )
    spec = Spec(rel.replace("/", "_"), rel)
    cache = statcache.StatCache.load(repo.mlm_dir, root)
    fs = file_set(root, spec, cache)
    try:
        (fp,) = fingerprint(repo, [fs], cache)
    finally:
        cache.save()
    return rel, fp
