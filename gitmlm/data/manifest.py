"""Dataset manifests: one line per file (digest, size, path), stored as git trees and blobs.

The layout mirrors the dataset's folders, Merkle style, so a new version shares every
unchanged folder with the old one and a diff skips equal subtrees without reading them:

    <folder tree>
      files   blob  "<hex> <size> <name>\\n" per file in this folder, sorted by name bytes
              or, above BUCKET_OVER files, a tree of blobs 00..ff holding the names whose
              sha256(name) starts with that byte
      dirs    tree  <subfolder name> -> <folder tree>

So one changed file in a 100,000-file folder rewrites one ~40 kB bucket, not a 10 MB blob.

The dataset digest does not depend on this layout: it is the hash of the sorted listing
"<hex>  <path>\\n" (the format of `sha256sum`, paths relative to the dataset's folder), and for
a single-file dataset the file's own digest. Anyone can recompute it without gitmlm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

BUCKET_OVER = 1000
TREE_MODE = 0o040000
Entries = dict[str, tuple[int, str]]
"""Path relative to the dataset folder -> (size, hex digest)."""


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def digest(algorithm: str, kind: str, entries: Mapping[str, tuple[int, str]]) -> str:
    """The dataset digest, "<algorithm>:<hex>"."""
    if kind == "file":
        ((_, hex_),) = entries.values()
        return f"{algorithm}:{hex_}"
    h = hashlib.new(algorithm)
    h.update(
        "".join(f"{entries[p][1]}  {p}\n" for p in sorted(entries, key=_sort_key)).encode(
            "utf-8", "surrogateescape"
        )
    )
    return f"{algorithm}:{h.hexdigest()}"


@dataclass
class _Folder:
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    dirs: dict[str, _Folder] = field(default_factory=dict)


def _bucket(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:2]


def _lines(files: Mapping[str, tuple[int, str]]) -> bytes:
    return "".join(
        f"{files[n][1]} {files[n][0]} {n}\n" for n in sorted(files, key=_sort_key)
    ).encode("utf-8", "surrogateescape")


def write(repo: Repo, entries: Mapping[str, tuple[int, str]]) -> str:
    """Store a manifest; returns its tree oid (objects that exist already are not rewritten)."""
    top = _Folder()
    for path, value in entries.items():
        node = top
        *parents, name = path.split("/")
        for part in parents:
            node = node.dirs.setdefault(part, _Folder())
        node.files[name] = value

    def put(node: _Folder) -> str:
        tree: dict[str, tuple[bool, str]] = {}
        if len(node.files) > BUCKET_OVER:
            buckets: dict[str, dict[str, tuple[int, str]]] = {}
            for name, value in node.files.items():
                buckets.setdefault(_bucket(name), {})[name] = value
            tree["files"] = (
                True,
                repo.write_tree(
                    {b: (False, repo.write_blob(_lines(f))) for b, f in buckets.items()}
                ),
            )
        elif node.files:
            tree["files"] = (False, repo.write_blob(_lines(node.files)))
        if node.dirs:
            tree["dirs"] = (
                True,
                repo.write_tree({n: (True, put(d)) for n, d in node.dirs.items()}),
            )
        return repo.write_tree(tree)

    return put(top)


def _missing(oid: str) -> MlmError:
    return MlmError(
        f"manifest object {oid[:12]} is not in this repository; fetch gitmlm's refs "
        "(`git fetch origin 'refs/mlm/*:refs/mlm-remotes/origin/*'`, set up by `git mlm init`)"
    )


def _tree(repo: Repo, oid: str) -> dict[str, tuple[bool, str]]:
    """name -> (is_tree, oid)."""
    try:
        return {name: (mode == TREE_MODE, o) for name, o, mode in repo.tree_entries(oid)}
    except (KeyError, ValueError, AssertionError):
        raise _missing(oid) from None


def _parse(repo: Repo, oid: str, prefix: str, out: Entries) -> None:
    try:
        data = repo.blob(oid)
    except (KeyError, ValueError):
        raise _missing(oid) from None
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        hex_, size, name = line.split(" ", 2)
        out[prefix + name] = (int(size), hex_)


def _files(repo: Repo, node: tuple[bool, str] | None) -> dict[str, str]:
    """A folder's `files` entry as bucket -> blob oid ("" for an unbucketed blob)."""
    if node is None:
        return {}
    is_tree, oid = node
    if not is_tree:
        return {"": oid}
    return {bucket: blob for bucket, (_, blob) in _tree(repo, oid).items()}


def read(repo: Repo, tree: str) -> Entries:
    """Every file of a manifest: path -> (size, hex)."""
    out: Entries = {}
    stack = [("", tree)]
    while stack:
        prefix, oid = stack.pop()
        node = _tree(repo, oid)
        for blob in _files(repo, node.get("files")).values():
            _parse(repo, blob, prefix, out)
        if "dirs" in node:
            for name, (_, sub) in _tree(repo, node["dirs"][1]).items():
                stack.append((f"{prefix}{name}/", sub))
    return out


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    """Changed path -> (old size, new size), None on the side where it does not exist."""

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def sort(self) -> Changes:
        for part in (self.added, self.removed, self.modified):
            part.sort(key=_sort_key)
        return self


def compare(old: Mapping[str, tuple[int, str]], new: Mapping[str, tuple[int, str]]) -> Changes:
    out = Changes()
    for path, value in new.items():
        before = old.get(path)
        if before is None:
            out.added.append(path)
        elif before != value:
            out.modified.append(path)
    out.removed = [p for p in old if p not in new]
    for path in (*out.added, *out.removed, *out.modified):
        a, b = old.get(path), new.get(path)
        out.sizes[path] = (a[0] if a else None, b[0] if b else None)
    return out.sort()


def diff(repo: Repo, a: str, b: str) -> Changes:
    """File-level changes from manifest `a` to manifest `b`, reading only what differs."""
    out = Changes()

    def walk(prefix: str, ta: str | None, tb: str | None) -> None:
        if ta == tb:
            return
        na = _tree(repo, ta) if ta else {}
        nb = _tree(repo, tb) if tb else {}
        fa, fb = _files(repo, na.get("files")), _files(repo, nb.get("files"))
        # A bucket with the same name and blob on both sides holds the same files in the same
        # place on both sides: skip it. Parse the rest, whatever their layout.
        old: Entries = {}
        new: Entries = {}
        for bucket, oid in fa.items():
            if fb.get(bucket) != oid:
                _parse(repo, oid, prefix, old)
        for bucket, oid in fb.items():
            if fa.get(bucket) != oid:
                _parse(repo, oid, prefix, new)
        found = compare(old, new)
        out.added.extend(found.added)
        out.removed.extend(found.removed)
        out.modified.extend(found.modified)
        out.sizes.update(found.sizes)
        da = _tree(repo, na["dirs"][1]) if "dirs" in na else {}
        db = _tree(repo, nb["dirs"][1]) if "dirs" in nb else {}
        for name in set(da) | set(db):
            walk(
                f"{prefix}{name}/",
                da[name][1] if name in da else None,
                db[name][1] if name in db else None,
            )

    walk("", a, b)
    return out.sort()
