"""A registered model's bytes, wherever they are: committed to git, a Git LFS object, or only in
the object store. Whatever the source, the bytes are checked against the registered digest and
kept in the object cache, whose path is what `gitmlm.artifact_path()` returns.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitmlm import storage
from gitmlm.core import digest as content_digest
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import ops
from gitmlm.models import state as model_registry
from gitmlm.storage import objects, settings, transfer


@dataclass(frozen=True)
class Got:
    model: str
    version: str
    digest: str
    path: Path
    """The verified object in the cache (read-only)."""
    source: str
    """"cache", "git", "git-lfs" or "remote NAME"."""
    dest: Path | None = None


def _lfs_content(repo: Repo, pointer: bytes) -> bytes:
    """The content a Git LFS pointer stands for: the local LFS object, else `git lfs smudge`
    (which downloads it from the LFS server)."""
    oid = ""
    for line in pointer.decode("utf-8", "replace").splitlines():
        if line.startswith("oid sha256:"):
            oid = line.split(":", 1)[1].strip()
    local = repo.common_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    if oid and local.is_file():
        return local.read_bytes()
    try:
        proc = subprocess.run(
            ["git", "lfs", "smudge"],
            input=pointer,
            capture_output=True,
            cwd=repo.root or repo.common_dir,
        )
    except FileNotFoundError:
        raise MlmError("the model is a Git LFS pointer and git-lfs is not installed") from None
    if proc.returncode != 0 or content_digest.lfs_oid(proc.stdout) is not None:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MlmError(f"git lfs could not fetch the model: {err[-1] if err else 'no content'}")
    return proc.stdout


def artifact(repo: Repo, spec: str, *, remote: str | None = None) -> Got:
    """Model version SPEC's artifact as a verified object in the cache."""
    r = ops.resolved(repo, spec)
    if not r.digest:
        raise MlmError(
            f"{r.model} {r.version} records no artifact digest (registered without its bytes, "
            "as `import mlflow --no-artifacts` does); re-register it"
        )
    algorithm, _ = objects.parse(r.digest)
    store = settings.cache(repo)
    if store.has(r.digest):
        return Got(r.model, r.version, r.digest, store.path(r.digest), "cache")
    data = repo.file_at(r.commit, r.path) if r.path and repo.has_object(r.commit) else None
    if data is not None:
        source = "git"
        if content_digest.lfs_oid(data) is not None:
            data, source = _lfs_content(repo, data), "git-lfs"
        got = store.add_bytes(data, algorithm)
        if got != r.digest:
            raise MlmError(
                f"{r.path} at {r.commit[:10]} does not match {r.model} {r.version}'s registered "
                f"digest ({r.digest[:19]}…, found {got[:19]}…); it was not used"
            )
        return Got(r.model, r.version, r.digest, store.path(r.digest), source)
    target = settings.pick(repo, remote)
    path = storage.fetch(repo, r.digest, remote=target.name)
    return Got(r.model, r.version, r.digest, path, f"remote {target.name}")


def get(repo: Repo, spec: str, dest: Path | None, *, remote: str | None = None) -> Got:
    """Write model version SPEC's artifact to `dest` (default: its file name, here)."""
    got = artifact(repo, spec, remote=remote)
    r = ops.resolved(repo, spec)
    name = Path(r.path).name if r.path else got.digest.split(":", 1)[1][:12]
    target = dest if dest is not None else Path.cwd() / name
    if target.is_dir():
        target = target / name
    if r.folder:
        # An imported MLflow model: a folder object, its files fetched and checked first.
        storage.export(repo, got.digest, target, folder=True, remote=remote)
        return Got(got.model, got.version, got.digest, got.path, got.source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    objects.place(got.path, target, settings.links(repo))
    return Got(got.model, got.version, got.digest, got.path, got.source, target)


def live_objects(repo: Repo) -> set[str]:
    """Every object something here names: artifacts of runs not deleted (and of runs being
    written here), recorded dataset versions, registered model versions, and the model and
    evaluation data of recorded scans (what `git mlm gc` keeps)."""
    from gitmlm.core import scans
    from gitmlm.data import restore
    from gitmlm.tracking import artifacts

    out = artifacts.live(repo) | restore.live(repo)
    store = settings.cache(repo)
    for scan in scans.read(repo):
        for key in ("artifact_digest", "data_digest"):
            value = scan.doc.get(key)
            if isinstance(value, str) and value:
                out.add(value)
    for model in model_registry.load(repo).models.values():
        for v in model.versions.values():
            digest = v.artifact.get("digest")
            if isinstance(digest, str) and digest:
                out.add(digest)
                if v.artifact.get("kind") == "dir" and store.has(digest):
                    out.update(store.folder_files(digest).values())
    return out


def push_all(
    repo: Repo, remote: str | None = None, progress: transfer.Progress | None = None
) -> tuple[str, transfer.Report]:
    """Upload every cached object something here names (what `git mlm push --data` carries):
    one listing of the remote, then what it lacks."""
    target = settings.pick(repo, remote)
    store = settings.cache(repo)
    wanted = sorted(d for d in live_objects(repo) if store.has(d))
    conn = transfer.connect(repo, target)
    return target.name, transfer.push(conn, store, wanted, progress)
