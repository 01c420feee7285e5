"""Declared datasets: what mlm.toml says, and which files each declaration means right now.

A declaration is a file, a directory (every file below it) or a glob (`data/*.csv`,
`images/**/*.png`; a directory it matches brings every file below it). Everything must live
inside the repository: `..`, an absolute path elsewhere or a symlink pointing out is an error,
as is a missing path, a file that is not a regular file, and two datasets sharing a file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm.core import config
from gitmlm.core.globs import Globs
from gitmlm.data import hashing
from gitmlm.errors import MlmError

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
"""Dataset names: they become the column `datasets.NAME` of the runs table, so no dots."""
GLOB_CHARS = frozenset("*?[")
RESERVED = ("mlm.lock", "mlm.toml")
NAME_MAX = 255
"""The longest file name (in bytes) of the file systems git runs on."""


@dataclass(frozen=True)
class Spec:
    name: str
    path: str
    """Repo-relative, POSIX, normalised; may be a glob."""
    exclude: tuple[str, ...] = ()
    algorithm: str = hashing.DEFAULT

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.path)

    @property
    def memo_key(self) -> str:
        return f"{self.algorithm}:{self.path}:{':'.join(self.exclude)}"


@dataclass
class FileSet:
    spec: Spec
    kind: str
    """"file", "dir" or "glob"."""
    base: str
    """Repo-relative directory ("" for the root) that manifest paths are relative to."""
    _files: list[tuple[str, os.stat_result]] = field(default_factory=list)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)
    """Each folder the walk listed: (repo-relative path, its lstat taken just before it was
    listed). With `plain` and `stamp`, what `statcache` needs to re-check the set without a
    walk: a name added, removed or renamed in a folder moves the folder's mtime."""
    stamp: int = 0
    """The file-system time taken before the walk began (0: not known). A folder whose mtime
    or ctime is not older than it may have changed again within the same tick."""
    plain: bool = True
    """No symlink was met: the folders listed and the files' lstat say everything."""
    real: str = ""
    """The real path of the dataset's top (its folder, glob base or file) when enumerated."""
    from_memo: bool = False
    """Vouched for by the stat cache's memo without a walk (`statcache.quick`)."""
    paths: list[str] | None = None
    """With `loader`: the files' paths, known before their stats are built."""
    lister: Callable[[], list[str]] | None = None
    """With `loader`: builds `paths` on first use."""
    loader: Callable[[], list[tuple[str, os.stat_result]]] | None = None
    """Builds `files` on first use (a memo vouches for the stats, so a clean `status` never
    builds 100,000 stat objects it does not read)."""

    @property
    def files(self) -> list[tuple[str, os.stat_result]]:
        """(repo-relative path, stat) in walk order."""
        if self.loader is not None:
            self._files = self.loader()
            self.loader = None
        return self._files

    def path_list(self) -> list[str]:
        if self.loader is not None:
            if self.paths is None and self.lister is not None:
                self.paths = self.lister()
            if self.paths is not None:
                return self.paths
        return [p for p, _ in self.files]

    def rel(self, path: str) -> str:
        return path[len(self.base) + 1 :] if self.base else path


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise MlmError(
            f"bad dataset name {name!r}: use letters, digits, _ and - (it becomes datasets.{name})"
        )
    return name


def normalise(root: Path, text: str, where: str, cwd: Path | None = None) -> str:
    """A declared path as repo-relative POSIX text; relative paths are taken from `cwd`
    (the command line) or the root (mlm.toml). Escapes are errors."""
    if not text or not text.strip():
        raise MlmError(f"{where}: the path is empty")
    raw = Path(text)
    full = raw if raw.is_absolute() else (cwd or root) / raw
    norm = os.path.normpath(os.path.abspath(full))
    rootn = os.path.normpath(os.path.abspath(root))
    if norm != rootn and not norm.startswith(rootn + os.sep):
        raise MlmError(
            f"{where}: {text} is outside the repository {root}; datasets must live inside it"
        )
    rel = os.path.relpath(norm, rootn)
    if rel == ".":
        raise MlmError(f"{where}: the whole repository cannot be a dataset; name a folder")
    parts = Path(rel).parts
    if ".git" in parts:
        raise MlmError(f"{where}: {text} is inside .git, git's own store; it cannot be a dataset")
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise MlmError(
                f"{where}: the path component {part[:40]}... is {len(os.fsencode(part))} bytes "
                f"long; file names are at most {NAME_MAX} bytes"
            )
    return Path(rel).as_posix()


def declared(root: Path, cfg: Mapping[str, Any]) -> list[Spec]:
    """mlm.toml's [datasets.NAME] tables, checked."""
    specs = []
    for name, decl in config.settings(cfg).datasets.items():
        where = f"mlm.toml [datasets.{name}]"
        check_name(name)
        algorithm = decl.algorithm or hashing.DEFAULT
        try:
            hashing.check_algorithm(algorithm)
        except MlmError as exc:
            raise MlmError(f"{where}: {exc}") from None
        path = normalise(root, decl.path, where)
        specs.append(Spec(name, path, decl.exclude, algorithm))
    return specs


def _static_prefix(pattern: str) -> str:
    parts = pattern.split("/")
    fixed = []
    for part in parts[:-1]:
        if any(c in GLOB_CHARS for c in part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root + os.sep)


def _check_name(spec: Spec, rel: str) -> None:
    if "\n" in rel or "\r" in rel:
        raise MlmError(f"dataset {spec.name}: {rel!r} has a line break in its name; rename it")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise MlmError(
            f"dataset {spec.name}: {rel!r} is not a UTF-8 file name; rename it"
        ) from None


def enumerate_files(root: Path, spec: Spec) -> FileSet:
    """The files a declaration means right now, with their stat."""
    root_s = os.path.normpath(os.path.abspath(root))
    real_root = os.path.realpath(root_s)
    what = f"dataset {spec.name}"

    def escape_error(rel: str, target: str) -> MlmError:
        return MlmError(
            f"{what}: {rel} is a symlink to {target}, outside the repository; "
            "datasets must live inside it (copy the data in, or link the repository's folder)"
        )

    def walk(top: str, base_real: str, keep: Globs | None, fs: FileSet) -> None:
        # The hot loop of `status` on unchanged data: one stat per file, little else.
        excluder = Globs(spec.exclude)
        excluding = bool(excluder)
        seen = {base_real}
        top_full = f"{root_s}/{top}" if top else root_s
        stack = [(top, keep is not None)]
        files = fs.files
        dirs = fs.dirs
        fs.plain = not os.path.islink(top_full)
        while stack:
            rel_dir, matching = stack.pop()
            full_dir = f"{root_s}/{rel_dir}" if rel_dir else root_s
            try:
                # Its stat before its names: a change after the stat moves the mtime.
                dirs.append((rel_dir, os.lstat(full_dir)))
                entries = list(os.scandir(full_dir))
            except OSError as exc:
                raise MlmError(f"{what}: cannot list {rel_dir or '.'}: {exc.strerror}") from exc
            prefix = rel_dir + "/" if rel_dir else ""
            for entry in entries:
                name = entry.name
                if name == ".git":
                    continue
                rel = prefix + name
                if excluding and excluder.match(fs.rel(rel)):
                    continue
                selected = not matching or (keep is not None and keep.match(rel))
                if entry.is_symlink():
                    fs.plain = False
                    real = os.path.realpath(entry.path)
                    if not _inside(real, real_root):
                        could_hold = os.path.isdir(real) and (keep is None or keep.touches(rel))
                        if selected or could_hold:
                            raise escape_error(rel, real)
                        continue
                    if not os.path.exists(real):
                        raise MlmError(f"{what}: {rel} is a broken symlink; fix or remove it")
                    if os.path.isdir(real):
                        if real in seen or _inside(base_real, real):
                            raise MlmError(f"{what}: {rel} is a symlink loop; remove it")
                        seen.add(real)
                        stack.append((rel, matching and not selected))
                        continue
                    st = os.stat(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    if selected or keep is None or keep.touches(rel):
                        stack.append((rel, matching and not selected))
                    continue
                elif not selected:
                    continue
                else:
                    st = entry.stat(follow_symlinks=False)
                if not selected:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise MlmError(
                        f"{what}: {rel} is not a regular file (a pipe, socket or device); "
                        "exclude it"
                    )
                if not name.isascii() or "\n" in name or "\r" in name:
                    _check_name(spec, rel)
                files.append((rel, st))

    if spec.is_glob:
        base = _static_prefix(spec.path)
        fs = FileSet(spec, "glob", base)
        full = f"{root_s}/{base}" if base else root_s
        real = fs.real = os.path.realpath(full)
        if not _inside(real, real_root):
            raise escape_error(base, real)
        if os.path.isdir(full):
            walk(base, real, Globs([spec.path]), fs)
        if not fs.files:
            raise MlmError(
                f"{what}: {spec.path} matches no files; fix [datasets.{spec.name}] in mlm.toml"
            )
        return fs

    full = f"{root_s}/{spec.path}"
    try:
        lst = os.lstat(full)
    except FileNotFoundError:
        raise MlmError(
            f"{what}: {spec.path} does not exist; restore it, or fix [datasets.{spec.name}] "
            f"path in mlm.toml (`git mlm data rm {spec.name}` forgets the dataset)"
        ) from None
    real = os.path.realpath(full)
    if stat.S_ISLNK(lst.st_mode):
        if not _inside(real, real_root):
            raise escape_error(spec.path, real)
        if not os.path.exists(real):
            raise MlmError(f"{what}: {spec.path} is a broken symlink; fix or remove it")
    elif not _inside(real, real_root):  # a parent folder is a symlink pointing out
        raise escape_error(spec.path, real)
    st = os.stat(full)
    if stat.S_ISDIR(st.st_mode):
        fs = FileSet(spec, "dir", spec.path, real=real)
        walk(spec.path, real, None, fs)
        if not fs.files:
            raise MlmError(f"{what}: {spec.path}/ holds no files; add data or remove the dataset")
        return fs
    if not stat.S_ISREG(st.st_mode):
        raise MlmError(f"{what}: {spec.path} is not a regular file or a folder")
    _check_name(spec, spec.path)
    plain = not stat.S_ISLNK(lst.st_mode)
    base = spec.path.rpartition("/")[0]
    return FileSet(spec, "file", base, [(spec.path, st)], plain=plain, real=real)


def check_disjoint(filesets: Iterable[FileSet]) -> None:
    """Two datasets sharing a file would make one change count twice: refuse it."""
    filesets = list(filesets)
    for fs in filesets:
        # Every path of a dataset with a base starts with "base/": only a top-level one can
        # be mlm.lock or mlm.toml (no set of 100,000 paths for that).
        if not fs.base:
            for path in fs.path_list():
                if path in RESERVED:
                    raise MlmError(
                        f"dataset {fs.spec.name}: it contains {path}; declare a narrower path"
                    )
    if len(filesets) < 2:
        return
    seen: list[tuple[str, set[str]]] = []
    for fs in filesets:
        name = fs.spec.name
        paths = set(fs.path_list())
        for other, theirs in seen:
            common = paths & theirs
            if common:
                raise MlmError(
                    f"datasets {other} and {name} overlap (both hold {min(common)}); "
                    "declare disjoint paths in mlm.toml"
                )
        seen.append((name, paths))
