"""Packed small objects in the local cache (docs/storage.md "Packs"): `data add` packs them,
every reader finds them (checkout, push to S3 and folders, pull, verify, gc), a damaged pack is
refused, writers sharing a cache lose nothing, and a crash before a pack is indexed leaves the
store consistent."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from gitmlm import storage
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.storage import objects, packs, settings
from tests.helpers import git, mlm

BIG = packs.PACK_BELOW + 1000


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _files(n: int, tag: bytes = b"") -> dict[str, bytes]:
    """n small files in 10 folders, and one file too big to pack."""
    out = {f"d{i % 10}/f{i:05d}.csv": tag + b"row %d\n" % i * (1 + i % 7) for i in range(n)}
    out["big.bin"] = tag + bytes(range(256)) * (BIG // 256 + 1)
    return out


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _project(repo: Path, files: dict[str, bytes]) -> None:
    (repo / ".gitignore").write_text("data/\n")
    _write(repo, files)
    mlm(repo, "data", "add", "train", "data")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "data")


def _objects(repo: Path) -> Path:
    return repo / ".git" / "mlm" / "objects"


def _read_all(root: Path) -> dict[str, bytes]:
    base = root / "data"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def _fail(repo: Path, *args: str) -> str:
    proc = mlm(repo, *args, check=False)
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("git mlm: "), proc.stderr
    return lines[0]


def test_data_add_packs_small_files_and_checkout_restores_them(repo: Path) -> None:
    # 2,100 files: hashed (and packed) by forked processes, each indexing its own pack.
    files = _files(2_100)
    _project(repo, files)
    store = _objects(repo)
    indexes = sorted((store / "packs").glob("*.idx"))
    assert indexes and len(indexes) == len(list((store / "packs").glob("*.pack")))
    loose = [p for p in (store / "sha256").rglob("*") if p.is_file()]
    assert loose == [store / objects.key(_sha(files["big.bin"]))]  # only the big one

    for rel in ("d0/f00000.csv", "d3/f00013.csv", "big.bin"):
        (repo / "data" / rel).unlink()
    (repo / "data" / "d1" / "f00001.csv").write_bytes(b"edited")
    mlm(repo, "data", "checkout", "train", "--force")
    assert _read_all(repo) == files
    assert "clean" in mlm(repo, "data", "status").stdout
    verify = mlm(repo, "data", "verify")
    assert verify.returncode == 0

    # A store written before packs existed (one file per object) still reads.
    for data in files.values():
        loose = store / objects.key(_sha(data))
        if not loose.exists():
            loose.parent.mkdir(parents=True, exist_ok=True)
            loose.write_bytes(data)
            loose.chmod(0o444)
    for p in (store / "packs").iterdir():
        p.unlink()
    (repo / "data" / "d0" / "f00000.csv").unlink()
    (repo / "data" / "d5" / "f00005.csv").write_bytes(b"changed")
    mlm(repo, "data", "checkout", "train", "--force")
    assert _read_all(repo) == files
    assert mlm(repo, "data", "verify").returncode == 0


def test_files_the_stat_cache_vouches_for_are_packed_when_stored_later(
    repo: Path, tmp_path: Path
) -> None:
    files = _files(40)
    (repo / ".gitignore").write_text("data/\n")
    _write(repo, files)
    mlm(repo, "data", "add", "--no-store", "train", "data")
    assert not _objects(repo).exists()
    mlm(repo, "data", "add", "train")  # nothing is hashed again: the files are read to store
    store = _objects(repo)
    assert len(list((store / "packs").glob("*.idx"))) == 1
    assert [p for p in (store / "sha256").rglob("*") if p.is_file()] == [
        store / objects.key(_sha(files["big.bin"]))
    ]
    (repo / "data" / "d2" / "f00002.csv").write_bytes(b"edited")
    mlm(repo, "data", "checkout", "train", "--force")
    assert _read_all(repo) == files


def test_packed_objects_push_to_s3_and_a_folder_and_pull_into_fresh_clones(
    repo: Path, s3: str, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    mlm(repo, "init")
    files = _files(300)
    mlm(repo, "storage", "add", "s3", f"s3://{s3}/store", "--default")
    folder = tmp_path / "folder-remote"
    mlm(repo, "storage", "add", "folder", str(folder))
    git(repo, "add", "mlm.toml")
    _project(repo, files)
    assert list((_objects(repo) / "packs").glob("*.idx"))
    assert "pushed 301 object(s)" in mlm(repo, "data", "push").stdout
    assert "pushed 301 object(s)" in mlm(repo, "data", "push", "--remote", "folder").stdout
    # The remotes keep one object per key, whatever the cache does.
    there = {p.parent.name + p.name for p in (folder / "sha256").glob("*/*")}
    assert there == {_sha(d).split(":")[1] for d in files.values()}
    git(repo, "push", "-q", "origin", "main")
    mlm(repo, "push", "origin")  # gitmlm's refs: the manifests

    for name, remote in (("from-s3", "s3"), ("from-folder", "folder")):
        fresh = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), str(fresh))
        mlm(fresh, "fetch", "origin")
        mlm(fresh, "data", "pull", "--remote", remote)
        # Pulled small objects are packed too: one file in the cache per big object only.
        assert list((_objects(fresh) / "packs").glob("*.idx"))
        assert len([p for p in (_objects(fresh) / "sha256").rglob("*") if p.is_file()]) == 1
        mlm(fresh, "data", "checkout", "train")
        assert _read_all(fresh) == files
        assert mlm(fresh, "data", "verify").returncode == 0


def test_gc_rewrites_packs_without_dead_objects_and_keeps_live_ones(repo: Path) -> None:
    v1 = {"a.csv": b"shared by both versions", "b.csv": b"only in version 1"}
    _project(repo, v1)
    lock1 = (repo / "mlm.lock").read_text()
    v2 = {"a.csv": v1["a.csv"], "b.csv": b"version 2"}
    _write(repo, v2)
    mlm(repo, "data", "add", "train")
    git(repo, "commit", "-q", "-am", "v2")
    # Forget version 1's manifest: b.csv's first bytes are then named by nothing.
    manifest = next(
        line.split('"')[1] for line in lock1.splitlines() if line.startswith("manifest")
    )
    git(repo, "update-ref", "-d", f"refs/mlm/manifests/{manifest}")
    packs_dir = _objects(repo) / "packs"
    first = sorted(packs_dir.glob("*.idx"))
    assert len(first) == 2
    for p in packs_dir.iterdir():
        os.utime(p, (1, 1))  # older than gc's grace
    # A pack no index names (its writer died) goes once old; a young one stays.
    (packs_dir / "0-1-dead.pack").write_bytes(b"half")
    os.utime(packs_dir / "0-1-dead.pack", (1, 1))
    (packs_dir / "0-2-young.pack").write_bytes(b"being written")

    dry = mlm(repo, "gc", "--dry-run").stdout
    assert "would delete 1 object(s)" in dry
    assert sorted(packs_dir.glob("*.idx")) == first
    mlm(repo, "gc")
    store = settings.cache(Repo.open(repo))
    assert not store.has(_sha(v1["b.csv"]))
    assert store.has(_sha(v1["a.csv"])) and store.has(_sha(v2["b.csv"]))
    assert store.read(_sha(v1["a.csv"])) == v1["a.csv"]
    assert not (packs_dir / "0-1-dead.pack").exists()
    assert (packs_dir / "0-2-young.pack").exists()
    after = sorted(packs_dir.glob("*.idx"))
    assert first[1] in after and first[0] not in after  # the first pack was rewritten
    assert len(after) == 2 and all(p.with_suffix(".pack").exists() for p in after)
    assert all(p.stat().st_mtime == 1 for p in after)  # the rewrite kept the objects' age
    (repo / "data" / "a.csv").unlink()
    mlm(repo, "data", "checkout", "train")
    assert _read_all(repo) == v2


def _corrupt(repo: Path, data: bytes) -> None:
    """Flip the first byte of `data` inside its pack."""
    for pack in (_objects(repo) / "packs").glob("*.pack"):
        body = pack.read_bytes()
        at = body.find(data)
        if at >= 0:
            os.chmod(pack, 0o644)
            with open(pack, "r+b") as fh:
                fh.seek(at)
                fh.write(bytes([data[0] ^ 0xFF]))
            return
    raise AssertionError("not packed")


def test_a_damaged_pack_entry_is_refused_never_served(repo: Path, tmp_path: Path) -> None:
    files = {"a.csv": b"good bytes a", "b.csv": b"good bytes b", "c.csv": b"bytes of c"}
    _project(repo, files)
    _corrupt(repo, files["b.csv"])
    verify = mlm(repo, "data", "verify", check=False)
    assert verify.returncode == 1 and f"corrupt: {_sha(files['b.csv'])}" in verify.stderr
    for rel in ("a.csv", "b.csv"):
        (repo / "data" / rel).unlink()
    line = _fail(repo, "data", "checkout", "train")
    assert "do not match their digest" in line and "nothing was written" in line
    assert not (repo / "data" / "a.csv").exists() and not (repo / "data" / "b.csv").exists()
    mlm(repo, "storage", "add", "folder", str(tmp_path / "remote"), "--default")
    line = _fail(repo, "data", "push")
    assert "does not match its digest" in line
    assert not (tmp_path / "remote" / objects.key(_sha(files["b.csv"]))).exists()
    # The API that hands out a path never writes the damaged bytes out of the pack.
    r = Repo.open(repo)
    try:
        storage.fetch(r, _sha(files["b.csv"]))
        raise AssertionError("served damaged bytes")
    except MlmError as exc:
        assert "does not match its digest" in str(exc)
    assert not settings.cache(r).loose(_sha(files["b.csv"])).exists()
    assert storage.fetch(r, _sha(files["c.csv"])).read_bytes() == files["c.csv"]

    # A damaged index is one line naming it and the way out, whatever reads the cache.
    (index,) = (_objects(repo) / "packs").glob("*.idx")
    os.chmod(index, 0o644)
    index.write_bytes(index.read_bytes()[:-1] + b"!")
    line = _fail(repo, "data", "verify")
    assert f"the pack index {index.name} of the object cache is damaged" in line


def test_concurrent_data_adds_into_one_shared_cache_lose_nothing(tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    clones = []
    for i in range(3):
        clone = tmp_path / f"clone{i}"
        git(tmp_path, "init", "-q", str(clone))
        git(clone, "config", "mlm.cache", str(shared))
        (clone / ".gitignore").write_text("data/\n")
        # Half of every clone's files are the same in all: the same objects, written at once.
        files = {
            **_files(1_200, b"common "),
            **{f"own/{j}": b"clone %d %d" % (i, j) for j in range(900)},
        }
        _write(clone, files)
        clones.append((clone, files))
    procs = [
        subprocess.Popen(
            ["git", "mlm", "data", "add", "train", "data"], cwd=c, stderr=subprocess.PIPE
        )
        for c, _ in clones
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = [p.name for p in (shared / "packs").glob("*.idx")]
    assert len(names) >= 3 and len(set(names)) == len(names)
    for clone, files in clones:
        for rel in files:
            (clone / "data" / rel).unlink()
        mlm(clone, "data", "checkout", "train")
        assert _read_all(clone) == files
        assert mlm(clone, "data", "verify").returncode == 0


CRASH = """
import os, sys
from pathlib import Path
from gitmlm.storage import objects

real = os.replace
def crash(src, dst, *a, **k):
    if str(dst).endswith(".idx"):
        os._exit(9)  # the pack is written and fsynced; its index never lands
    return real(src, dst, *a, **k)
os.replace = crash
store = objects.Store(Path(sys.argv[1]))
for i in range(50):
    data = b"crash %d" % i
    store.put_hashed(data, "sha256", objects.hashlib.sha256(data).hexdigest())
store.flush()
"""


def test_a_crash_before_the_index_lands_leaves_the_store_consistent(repo: Path) -> None:
    files = {f"f{i}.csv": b"object %d" % i for i in range(50)}
    _project(repo, files)
    root = _objects(repo)
    before = {p.name for p in (root / "packs").iterdir()}
    proc = subprocess.run([sys.executable, "-c", CRASH, str(root)], capture_output=True)
    assert proc.returncode == 9, proc.stderr
    # What the crashed writer left: a complete pack no index names, and its index's temporary.
    left = {p.name for p in (root / "packs").iterdir()} - before
    assert len(left) == 1 and left.pop().endswith(".pack")
    assert len(list((root / "tmp").iterdir())) == 1
    store = settings.cache(Repo.open(repo))
    assert not store.has(_sha(b"crash 3")) and store.check(_sha(b"crash 3")) == "missing"
    assert store.digests() == {_sha(d) for d in files.values()}
    assert mlm(repo, "data", "verify").returncode == 0
    (repo / "data" / "f3.csv").unlink()
    mlm(repo, "data", "checkout", "train")
    assert _read_all(repo) == files
    # The same objects store again; gc removes the leftovers once they are old.
    data = b"crash 3"
    store.put_hashed(data, "sha256", hashlib.sha256(data).hexdigest())
    store.flush()
    assert store.read(_sha(data)) == data
    for p in [*(root / "packs").iterdir(), *(root / "tmp").iterdir()]:
        os.utime(p, (1, 1))
    mlm(repo, "gc")
    assert not any((root / "tmp").iterdir())
    assert {p.name for p in (root / "packs").iterdir()} == before
