"""Which code a run ran: HEAD on a clean tree, a checkpoint commit of the work tree otherwise.

The checkpoint is built in a private copy of the index (GIT_INDEX_FILE), so the user's index,
staged changes and work tree are never touched: no stash, no reset, no checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm.checkpoints import rules as coderules
from gitmlm.checkpoints.rules import Rules
from gitmlm.core import refs
from gitmlm.core.git import CasFailed, Repo
from gitmlm.errors import MlmError

MAX_SKIPPED_RECORDED = 100
_TREE_MODE = 0o040000
_UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}


@dataclass(frozen=True)
class Code:
    commit: str
    """The commit whose tree is the code that ran; the run's note goes on it."""
    checkpoint: str
    """"clean" (HEAD as committed) or "snapshot" (a checkpoint of a dirty tree)."""
    base: str | None = None
    """For a snapshot: the HEAD it was taken on."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Record fields about the code: `skipped` paths (path -> why), `cwd` of the run."""


def capture(repo: Repo, run_id: str) -> Code:
    """The code a run about to start runs: HEAD when the tree is clean (as far as code goes),
    else a new checkpoint commit of the work tree kept at refs/mlm/checkpoints/<run_id>."""
    head = repo.head_commit()
    root = repo.workdir
    rules = coderules.load(root)
    tree, skipped = work_tree(repo, rules, run_id)
    extra: dict[str, Any] = {}
    if skipped:
        shown = dict(sorted(skipped.items())[:MAX_SKIPPED_RECORDED])
        extra["skipped"] = shown
        if len(skipped) > len(shown):
            extra["skipped_total"] = len(skipped)
    cwd = _cwd_in(root)
    if cwd:
        extra["cwd"] = cwd
    head_tree = repo.tree_of(head)
    if not code_diff(repo, head_tree, tree, rules):
        keep(repo, head)
        return Code(head, "clean", None, extra)
    message = (
        f"gitmlm checkpoint of run {run_id}\n\n"
        f"The work tree on {head[:12]} when the run started (uncommitted code).\n"
    )
    commit = repo.commit_tree(tree, [head], message)
    try:
        repo.update_ref(refs.checkpoint(run_id), commit, None, f"gitmlm: checkpoint {run_id}")
    except CasFailed as exc:
        raise MlmError(f"checkpoint of run {run_id} exists already; start the run again") from exc
    return Code(commit, "snapshot", head, extra)


def _cwd_in(root: Path) -> str:
    try:
        rel = Path.cwd().resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return ""
    return "" if str(rel) == "." else rel.as_posix()


@contextlib.contextmanager
def private_index(repo: Repo, name: str) -> Iterator[dict[str, str]]:
    """An environment whose GIT_INDEX_FILE is a copy of the user's index, removed afterwards.

    The copy keeps the stat data (and its mtime, for git's racy-clean check), so git re-hashes
    only the files that changed, as `git status` would.
    """
    tmp = repo.mlm_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    index = tmp / f"index-{name}-{os.getpid()}"
    env = {"GIT_INDEX_FILE": str(index), "GIT_LITERAL_PATHSPECS": "1"}
    try:
        source = repo.index_path()
        if source.exists():
            shutil.copy2(source, index)
        else:
            repo.run_git("read-tree", "HEAD", env=env)
        yield env
    finally:
        for leftover in (index, index.with_name(index.name + ".lock")):
            leftover.unlink(missing_ok=True)


def work_tree(repo: Repo, rules: Rules, name: str) -> tuple[str, dict[str, str]]:
    """(tree of the work tree as a run sees it, skipped path -> why) — written to the object
    store only; excluded, dataset, output and oversized files keep their staged version."""
    root = repo.workdir
    skipped: dict[str, str] = {}
    if repo.unchanged():  # in-process: most of a small run's cost was starting `git status`
        return repo.tree_of(repo.head_commit()), skipped
    with private_index(repo, name) as env:
        status = repo.run_git(
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=dirty",
            "--no-renames",
            env=env,
        )
        to_add: list[str] = []
        for entry in status.split("\0"):
            if len(entry) < 4:
                continue
            xy, path = entry[:2], entry[3:]
            if xy[1] == " " and xy not in _UNMERGED:
                continue  # staged and unchanged since: the index copy already holds it
            if path.endswith("/"):
                skipped[path] = "repository"  # an embedded repository that is no submodule
                continue
            why = rules.not_code(path)
            if why in ("exclude", "dataset"):
                skipped[path] = why
                continue
            if why == "output":
                continue  # results are never code: compared by digest, not snapshot
            try:
                st = os.lstat(root / path)
            except FileNotFoundError:
                to_add.append(path)  # deleted: `add -A` records the removal
                continue
            if st.st_size > rules.max_bytes and not os.path.islink(root / path):
                skipped[path] = "size"
                continue
            to_add.append(path)
        if to_add:
            repo.run_git(
                "add",
                "-A",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                input="\0".join(to_add) + "\0",
                env=env,
            )
            proc_tree = repo.run_git("write-tree", env=env).strip()
        else:  # nothing to add: the index copy is the tree, written without a process start
            proc_tree = repo.index_tree(Path(env["GIT_INDEX_FILE"]))
    return proc_tree, skipped


def code_diff(
    repo: Repo, tree_a: str, tree_b: str, rules: Rules, ignore: frozenset[str] = frozenset()
) -> list[str]:
    """The code paths (by the rules) that differ between two trees; [] when the code is equal."""
    if tree_a == tree_b:
        return []
    return [p for p in repo.changed_paths(tree_a, tree_b) if rules.is_code(p) and p not in ignore]


def keep(repo: Repo, commit: str) -> None:
    """Keep a commit that carries runs reachable, whatever happens to its branch (squash merges
    delete them); the ref is pushed with the other refs/mlm/ refs."""
    name = refs.keep(commit)
    if repo.ref(name) is None:
        with contextlib.suppress(CasFailed):
            repo.update_ref(name, commit, None, "gitmlm: keep a commit with runs")


# --- code keys: equal code <=> equal key, cached per tree ---------------------------------------


class CodeKeys:
    """Code keys of trees under one set of rules, cached in .git/mlm/cache.

    The key of a tree is its own id when no rule restricts the code; otherwise a hash of its
    entries that are code, recursing only into folders some rule can reach, so equal keys mean
    equal code and unrelated folders cost nothing.
    """

    def __init__(self, repo: Repo, rules: Rules) -> None:
        self.repo = repo
        self.rules = rules
        self._file = repo.mlm_dir / "cache" / f"codekeys-{rules.fingerprint()}.json"
        self._keys: dict[str, str] = {}
        self._dirty = False
        if not rules.identity:
            try:
                self._keys = json.loads(self._file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._keys = {}

    def of_tree(self, tree: str) -> str:
        if self.rules.identity:
            return tree
        key = self._keys.get(tree)
        if key is None:
            key = self._compute(tree, "")
            self._keys[tree] = key
            self._dirty = True
        return key

    def of_commit(self, commit: str) -> str:
        return self.of_tree(self.repo.tree_of(commit))

    def _compute(self, tree: str, prefix: str) -> str:
        rules = self.rules
        negative = (rules.exclude, rules.datasets, rules.outputs)
        h = hashlib.sha1()
        for name, oid, mode in self.repo.tree_entries(tree):
            path = prefix + name
            if mode == _TREE_MODE:
                if any(g.match(path) for g in negative):
                    continue
                if rules.code and not rules.code.touches(path):
                    continue
                whole = not any(g.touches(path) for g in negative) and (
                    not rules.code or rules.code.match(path)
                )
                sub = oid if whole else self._compute(oid, path + "/")
                if sub == _EMPTY:
                    continue
            elif not rules.is_code(path):
                continue
            else:
                sub = oid
            h.update(f"{mode:o} {name}\0{sub}\n".encode())
        return h.hexdigest()

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_name(f"{self._file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._keys), encoding="utf-8")
            os.replace(tmp, self._file)
        except OSError:
            pass  # a cache; a read-only .git only makes the next run slower


_EMPTY = hashlib.sha1().hexdigest()


# --- outputs a run writes --------------------------------------------------------------------

Stamp = tuple[int, int]


def output_files(root: Path, rules: Rules) -> dict[str, Stamp]:
    """Declared outputs present in the work tree -> (size, mtime_ns), to see what a run wrote."""
    out: dict[str, Stamp] = {}
    if not rules.outputs:
        return out
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = [
            d for d in dirs if d != ".git" and rules.outputs.touches(prefix + d)
        ]  # only folders an output pattern can reach
        for name in files:
            path = prefix + name
            if rules.outputs.match(path):
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(folder, name))
                    out[path] = (st.st_size, st.st_mtime_ns)
    return out


def changed_outputs(root: Path, rules: Rules, before: dict[str, Stamp]) -> list[str]:
    """Outputs that appeared or changed since `before` was taken."""
    after = output_files(root, rules)
    return sorted(p for p, stamp in after.items() if before.get(p) != stamp)
