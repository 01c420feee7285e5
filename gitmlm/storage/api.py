"""The storage part's API for the other parts: bytes by digest, from the cache or a remote.

ensure(repo, digests)             -> Report     the objects in the cache, pulled if needed
fetch(repo, digest)               -> Path       one verified object in the cache
export(repo, digest, dest, ...)   -> list[str]  a file or a folder object placed at dest
zip_folder(repo, digest, out)     -> int        a folder object's files as a zip, each checked
store_path(repo, path)            -> (digest, size, files)  bytes in, at once
"""

from __future__ import annotations

import hashlib
import posixpath
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.storage import objects, settings, transfer


def _short(digest: str) -> str:
    return digest[:19] + "…"


def ensure(
    repo: Repo,
    digests: Sequence[str],
    *,
    remote: str | None = None,
    progress: transfer.Progress | None = None,
) -> transfer.Report:
    """Make every object present in the cache, pulling what is missing from the remote (named,
    or the default). Missing or corrupt objects are one clear error; nothing unchecked lands."""
    store = settings.cache(repo)
    lacking = [d for d in dict.fromkeys(digests) if not store.has(d)]
    if not lacking:
        return transfer.Report(already=len(set(digests)))
    try:
        target = settings.pick(repo, remote)
    except MlmError as exc:
        if remote is None:
            raise MlmError(
                f"{len(lacking)} object(s) ({_short(lacking[0])}) are not in the local cache "
                f"and cannot be fetched: {exc}"
            ) from None
        raise
    conn = transfer.connect(repo, target)
    report = transfer.pull(conn, store, lacking, progress)
    if report.bad:
        raise MlmError(
            f"storage remote {target.name}: {len(report.bad)} object(s) do not match their "
            f"digest ({_short(report.bad[0])}) and were not used; `git mlm data verify "
            "--remote` lists them"
        )
    if report.missing:
        raise MlmError(
            f"{len(report.missing)} object(s) ({_short(report.missing[0])}) are neither in the "
            f"cache nor on storage remote {target.name}; push them from a clone that has them"
        )
    return report


def fetch(repo: Repo, digest: str, *, remote: str | None = None) -> Path:
    """A verified local path holding the object's bytes (read-only; copy before editing)."""
    objects.parse(digest)
    ensure(repo, [digest], remote=remote)
    return settings.cache(repo).path(digest)


def folder_files(repo: Repo, digest: str, *, remote: str | None = None) -> dict[str, str]:
    """A folder object's files, path -> digest (the listing is fetched when needed)."""
    objects.parse(digest)
    ensure(repo, [digest], remote=remote)
    return objects.parse_listing(settings.cache(repo).read(digest))


def export(
    repo: Repo,
    digest: str,
    dest: Path,
    *,
    folder: bool = False,
    remote: str | None = None,
    progress: transfer.Progress | None = None,
) -> list[str]:
    """Place a file object at `dest`, or a folder object's files below `dest`; the paths
    written. Everything is fetched and checked before the first file is written."""
    store = settings.cache(repo)
    if not folder:
        objects.parse(digest)
        ensure(repo, [digest], remote=remote)
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.place(digest, dest, settings.links(repo))
        return [str(dest)]
    files = folder_files(repo, digest, remote=remote)
    ensure(repo, list(files.values()), remote=remote, progress=progress)
    links = settings.links(repo)
    for rel, d in sorted(files.items()):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        store.place(d, target, links)
    return [str(dest / rel) for rel in sorted(files)]


def zip_folder(repo: Repo, digest: str, out: IO[bytes], *, remote: str | None = None) -> int:
    """Write a folder object's files into `out` as a zip (members at their listed paths); the
    number of files. Every object is fetched first and each file's bytes are hashed as they are
    copied in, so a missing or tampered object is one MlmError: the caller sends `out` only when
    this returns, never a partial archive."""
    algorithm, expected = objects.parse(digest)
    ensure(repo, [digest], remote=remote)
    data = settings.cache(repo).read(digest)
    if hashlib.new(algorithm, data).hexdigest() != expected:
        raise MlmError(f"the listing of folder {_short(digest)} does not match its digest")
    files = objects.parse_listing(data)
    for rel in files:
        # A listing is ours, but it is read from disk: never let a member name climb out.
        if rel.startswith("/") or ".." in rel.split("/") or posixpath.normpath(rel) != rel:
            raise MlmError(
                f"folder {_short(digest)} lists a bad path {rel!r}; run `git mlm data verify`"
            )
    ensure(repo, list(files.values()), remote=remote)
    store = settings.cache(repo)
    # compresslevel 1: models and tensors hardly compress, and the user waits for the download.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for rel, file_digest in sorted(files.items()):
            algorithm, expected = objects.parse(file_digest)
            hasher = hashlib.new(algorithm)
            try:
                with (
                    store.open(file_digest) as src,
                    archive.open(rel, "w", force_zip64=True) as dst,
                ):
                    while chunk := src.read(objects.CHUNK):
                        hasher.update(chunk)
                        dst.write(chunk)
            except FileNotFoundError:
                raise MlmError(
                    f"object {_short(file_digest)} of {rel} left the cache while it was read"
                ) from None
            if hasher.hexdigest() != expected:
                raise MlmError(
                    f"object {_short(file_digest)} of {rel} does not match its digest (the cache "
                    "was changed); `git mlm data verify` lists such objects"
                )
    return len(files)


def store_path(repo: Repo, path: Path) -> tuple[str, int, int]:
    """Store a file or every file of a folder now: (digest, total size, files). A folder's
    digest is that of its listing object (objects.listing)."""
    store = settings.cache(repo)
    if path.is_dir():
        digest, files = store.add_folder(path)
        return digest, sum(s.size for s in files.values()), len(files)
    stored = store.add_file(path)
    return stored.digest, stored.size, 1
