"""The only module that imports pygit2: reading objects, writing notes, compare-and-swap refs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2

from gitmlm.core import gitcmd, treebytes
from gitmlm.core.records import CommitInfo
from gitmlm.errors import MlmError

ZERO = "0" * 40
BULK_BLOBS = 64
"""From this many blobs on, `write_blobs` writes one pack rather than loose objects."""
_BLOB = pygit2.enums.FileMode.BLOB
_TREE = pygit2.enums.FileMode.TREE
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_trees = treebytes.Cache(64)
"""Trees this process wrote or edited, parsed (see `Repo._tree`)."""


class CasFailed(Exception):
    """A ref moved under us: re-read and try again."""


class TagExists(Exception):
    """A tag of that name was created first (by us or another writer): pick another name."""


@dataclass(frozen=True)
class Head:
    commit: str | None
    branch: str | None

    @property
    def detached(self) -> bool:
        return self.commit is not None and self.branch is None


@dataclass(frozen=True)
class TagInfo:
    name: str
    """Without `refs/tags/`."""
    oid: str
    """The tag object, or the commit itself for a lightweight tag."""
    commit: str | None
    """The commit the tag points at (peeled); None when it names a tree or blob."""
    annotated: bool
    message: str
    tagger: str
    email: str
    time: int
    offset: int


def _info(c: pygit2.Commit) -> CommitInfo:
    return CommitInfo(
        oid=str(c.id),
        parents=tuple(str(p) for p in c.parent_ids),
        author=c.author.name,
        email=c.author.email,
        time=c.author.time,
        offset=c.author.offset,
        message=c.message,
        tree=str(c.tree_id),
    )


class Repo:
    def __init__(self, raw: pygit2.Repository) -> None:
        self.raw = raw
        self.gitdir = Path(raw.path)
        common = self.gitdir / "commondir"
        # A linked worktree keeps its own HEAD and index but shares refs and our state.
        self.common_dir = (
            (self.gitdir / common.read_text().strip()).resolve() if common.exists() else self.gitdir
        )
        self.root = Path(raw.workdir) if raw.workdir else None
        self._identity: tuple[str | None, str | None] | None = None
        # Where git writes loose objects, unless the environment moves them elsewhere.
        moved = "GIT_OBJECT_DIRECTORY" in os.environ
        self._objects = None if moved else str(self.common_dir / "objects")

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Repo:
        start = os.fspath(path) if path is not None else os.getcwd()
        found = pygit2.discover_repository(start)
        if found is None:
            raise MlmError(f"not a git repository: {start} (run `git init` first, or cd into one)")
        return cls(pygit2.Repository(found))

    @property
    def workdir(self) -> Path:
        if self.root is None:
            raise MlmError("this is a bare repository; run gitmlm in a clone with a work tree")
        return self.root

    @property
    def mlm_dir(self) -> Path:
        return self.common_dir / "mlm"

    # --- reading -------------------------------------------------------------------------

    def head(self) -> Head:
        # One read of HEAD and one of its branch (head_is_unborn, head, head_is_detached each
        # resolve HEAD again: a run asks three times).
        head = self.raw.lookup_reference("HEAD")
        if head.type != pygit2.enums.ReferenceType.SYMBOLIC:
            return Head(str(head.target), None)
        try:
            branch = self.raw.lookup_reference(str(head.target)).resolve()
        except (KeyError, pygit2.InvalidSpecError):
            return Head(None, None)  # unborn: no commit on the branch yet
        return Head(str(branch.target), branch.shorthand)

    def head_commit(self) -> str:
        head = self.head()
        if head.commit is None:
            raise MlmError(
                "the repository has no commits yet; make one first "
                "(git commit --allow-empty -m 'start')"
            )
        return head.commit

    def resolve(self, rev: str) -> str:
        """A revision (name, abbreviated hash, HEAD~2) to a full commit id."""
        try:
            obj = self.raw.revparse_single(rev)
            return str(obj.peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise MlmError(f"unknown revision {rev!r}: not a commit in this repository") from exc

    def has_object(self, oid: str) -> bool:
        return oid in self.raw

    def missing_objects(self, oids: Iterable[str]) -> set[str]:
        """Those of these full ids that are not here: an odb look-up each, about 20x cheaper
        than has_object's (which resolves a prefix), for checking every noted commit."""
        exists = self.raw.odb.exists
        return {oid for oid in oids if not exists(oid)}

    def has_commit(self, oid: str) -> bool:
        """Whether `oid` is a commit object here (a shallow clone may lack old ones)."""
        try:
            obj = self.raw.get(oid)
        except (ValueError, pygit2.GitError):
            return False
        return isinstance(obj, pygit2.Commit)

    @property
    def is_shallow(self) -> bool:
        return bool(self.raw.is_shallow)

    def ref(self, name: str) -> str | None:
        try:
            return str(self.raw.references[name].resolve().target)
        except (KeyError, pygit2.InvalidSpecError):
            return None

    def refs(self, prefix: str) -> dict[str, str]:
        out = {}
        for name in self.raw.references:
            if name.startswith(prefix):
                target = self.ref(name)
                if target is not None:
                    out[name] = target
        return out

    def ref_table(self, *patterns: str) -> dict[str, str]:
        """Refs matching `for-each-ref` patterns (`refs/mlm/`, `refs/notes/mlm*`) -> target,
        read by one `git for-each-ref`: cheaper than walking the refs here once a repository
        holds thousands (one checkpoint or keep ref per run)."""
        proc = gitcmd.proc(
            ["for-each-ref", "--format=%(objectname) %(refname)", *patterns],
            git_dir=self.common_dir,
        )
        if proc.returncode != 0:
            raise MlmError(f"git for-each-ref failed: {proc.stderr.strip()}")
        out: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            oid, _, name = line.partition(" ")
            out[name] = oid
        return out

    def blob(self, oid: str) -> bytes:
        loose = self._loose_blob(oid)
        if loose is not None:
            return loose
        # read() skips building an object (listing reads ten thousand notes); a missing object
        # raises KeyError as indexing does.
        kind, data = self.raw.read(oid)
        if kind != pygit2.enums.ObjectType.BLOB:
            raise MlmError(f"object {oid} is not a blob")
        return data

    def _loose_blob(self, oid: str) -> bytes | None:
        """A loose blob read from its file: a third cheaper than libgit2's read, which looks in
        the packs first (a cold listing reads every note). None for anything else (packed,
        another kind, a damaged or odd file): libgit2 then reads it or says why not."""
        if self._objects is None or not _OID.fullmatch(oid):
            return None
        try:
            with open(f"{self._objects}/{oid[:2]}/{oid[2:]}", "rb") as file:
                raw = zlib.decompress(file.read())
        except (OSError, zlib.error):
            return None
        head, _, data = raw.partition(b"\0")
        return data if head == b"blob %d" % len(data) else None

    def commit(self, oid: str) -> CommitInfo:
        c = self.raw[oid]
        if not isinstance(c, pygit2.Commit):
            raise MlmError(f"object {oid} is not a commit")
        return _info(c)

    def walk(self, revisions: list[str], limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits in `git log` order (newest first) for revisions like `main`, `A..B`, `^X`."""
        # Topological as well as by time: commits made in the same second keep child before
        # parent, as `git log` shows them.
        walker = self.raw.walk(None, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
        pushed = False
        for spec in revisions or ["HEAD"]:
            if ".." in spec and "..." not in spec:
                left, right = spec.split("..", 1)
                walker.hide(self.resolve(left or "HEAD"))
                walker.push(self.resolve(right or "HEAD"))
                pushed = True
            elif spec.startswith("^"):
                walker.hide(self.resolve(spec[1:]))
            else:
                walker.push(self.resolve(spec))
                pushed = True
        if not pushed:
            walker.push(self.resolve("HEAD"))
        for count, c in enumerate(walker):
            if limit is not None and count >= limit:
                return
            yield _info(c)

    def decorations(self) -> dict[str, list[str]]:
        """Branch and tag names by the commit they point at, for log output."""
        out: dict[str, list[str]] = {}
        for name in sorted(self.raw.references):  # by name, as for-each-ref lists them
            if name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")):
                try:
                    target = str(self.raw.references[name].peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError, KeyError):
                    continue
                tag = name.startswith("refs/tags/")
                short = "tag: " + name[10:] if tag else name.split("/", 2)[2]
                out.setdefault(target, []).append(short)
        return out

    def tree_of(self, commit: str) -> str:
        c = self.raw[commit]
        if not isinstance(c, pygit2.Commit):
            raise MlmError(f"object {commit} is not a commit")
        return str(c.tree_id)

    def tree_entries(self, tree: str) -> list[tuple[str, str, int]]:
        """(name, oid, filemode) of one tree's entries, in git's order."""
        t = self.raw[tree]
        assert isinstance(t, pygit2.Tree)
        return [(e.name or "", str(e.id), int(e.filemode)) for e in t]

    def changed_paths(self, tree_a: str, tree_b: str) -> list[str]:
        """Paths whose content or mode differs between two trees (no rename detection)."""
        a, b = self.raw[tree_a], self.raw[tree_b]
        assert isinstance(a, pygit2.Tree) and isinstance(b, pygit2.Tree)
        out: set[str] = set()
        for delta in a.diff_to_tree(b).deltas:
            out.add(delta.old_file.path)
            out.add(delta.new_file.path)
        return sorted(out)

    def blob_at(self, commit: str, path: str) -> str | None:
        """The blob id of `path` in a commit's tree, or None when it is not a file there."""
        c = self.raw[commit]
        assert isinstance(c, pygit2.Commit)
        try:
            entry = c.tree[path]
        except KeyError:
            return None
        return str(entry.id) if isinstance(entry, pygit2.Blob) else None

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        """A commit object on no branch (like `git commit-tree`), signed as the committer."""
        sig = self.signature()
        oid = self.raw.create_commit(
            None, sig, sig, message, pygit2.Oid(hex=tree), [pygit2.Oid(hex=p) for p in parents]
        )
        return str(oid)

    def index_path(self) -> Path:
        """The index git uses now: $GIT_INDEX_FILE (set inside hooks) or the work tree's own."""
        env = os.environ.get("GIT_INDEX_FILE")
        return Path(env).resolve() if env else self.gitdir / "index"

    def index_tree(self, path: Path | None = None) -> str:
        """The tree an index file would commit, written to the object store; the file is only
        read, never written (unlike `git write-tree`)."""
        index = pygit2.Index(str(path or self.index_path()))
        try:
            return str(index.write_tree(self.raw))
        except pygit2.GitError as exc:
            raise MlmError(
                f"cannot read the staged tree: {exc} (resolve merge conflicts first)"
            ) from exc

    SMALL_INDEX_BYTES = 256 * 1024
    """An index up to this size (about 3,000 files) is checked in-process by `unchanged`."""

    def unchanged(self) -> bool | None:
        """True when index and work tree both equal HEAD (nothing staged, modified or untracked
        outside .gitignore), False when anything differs, None when this cannot tell cheaply.

        In-process (libgit2's status, no process start) only where it matches git's verdict for
        sure: a small index, no submodules, no sparse checkout or fsmonitor, no GIT_INDEX_FILE
        (a hook's index). Elsewhere None, and the caller asks git.
        """
        if self.root is None or os.environ.get("GIT_INDEX_FILE"):
            return None
        try:
            if (self.gitdir / "index").stat().st_size > self.SMALL_INDEX_BYTES:
                return None
        except OSError:
            return None
        if (self.root / ".gitmodules").exists():
            return None
        config = self.raw.config
        for key in ("core.sparseCheckout", "core.fsmonitor"):
            if key in config:
                return None
        try:
            # "normal": an untracked folder is one entry, so its files are not walked.
            return not self.raw.status(untracked_files="normal")
        except pygit2.GitError:
            return None

    def index_blobs(self, paths: list[str], path: Path | None = None) -> dict[str, str]:
        """Staged blob id of each path that is in the index (stage 0)."""
        index = pygit2.Index(str(path or self.index_path()))
        out = {}
        for p in paths:
            try:
                out[p] = str(index[p].id)
            except KeyError:
                continue
        return out

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """True when `ancestor` is `commit` or reachable from it."""
        if ancestor == commit:
            return True
        try:
            return bool(self.raw.descendant_of(commit, ancestor))
        except (KeyError, ValueError, pygit2.GitError):
            return False

    def tag_refs(self) -> list[tuple[str, str]]:
        """(short name, object id) of every tag, from the refs alone (no object is read)."""
        return [
            (ref.name[10:], str(ref.target))
            for ref in self.raw.references.iterator(pygit2.enums.ReferenceFilter.TAGS)
        ]

    def tag_info(self, name: str, oid: str) -> TagInfo | None:
        """What tag `name` -> `oid` says; None when the object is missing."""
        try:
            obj = self.raw[oid]
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if not isinstance(obj, pygit2.Tag):
            commit = str(obj.id) if isinstance(obj, pygit2.Commit) else None
            return TagInfo(name, oid, commit, False, "", "", "", 0, 0)
        try:
            peeled: str | None = str(obj.peel(pygit2.Commit).id)
        except (pygit2.GitError, ValueError, KeyError):
            peeled = None
        who = obj.tagger
        return TagInfo(
            name,
            oid,
            peeled,
            True,
            obj.message or "",
            who.name if who else "",
            who.email if who else "",
            who.time if who else 0,
            who.offset if who else 0,
        )

    def tags(self, accept: Callable[[str], bool] | None = None) -> list[TagInfo]:
        """Every tag (or those whose short name `accept`s), with its object read."""
        out = []
        for name, oid in self.tag_refs():
            if accept is None or accept(name):
                info = self.tag_info(name, oid)
                if info is not None:
                    out.append(info)
        return out

    def create_tag(
        self, name: str, commit: str, message: str, *, sign: bool = False, not_before: int = 0
    ) -> str:
        """An annotated (or signed) tag; TagExists when the name is taken. Returns its object id.

        Made by `git tag` so git's own signing (gpg or ssh, as the user configured) applies;
        creating a ref is atomic in git, so two writers can never both get one name. The tagger
        date is now, or `not_before` (unix seconds) when now is earlier.
        """
        env = None
        sig = self.signature()
        if sig.time < not_before:
            env = {**os.environ, "GIT_COMMITTER_DATE": f"{not_before} {_zone(sig.offset)}"}
        proc = gitcmd.proc(
            ["tag", "-s" if sign else "-a", "--cleanup=verbatim", "-F", "-", name, commit],
            cwd=self.root or self.common_dir,
            input=message,
            env=env,
        )
        if proc.returncode != 0:
            if "already exists" in proc.stderr:
                raise TagExists(name)
            raise MlmError(f"git tag {name} failed: {proc.stderr.strip()}")
        return self.ref("refs/tags/" + name) or ""

    def verify_tag(self, name: str, allowed_signers: Path | None) -> tuple[bool, str]:
        """(good, git's one-line verdict) for a signed tag, ssh keys checked against the file."""
        args: list[str] = []
        if allowed_signers is not None:
            args += ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
        proc = gitcmd.proc([*args, "verify-tag", name], cwd=self.root or self.common_dir)
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        verdict = lines[-1] if lines else ("good signature" if proc.returncode == 0 else "")
        return proc.returncode == 0, verdict.strip()

    def file_at(self, commit: str, path: str) -> bytes | None:
        """The content of `path` in `commit`'s tree, or None when it is not there."""
        oid = self.blob_at(commit, path)
        return None if oid is None else self.blob(oid)

    def is_valid_ref_name(self, ref: str) -> bool:
        """What `git check-ref-format` accepts (git, not libgit2, decides what a remote takes)."""
        proc = gitcmd.proc(["check-ref-format", ref])
        return proc.returncode == 0

    def remote_tags(self, remote: str) -> dict[str, str]:
        """Tag name -> object id on `remote` (one `git ls-remote`)."""
        out: dict[str, str] = {}
        for line in self.run_git("ls-remote", "--tags", remote).splitlines():
            oid, _, ref = line.partition("\t")
            if ref.startswith("refs/tags/") and not ref.endswith("^{}"):
                out[ref[10:]] = oid
        return out

    def diffstat(self, a: str, b: str) -> str:
        diff = self.raw.diff(a, b)
        return str(diff.stats.format(pygit2.enums.DiffStatsFormat.FULL, 72))

    def config_get(self, key: str) -> str | None:
        try:
            return str(self.raw.config[key])
        except KeyError:
            return None

    def config_all(self, key: str) -> list[str]:
        return [str(v) for v in self.raw.config.get_multivar(key)]

    def remotes(self) -> list[str]:
        return [r.name for r in self.raw.remotes if r.name]

    def user(self) -> str:
        for value in self.identity():
            if value:
                return value
        import getpass

        return getpass.getuser()

    # --- notes ---------------------------------------------------------------------------

    def notes(self, notes_commit: str | None) -> dict[str, str]:
        """Annotated commit id -> note blob id, for any fanout layout."""
        if notes_commit is None:
            return {}
        out: dict[str, str] = {}
        commit = self.raw[notes_commit]
        assert isinstance(commit, pygit2.Commit)
        stack: list[tuple[str, pygit2.Tree]] = [("", commit.tree)]
        while stack:
            prefix, tree = stack.pop()
            for entry in tree:
                name = prefix + entry.name
                if entry.filemode == _TREE:
                    if len(entry.name) != 2:
                        continue  # not a fanout level: a tree kept beside the notes
                    sub = self.raw[entry.id]
                    assert isinstance(sub, pygit2.Tree)
                    stack.append((name, sub))
                elif len(name) == 40:
                    out[name] = str(entry.id)
        return out

    def notes_changes(self, a: str, b: str) -> dict[str, tuple[str | None, str | None]]:
        """Annotated commit -> (note blob in `a`, in `b`) for every note that differs.

        A tree diff: subtrees equal on both sides are never read, so comparing two large notes
        refs costs what changed between them, whatever fanout either side uses.
        """
        ta = self.raw[a].peel(pygit2.Tree)
        tb = self.raw[b].peel(pygit2.Tree)
        out: dict[str, tuple[str | None, str | None]] = {}
        for delta in ta.diff_to_tree(tb).deltas:
            for f, side in ((delta.old_file, 0), (delta.new_file, 1)):
                name = f.path.replace("/", "")
                if len(name) != 40 or f.id == pygit2.Oid(hex=ZERO):
                    continue
                pair = list(out.get(name, (None, None)))
                pair[side] = str(f.id)
                out[name] = (pair[0], pair[1])
        return {c: pair for c, pair in out.items() if pair[0] != pair[1]}

    def write_blob(self, data: bytes) -> str:
        return str(self.raw.create_blob(data))

    def write_blobs(self, blobs: list[bytes]) -> list[str]:
        """Many blobs at once: one pack file from `git fast-import` instead of a loose object
        (a file, a directory entry, a rename) per blob, which is what a large merge writes."""
        if len(blobs) < BULK_BLOBS:
            return [self.write_blob(b) for b in blobs]
        ids = [hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest() for b in blobs]
        feed = b"".join(b"blob\ndata %d\n" % len(b) + b + b"\n" for b in blobs)
        proc = gitcmd.proc(
            # A pack even for a few dozen objects (git unpacks fewer than 100 by default).
            ["-c", "fastimport.unpackLimit=0", "fast-import", "--quiet"],
            input=feed,
            git_dir=self.common_dir,
        )
        if proc.returncode != 0:
            return [self.write_blob(b) for b in blobs]  # loose objects always work
        return ids

    def write_notes(
        self,
        ref: str,
        base: str | None,
        updates: Mapping[str, str | None],
        message: str,
        extra_parents: tuple[str, ...] = (),
    ) -> str:
        """A new notes commit on top of `base` with blobs set (or removed, for None) per commit.

        Writes a 2/38 fanout, as git does for large note sets, so one update rewrites two small
        trees rather than one tree with an entry per annotated commit. A key "DIR/NAME" sets
        (or, for None, removes) the tree NAME in the top-level folder DIR: git keeps such
        non-note entries when it rewrites the notes tree (see notes.STORE).
        """
        root = treebytes.EMPTY
        if base is not None:
            c = self.raw[base]
            assert isinstance(c, pygit2.Commit)
            root = self._tree(str(c.tree_id))
        groups: dict[str, dict[str, str | None]] = {}
        dirs: dict[str, dict[str, str | None]] = {}
        for commit, blob in updates.items():
            if "/" in commit:  # "DIR/NAME" -> a tree kept beside the notes (not a note)
                folder, _, name = commit.partition("/")
                dirs.setdefault(folder, {})[name] = blob
            else:
                groups.setdefault(commit[:2], {})[commit[2:]] = blob
        changes: dict[str, tuple[int, str] | None] = {}
        for folder, items in dirs.items():
            existing = treebytes.find(root, folder)
            sub = treebytes.edit(
                self._subtree(existing),
                {name: None if oid is None else (_TREE, oid) for name, oid in items.items()},
            )
            if sub.keys:
                changes[folder] = (_TREE, self._write_tree(sub))
            elif existing is not None:
                changes[folder] = None
        for prefix, items in groups.items():
            existing = treebytes.find(root, prefix)
            for rest in items:
                if treebytes.find(root, prefix + rest) is not None:
                    changes[prefix + rest] = None  # a flat entry written by `git notes`
            sub = treebytes.edit(
                self._subtree(existing),
                {rest: None if blob is None else (_BLOB, blob) for rest, blob in items.items()},
            )
            if sub.keys:
                changes[prefix] = (_TREE, self._write_tree(sub))
            elif existing is not None:
                changes[prefix] = None
        tree = pygit2.Oid(hex=self._write_tree(treebytes.edit(root, changes)))
        sig = self.signature()
        parents = [pygit2.Oid(hex=p) for p in ((base,) if base else ()) + extra_parents]
        return str(self.raw.create_commit(None, sig, sig, message, tree, parents))

    def write_fanout(self, base: str | None, items: Mapping[str, str]) -> str:
        """A tree `base` (or a new one) with blobs set at "XX/NAME" paths, one level of folders.

        Touches only the folders named, so one blob added to a tree of thousands rewrites two
        small trees.
        """
        root = self._tree(base) if base else treebytes.EMPTY
        groups: dict[str, dict[str, str]] = {}
        for path, blob in items.items():
            folder, _, name = path.partition("/")
            groups.setdefault(folder, {})[name] = blob
        changes: dict[str, tuple[int, str] | None] = {}
        for folder, files in groups.items():
            sub = treebytes.edit(
                self._subtree(treebytes.find(root, folder)),
                {name: (_BLOB, blob) for name, blob in files.items()},
            )
            changes[folder] = (_TREE, self._write_tree(sub))
        return self._write_tree(treebytes.edit(root, changes))

    def _tree(self, oid: str) -> treebytes.Entries:
        """A tree's entries, parsed once per process: the trees a run writes are the next
        write's bases, kept as written (core/treebytes.py)."""
        known = _trees.get(oid)
        if known is not None:
            return known
        kind, raw = self.raw.odb.read(pygit2.Oid(hex=oid))
        if kind != pygit2.enums.ObjectType.TREE:
            raise MlmError(f"object {oid[:12]} is not a tree")
        return _trees.put(oid, treebytes.parse(raw))

    def _subtree(self, entry: tuple[int, str] | None) -> treebytes.Entries:
        """The entries of a folder entry found in a tree; none for a missing or a file entry."""
        if entry is None or entry[0] != _TREE:
            return treebytes.EMPTY
        return self._tree(entry[1])

    def _write_tree(self, entries: treebytes.Entries) -> str:
        oid = str(self.raw.odb.write(pygit2.enums.ObjectType.TREE, treebytes.data(entries)))
        _trees.put(oid, entries)
        return oid

    def fanout_files(self, tree: str) -> dict[str, str]:
        """NAME -> blob of every "XX/NAME" in a tree written by `write_fanout`."""
        out: dict[str, str] = {}
        t = self.raw[tree]
        assert isinstance(t, pygit2.Tree)
        for folder in t:
            if folder.filemode != _TREE:
                continue
            sub = self.raw[folder.id]
            assert isinstance(sub, pygit2.Tree)
            for entry in sub:
                if entry.filemode != _TREE:
                    out[entry.name or ""] = str(entry.id)
        return out

    def fanout_file(self, tree: str, path: str) -> str | None:
        """The blob at "XX/NAME" in a tree, or None."""
        folder, _, name = path.partition("/")
        found = treebytes.find(self._subtree(treebytes.find(self._tree(tree), folder)), name)
        return None if found is None else found[1]

    def write_commit(self, parents: tuple[str, ...], message: str, tree: str | None = None) -> str:
        """A commit on no ref (the empty tree unless given): the caller moves a ref to it by CAS."""
        if tree is None:
            tree = str(self.raw.TreeBuilder().write())
        sig = self.signature()
        oids = [pygit2.Oid(hex=p) for p in parents]
        return str(self.raw.create_commit(None, sig, sig, message, pygit2.Oid(hex=tree), oids))

    def identity(self) -> tuple[str | None, str | None]:
        """user.name and user.email, read once per Repo: every notes commit is signed, and each
        config read re-checks every config file (a run opens its own Repo)."""
        if self._identity is None:
            self._identity = (self.config_get("user.name"), self.config_get("user.email"))
        return self._identity

    def signature(self) -> pygit2.Signature:
        user, mail = self.identity()
        name = os.environ.get("GIT_COMMITTER_NAME") or user or "gitmlm"
        email = os.environ.get("GIT_COMMITTER_EMAIL") or mail or "gitmlm@localhost"
        date = os.environ.get("GIT_COMMITTER_DATE", "")
        m = re.fullmatch(r"@?(\d+)(?: ([+-])(\d\d)(\d\d))?", date.strip())
        if m:
            offset = 0
            if m.group(2):
                offset = (int(m.group(3)) * 60 + int(m.group(4))) * (-1 if m.group(2) == "-" else 1)
            return pygit2.Signature(name, email, int(m.group(1)), offset)
        return pygit2.Signature(name, email, int(time.time()), 0)

    # --- dataset manifests and mlm.lock history ------------------------------------------

    def write_tree(self, entries: Mapping[str, tuple[bool, str]]) -> str:
        """A tree from name -> (is_tree, oid)."""
        builder = self.raw.TreeBuilder()
        for name, (is_tree, oid) in entries.items():
            builder.insert(name, pygit2.Oid(hex=oid), _TREE if is_tree else _BLOB)
        return str(builder.write())

    def git_path(self, name: str) -> Path:
        """`git rev-parse --git-path NAME`: where git looks for hooks (core.hooksPath) etc."""
        out = self.run_git("rev-parse", "--git-path", name).strip()
        return (self.workdir / out).resolve() if self.root else Path(out)

    def commits_touching(self, path: str, rev: str = "HEAD") -> list[str]:
        """Commits (newest first) reachable from `rev` that changed `path`."""
        if self.head().commit is None:
            return []
        return self.run_git("log", "--format=%H", rev, "--", path).split()

    # --- ref updates ---------------------------------------------------------------------

    def update_ref(self, name: str, new: str, old: str | None, message: str = "gitmlm") -> None:
        """Compare-and-swap: move `name` to `new` only if it still points at `old` (None: only
        if it does not exist), with a reflog entry where git would write one.

        In-process, through libgit2's ref transaction: it takes git's own `<ref>.lock` file and
        compares the ref with `old` under that lock, so git and other processes stay safe
        writers beside us. A `git update-ref` round trip was half of what a small run cost.
        """
        target = pygit2.Oid(hex=new)
        try:
            if old is None or old == ZERO:
                self.raw.create_reference_direct(name, target, False, message=message)
                return
            try:
                ref = self.raw.lookup_reference(name)
            except KeyError:
                raise CasFailed(f"{name} does not exist, expected {old}") from None
            if ref.type != pygit2.enums.ReferenceType.DIRECT:
                raise MlmError(f"cannot update {name}: it is a symbolic ref")
            if str(ref.target) != old:
                raise CasFailed(f"{name} is at {ref.target}, expected {old}")
            # libgit2 compares the ref with what lookup read (`old`) under the lock.
            ref.set_target(target, message)
        except pygit2.AlreadyExistsError as exc:
            raise CasFailed(f"{name} exists already") from exc
        except (pygit2.GitError, OSError) as exc:
            # Moved under us ("old reference value does not match"), or its lock file is held
            # by another writer: the caller re-reads and tries again.
            said = str(exc)
            if (
                "does not match" in said
                or ".lock" in said
                or self.ref(name) != (None if old == ZERO else old)
            ):
                raise CasFailed(f"{name}: {said}") from exc
            raise MlmError(f"cannot update {name}: {exc}") from exc

    def create_refs(self, refs: Mapping[str, str], message: str = "gitmlm") -> list[str]:
        """Create refs that must not exist yet: one `git update-ref --stdin` transaction for all
        (thousands of checkpoint refs cost one process), else one by one. Returns the names
        that could not be created because they exist already (or appeared meanwhile)."""
        if not refs:
            return []
        proc = gitcmd.proc(
            ["update-ref", "-m", message, "--stdin"],
            input="".join(f"create {name} {oid}\n" for name, oid in refs.items()),
            git_dir=self.common_dir,
        )
        if proc.returncode == 0:
            return []
        failed = []
        for name, oid in refs.items():
            try:
                self.update_ref(name, oid, None, message)
            except (CasFailed, MlmError):  # exists, or a name clash (refs/a vs refs/a/b)
                failed.append(name)
        return failed

    def delete_ref(self, name: str, old: str | None = None) -> bool:
        """Delete `name`; with `old`, only if it still points there (a compare-and-swap).
        Whether it was deleted."""
        proc = gitcmd.proc(
            ["update-ref", "-d", name] + ([old] if old else []), git_dir=self.common_dir
        )
        return proc.returncode == 0

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise this machine's gitmlm writers of one ref, so CAS retries stay rare."""
        path = self.mlm_dir / "locks" / (name.replace("/", "_") + ".lock")
        try:
            fh = open(path, "a")  # noqa: SIM115 - closed below; the folder is made once
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a")  # noqa: SIM115
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def run_git_status(self, *args: str) -> tuple[int, str]:
        """(exit code, stderr) of a git command whose failure the caller explains."""
        proc = gitcmd.proc(args, cwd=self.root or self.common_dir)
        return proc.returncode, proc.stderr

    def git_proc(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run git and return the whole result, for callers that read its exit code and stderr.

        Never prompts: a remote that wants credentials fails with git's message instead of
        hanging a sync.
        """
        return gitcmd.proc(args, cwd=self.root or self.common_dir, input=input)

    def run_git(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """`git ARGS` in the work tree (the git dir of a bare repository); `env` adds variables."""
        cwd = self.root or self.common_dir
        if check:
            return gitcmd.run(args, cwd=cwd, input=input, env=env)
        return gitcmd.proc(args, cwd=cwd, input=input, env=env).stdout

    def run_git_bytes(self, *args: str) -> bytes:
        """`git ARGS` whose output is binary (archive, cat-file)."""
        return gitcmd.run_bytes(args, cwd=self.root or self.common_dir)


def _zone(offset: int) -> str:
    """A UTC offset in minutes as git writes it: +0100, -0530."""
    return f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
