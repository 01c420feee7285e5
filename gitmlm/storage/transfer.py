"""Moving objects between the cache and a remote through fsspec: one listing to learn what the
remote holds, then the missing objects in parallel.

A remote holds the cache's layout below its URL (`s3://bucket/prefix/sha256/ab/cdef…`). Uploads
to object stores are atomic by nature (an S3 PUT appears whole or not at all); to folders they
go to a temporary name and are renamed, so a listing never shows half an object and an
interrupted push is completed by the next one. Downloads land in the cache's tmp/ and are
renamed into place only after their digest is checked (objects.Store.adopt).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.storage import objects, packs
from gitmlm.storage.settings import Remote

Progress = Callable[[int, int], None]
"""Called with (bytes, objects) just moved; may be called from several threads."""
WORKERS = 16
BATCH = 256
ATOMIC_PUT = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")


@dataclass
class Connection:
    remote: Remote
    fs: Any
    base: str
    """The remote's root as the filesystem names it (no protocol)."""
    local: bool

    def path(self, digest: str) -> str:
        return f"{self.base}/{objects.key(digest)}"

    @property
    def is_async(self) -> bool:
        return bool(getattr(self.fs, "async_impl", False))


@dataclass
class Report:
    moved: list[str] = field(default_factory=list)
    already: int = 0
    missing: list[str] = field(default_factory=list)
    """Wanted but neither here nor there."""
    bad: list[str] = field(default_factory=list)
    """Remote objects whose content does not match their name: never used."""
    bytes: int = 0


def connect(repo: Repo, remote: Remote) -> Connection:
    url = remote.url
    if "://" not in url:
        folder = Path(url).expanduser()
        if not folder.is_absolute():
            folder = repo.workdir / folder
        return Connection(remote, None, str(folder), True)
    if url.split("://", 1)[0] == "file":
        return Connection(remote, None, url.split("://", 1)[1].rstrip("/"), True)
    fs, path = open_url(remote)
    return Connection(remote, fs, str(path).rstrip("/"), False)


def fs_options(remote: Remote) -> dict[str, Any]:
    """The fsspec filesystem's options for `remote` (a URL with a protocol): plain data, so a
    worker on another machine can open the same filesystem (`filesystem`)."""
    try:
        import fsspec  # noqa: F401
    except ImportError as exc:
        raise MlmError("remotes need fsspec: pip install 'gitmlm[s3]'") from exc
    protocol = remote.url.split("://", 1)[0]
    kwargs: dict[str, Any] = dict(remote.options)
    if protocol in ("s3", "s3a"):
        try:
            import s3fs  # noqa: F401
        except ImportError as exc:
            raise MlmError("S3 remotes need s3fs: pip install 'gitmlm[s3]'") from exc
        endpoint = (
            remote.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        kwargs.setdefault("config_kwargs", {"connect_timeout": 5, "retries": {"max_attempts": 2}})
    kwargs.setdefault("skip_instance_cache", True)
    kwargs.setdefault("use_listings_cache", False)
    return kwargs


def open_url(remote: Remote, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(filesystem, path) of `remote`'s URL with `options` (default: `fs_options(remote)`)."""
    import fsspec

    url = remote.url
    kwargs = fs_options(remote) if options is None else options
    try:
        fs, path = fsspec.core.url_to_fs(url, **kwargs)
    except (ImportError, ValueError) as exc:
        raise MlmError(f"storage remote {remote.name}: {url}: {exc}") from exc
    if url.split("://", 1)[0] in ("s3", "s3a"):
        # s3fs retries 5 times with backoff on top of botocore's own attempts: an unreachable
        # endpoint would take seconds to report. Three tries still ride out a glitch.
        fs.retries = 3
    return fs, str(path)


@contextlib.contextmanager
def guard(conn: Connection, what: str) -> Iterator[None]:
    """One clear line for what remotes do wrong: no bucket, no access, no network, no space."""
    r = conn.remote
    where = f"storage remote {r.name} ({r.url})"
    try:
        yield
    except MlmError:
        raise
    except FileNotFoundError as exc:
        if conn.local:
            raise MlmError(f"{what}: {where}: {exc.strerror}: {exc.filename}") from exc
        bucket = conn.base.split("/", 1)[0]
        raise MlmError(
            f"{what}: {where}: the bucket {bucket!r} does not exist (create it, or fix the URL "
            f"with `git mlm storage rm {r.name}` and `git mlm storage add`)"
        ) from exc
    except PermissionError as exc:
        raise MlmError(
            f"{what}: {where} refused access ({exc}); check the credentials in the "
            "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise MlmError(f"{what}: the disk is full; nothing was half-written") from exc
        raise MlmError(f"{what}: {where}: {exc.strerror or exc}") from exc
    except Exception as exc:
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name:
            endpoint = getattr(conn.fs, "client_kwargs", {}).get("endpoint_url") or getattr(
                conn.fs, "endpoint_url", None
            )
            at = f" at {endpoint}" if endpoint else ""
            raise MlmError(f"{what}: cannot reach {where}{at}: {exc}") from exc
        if "Credential" in name:
            raise MlmError(
                f"{what}: {where}: no credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
            ) from exc
        raise


def present(conn: Connection) -> dict[str, int]:
    """Every object the remote holds, digest -> size (-1 for a folder remote, which would need
    a stat per object to tell): one listing (paged by the store)."""
    out: dict[str, int] = {}
    if conn.local:
        base = Path(conn.base)
        if not base.exists():
            return out
        for algorithm in objects.ALGORITHMS:
            top = base / algorithm
            if not top.is_dir():
                continue
            for sub in os.scandir(top):
                if not sub.is_dir():
                    continue
                for entry in os.scandir(sub.path):
                    if entry.name.endswith(".mlm-tmp"):
                        continue
                    # No stat per object: a listing of 100,000 objects stays a directory read.
                    out[f"{algorithm}:{sub.name}{entry.name}"] = -1
        return out
    with guard(conn, "listing"):
        found = conn.fs.find(conn.base, detail=True)
    prefix = conn.base + "/"
    for name, info in found.items():
        rel = name[len(prefix) :] if name.startswith(prefix) else name
        digest = objects.digest_of_key(rel)
        if digest is not None:
            out[digest] = int(info.get("size") or 0)
    return out


def push(
    conn: Connection,
    store: objects.Store,
    digests: Sequence[str],
    progress: Progress | None = None,
    known: dict[str, int] | None = None,
) -> Report:
    """Upload the objects the remote lacks; idempotent, so concurrent pushes are safe."""
    there = known if known is not None else present(conn)
    report = Report()
    todo: list[str] = []
    for digest in dict.fromkeys(digests):
        if digest in there:
            report.already += 1
        elif store.has(digest):
            todo.append(digest)
        else:
            report.missing.append(digest)
    sizes = {d: store.size(d) for d in todo}
    if conn.local:

        def one(digest: str) -> None:
            dst = Path(conn.path(digest))
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}.mlm-tmp"
            try:
                loose = store.fast_path(digest)
                if os.path.isfile(loose):
                    shutil.copyfile(loose, tmp)
                else:  # a packed object: its bytes, checked as they are read
                    tmp.write_bytes(store.read(digest))
                os.replace(tmp, dst)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
            if progress:
                progress(sizes[digest], 1)

        with guard(conn, "push"), ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, todo))
    else:
        protocol = conn.fs.protocol[0] if isinstance(conn.fs.protocol, tuple) else conn.fs.protocol
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            with guard(conn, "push"):
                _put_batch(conn, store, batch, protocol in ATOMIC_PUT)
            if progress:
                progress(sum(sizes[d] for d in batch), len(batch))
    report.moved = todo
    report.bytes = sum(sizes.values())
    return report


def _put_batch(conn: Connection, store: objects.Store, batch: list[str], atomic: bool) -> None:
    # Loose objects go up from their files; packed ones (small, from `data add`) from their
    # bytes, read out of the pack and checked. The remote's layout is one object per key
    # either way: remotes are shared by clones and versions that know nothing of packs.
    loose = [d for d in batch if os.path.isfile(store.fast_path(d))]
    packed_set = set(batch) - set(loose)
    packed = [d for d in batch if d in packed_set]
    if atomic and conn.is_async:
        if loose:
            conn.fs.put([store.fast_path(d) for d in loose], [conn.path(d) for d in loose])
        if packed:
            conn.fs.pipe({conn.path(d): store.read(d) for d in packed})
        return

    def one(digest: str) -> None:
        target = conn.path(digest)
        name = target if atomic else f"{target}.{uuid.uuid4().hex[:8]}.mlm-tmp"
        if digest in packed_set:
            conn.fs.pipe_file(name, store.read(digest))
        else:
            conn.fs.put_file(store.fast_path(digest), name)
        if not atomic:
            conn.fs.mv(name, target)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, batch))


def pull(
    conn: Connection,
    store: objects.Store,
    digests: Sequence[str],
    progress: Progress | None = None,
    known: dict[str, int] | None = None,
) -> Report:
    """Download the objects the cache lacks, each checked against its digest before the cache
    holds it; a mismatch is reported in `bad` and the object is not used. Small objects go
    into a pack from memory (no file each, as `data add` stores them); the others land in tmp/
    and are renamed into place once checked."""
    report = Report()
    wanted = [d for d in dict.fromkeys(digests) if not store.has(d)]
    report.already = len(set(digests)) - len(wanted)
    if not wanted:
        return report
    there = known if known is not None else present(conn)
    todo: list[str] = []
    for d in wanted:
        (todo if d in there else report.missing).append(d)
    small = {d for d in todo if 0 <= there[d] < packs.PACK_BELOW}
    tmps: dict[str, Path] = {}

    def tmp(digest: str) -> Path:
        path = tmps[digest] = store.tmp()
        return path

    def adopt(digest: str) -> bool:
        try:
            store.adopt(tmps[digest], digest)
        except MlmError:
            report.bad.append(digest)
            return False
        except OSError as exc:
            raise objects._os_error(exc, "pull") from exc
        return True

    def keep(digest: str, data: bytes) -> bool:
        if not store.put_checked(data, digest):
            report.bad.append(digest)
            return False
        return True

    try:
        if conn.local:

            def one(digest: str) -> None:
                with open(conn.path(digest), "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    if size < packs.PACK_BELOW:
                        ok = keep(digest, src.read())
                    else:
                        with open(tmp(digest), "wb") as dst:
                            shutil.copyfileobj(src, dst, objects.CHUNK)
                        ok = adopt(digest)
                there[digest] = size
                if ok:
                    report.moved.append(digest)
                if progress:
                    progress(size, 1)

            with guard(conn, "pull"), ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(one, todo))
        else:
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                little = [d for d in batch if d in small]
                large = [d for d in batch if d not in small]
                with guard(conn, "pull"):
                    # Small objects in memory, fetched concurrently (a list gives a dict).
                    got = conn.fs.cat([conn.path(d) for d in little]) if little else {}
                    if large and conn.is_async:
                        conn.fs.get([conn.path(d) for d in large], [str(tmp(d)) for d in large])
                    elif large:
                        with ThreadPoolExecutor(WORKERS) as pool:
                            list(pool.map(lambda d: conn.fs.get_file(conn.path(d), tmp(d)), large))
                for digest in little:
                    data = got.get(conn.path(digest))
                    if data is None:
                        report.missing.append(digest)
                    elif keep(digest, data):
                        report.moved.append(digest)
                with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                    for digest, ok in zip(large, pool.map(adopt, large), strict=True):
                        if ok:
                            report.moved.append(digest)
                if progress:
                    progress(sum(there[d] for d in batch), len(batch))
    finally:
        for path in tmps.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        store.flush()  # what was checked and packed becomes visible, even after an error
    report.bytes = sum(there[d] for d in report.moved)
    return report


def check_remote(
    conn: Connection, digests: Sequence[str], progress: Progress | None = None
) -> Report:
    """Read the named objects back from the remote and hash them: `bad` for a mismatch."""
    import hashlib

    there = present(conn)
    report = Report()
    todo: list[str] = []
    for d in dict.fromkeys(digests):
        (todo if d in there else report.missing).append(d)

    def one(digest: str) -> None:
        algorithm, hex_ = objects.parse(digest)
        if conn.local:
            there[digest] = os.stat(conn.path(digest)).st_size
        h = hashlib.new(algorithm)
        if conn.local:
            got = objects.hash_path(Path(conn.path(digest)), algorithm)
        else:
            with conn.fs.open(conn.path(digest), "rb") as fh:
                while chunk := fh.read(objects.CHUNK):
                    h.update(chunk)
            got = h.hexdigest()
        (report.moved if got == hex_ else report.bad).append(digest)
        if progress:
            progress(there[digest], 1)

    with guard(conn, "verify"), ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, todo))
    return report


def delete(conn: Connection, digests: Sequence[str]) -> None:
    with guard(conn, "gc"):
        if conn.local:
            for d in digests:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(conn.path(d))
        elif digests:
            conn.fs.rm([conn.path(d) for d in digests])
