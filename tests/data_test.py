"""Data version management: declaring, fingerprinting, status, diffs, bad input, runs."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import tomllib
from pathlib import Path

import pytest

from gitmlm.core.git import Repo
from gitmlm.data import datasets as data
from gitmlm.data import hashing, manifest, statcache
from gitmlm.data import lock as lockfile
from gitmlm.errors import MlmError
from tests.helpers import git, mlm


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_data(repo: Path) -> None:
    write(repo / "data/train/a.csv", "x,y\n1,2\n")
    write(repo / "data/train/b.csv", "x,y\n3,4\n")
    write(repo / "data/train/sub/c.csv", "x,y\n5,6\n")


def state(repo: Path) -> tuple[bytes | None, bytes | None, str, str]:
    """Everything a failed command must leave as it was."""

    def read(name: str) -> bytes | None:
        f = repo / name
        return f.read_bytes() if f.exists() else None

    return (
        read("mlm.toml"),
        read("mlm.lock"),
        git(repo, "for-each-ref", "refs/mlm/"),
        git(repo, "status", "--porcelain"),
    )


def listing_digest(folder: Path) -> str:
    """The documented recipe: sha256 of `sha256sum`'s sorted listing of the folder."""
    files = sorted(
        (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
        key=lambda s: s.encode(),
    )
    lines = "".join(
        f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n" for f in files
    )
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


# --- the main flow through the CLI -------------------------------------------------------------


def test_add_status_diff_ls(repo: Path) -> None:
    make_data(repo)
    out = mlm(repo, "data", "add", "train", "data/train")
    assert "train: sha256:" in out.stdout and "3 files" in out.stdout
    cfg = tomllib.loads((repo / "mlm.toml").read_text())
    assert cfg["datasets"]["train"]["path"] == "data/train"
    lock = tomllib.loads((repo / "mlm.lock").read_text())
    entry = lock["datasets"]["train"]
    assert lock["schema"] == 1
    assert entry["algorithm"] == "sha256"
    assert entry["digest"] == listing_digest(repo / "data/train")
    assert (entry["size"], entry["files"]) == (24, 3)
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/mlm/manifests/").strip() == (
        f"refs/mlm/manifests/{entry['manifest']}"
    )
    assert "A  mlm.lock" in git(repo, "status", "--porcelain")  # staged, ready to commit
    git(repo, "commit", "-qm", "data v1")

    status = json.loads(mlm(repo, "data", "status", "--format", "json").stdout)
    assert status[0]["status"] == "clean"

    write(repo / "data/train/a.csv", "x,y\n1,9\n")
    write(repo / "data/train/new.csv", "n\n")
    (repo / "data/train/sub/c.csv").unlink()
    status = json.loads(mlm(repo, "data", "status", "--format", "json").stdout)[0]
    assert (status["status"], status["modified"], status["added"], status["removed"]) == (
        "modified",
        1,
        1,
        1,
    )
    assert mlm(repo, "data", "status", "--exit-code", check=False).returncode == 1

    rows = json.loads(mlm(repo, "data", "diff", "train", "--format", "json").stdout)
    assert {(r["change"], r["path"]) for r in rows} == {
        ("modified", "a.csv"),
        ("added", "new.csv"),
        ("removed", "sub/c.csv"),
    }
    mlm(repo, "data", "add", "train")
    git(repo, "commit", "-qm", "data v2")
    rows = json.loads(
        mlm(repo, "data", "diff", "train", "HEAD~1", "HEAD", "--format", "json").stdout
    )
    assert {(r["change"], r["path"]) for r in rows} == {
        ("modified", "a.csv"),
        ("added", "new.csv"),
        ("removed", "sub/c.csv"),
    }
    table = mlm(repo, "data", "diff", "train", "HEAD~1").stdout
    assert "mlm.lock at HEAD~1" in table and "new.csv" in table

    ls = json.loads(mlm(repo, "data", "ls", "--format", "json").stdout)
    head = git(repo, "rev-parse", "HEAD").strip()
    assert ls[0]["dataset"] == "train" and ls[0]["changed"] == head and ls[0]["files"] == 3
    md = mlm(repo, "data", "ls", "--format", "md").stdout
    assert md.startswith("| dataset | path |")


def test_single_file_digest_is_the_files_own(repo: Path) -> None:
    f = write(repo / "data/train.csv", "a,b\n1,2\n")
    mlm(repo, "data", "add", "train", "data/train.csv")
    lock = lockfile.load(repo)
    assert lock["train"]["digest"] == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()


def test_glob_and_exclude(repo: Path) -> None:
    write(repo / "data/a.csv", "1")
    write(repo / "data/b.csv", "2")
    write(repo / "data/notes.txt", "n")
    write(repo / "data/deep/c.csv", "3")
    write(repo / "data/deep/skip.csv", "4")
    write(
        repo / "mlm.toml",
        'schema = 1\n[datasets.csvs]\npath = "data/**/*.csv"\nexclude = ["skip.csv"]\n',
    )
    mlm(repo, "data", "add")
    (fp,) = data.fingerprint(
        Repo.open(repo),
        [
            data.dataspec.enumerate_files(
                repo, data.dataspec.Spec("csvs", "data/**/*.csv", ("skip.csv",))
            )
        ],
        statcache.StatCache.load(Repo.open(repo).mlm_dir, repo),
        False,
    )
    assert sorted(fp.entries()) == ["a.csv", "b.csv", "deep/c.csv"]
    assert lockfile.load(repo)["csvs"]["files"] == 3


def test_glob_matching_folders_brings_what_is_below(repo: Path) -> None:
    write(repo / "data/part-1/x.bin", "1")
    write(repo / "data/part-2/deep/y.bin", "2")
    write(repo / "data/other/z.bin", "3")
    mlm(repo, "data", "add", "parts", "data/part-*")
    assert lockfile.load(repo)["parts"]["files"] == 2
    write(repo / "data/part-2/deep/y.bin", "changed")
    rows = json.loads(mlm(repo, "data", "diff", "parts", "--format", "json").stdout)
    assert [(r["change"], r["path"]) for r in rows] == [("modified", "part-2/deep/y.bin")]


def test_rm_forgets_declaration_and_record(repo: Path) -> None:
    make_data(repo)
    write(repo / "mlm.toml", "schema = 1\n# keep me\n[metrics]\nacc = 'max'\n")
    mlm(repo, "data", "add", "train", "data/train")
    assert "# keep me" in (repo / "mlm.toml").read_text()  # the user's comments survive
    mlm(repo, "data", "rm", "train")
    assert "train" not in tomllib.loads((repo / "mlm.toml").read_text()).get("datasets", {})
    assert lockfile.load(repo) == {}
    assert "# keep me" in (repo / "mlm.toml").read_text()


# --- the stat cache ----------------------------------------------------------------------------


def test_unchanged_data_is_not_read_again(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(repo)
    r = Repo.open(repo)
    data.add(r, "train", "data/train", cwd=repo)
    # Files written just now are racy, so a second pass re-hashes them once; after that the
    # stat cache answers alone.
    data.status(r)
    calls: list[str] = []
    real = hashing.hash_file

    def spy(full: str, rel: str, algorithm: str, buf: bytearray | None = None) -> hashing.Hashed:
        calls.append(rel)
        return real(full, rel, algorithm, buf)

    monkeypatch.setattr(hashing, "hash_file", spy)
    time.sleep(0.02)
    (st,) = data.status(r)
    assert st.state == "clean"
    assert calls == []


def test_touched_but_unchanged_file_is_clean(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    f = repo / "data/train/a.csv"
    os.utime(f, ns=(time.time_ns() + 5_000_000_000, time.time_ns() + 5_000_000_000))
    out = json.loads(mlm(repo, "data", "status", "--format", "json").stdout)[0]
    assert out["status"] == "clean"


def test_same_size_same_mtime_change_is_caught(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    f = repo / "data/train/a.csv"
    before = f.stat()
    f.write_text("x,y\n1,3\n")  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = json.loads(mlm(repo, "data", "status", "--format", "json").stdout)[0]
    assert (out["status"], out["modified"]) == ("modified", 1)


def test_racy_entry_is_rehashed_even_when_stat_matches(repo: Path) -> None:
    """A file rewritten within one timestamp tick after it was hashed keeps its whole stat on
    coarse file systems. Simulate that by making the cache's stat the file's new stat: the entry
    is racy (its mtime is not older than its stamp), so it is hashed again."""
    make_data(repo)
    r = Repo.open(repo)
    f = repo / "data/train/a.csv"
    future = time.time_ns() + 60_000_000_000  # mtime ahead of any stamp: racy for a minute
    os.utime(f, ns=(future, future))
    data.add(r, "train", "data/train", cwd=repo)
    f.write_text("x,y\n7,7\n")
    os.utime(f, ns=(future, future))
    cache = statcache.StatCache.load(r.mlm_dir, repo)
    table = cache.table("sha256")
    _, hex_, stamp = table["data/train/a.csv"]
    table["data/train/a.csv"] = (hashing.stat_key(f.stat()), hex_, stamp)
    cache.dirty = True
    cache.save()
    (st,) = data.status(r)
    assert st.state == "modified" and st.changes is not None
    assert st.changes.modified == ["a.csv"]


def test_fresh_rule() -> None:
    key = (10, 1_000, 1_000, 7)
    assert statcache.fresh((key, "h", 2_000), key)
    assert not statcache.fresh((key, "h", 1_000), key)  # mtime not older than the stamp
    assert not statcache.fresh((key, "h", 2_000), (10, 1_000, 1_500, 8))
    assert not statcache.fresh(None, key)


def test_damaged_or_partial_cache_is_a_cold_start(repo: Path) -> None:
    make_data(repo)
    r = Repo.open(repo)
    data.add(r, "train", "data/train", cwd=repo)
    data.status(r)
    cache = statcache.StatCache.load(r.mlm_dir, repo)
    cache.file.write_bytes(b"garbage")  # the table is gone, the memo still vouches
    write(repo / "data/train/b.csv", "x,y\n3,5\n")
    (st,) = data.status(r)
    assert st.state == "modified" and st.changes is not None
    assert st.changes.modified == ["b.csv"]
    cache.memo_file.write_bytes(b"\x00\x01")
    cache.file.unlink()
    (rec,) = data.add(r, "train")
    assert rec.entry["digest"] == listing_digest(repo / "data/train")


def test_linked_worktree_has_its_own_cache(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    git(repo, "commit", "-qm", "data")
    other = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(other))
    make_data(other)
    write(other / "data/train/a.csv", "changed\n")
    out = json.loads(mlm(other, "data", "status", "--format", "json").stdout)[0]
    assert out["status"] == "modified"
    assert json.loads(mlm(repo, "data", "status", "--format", "json").stdout)[0]["status"] == (
        "clean"
    )


# --- manifests ---------------------------------------------------------------------------------


def test_big_folder_manifest_is_bucketed_and_diffs_by_bucket(repo: Path) -> None:
    folder = repo / "data/images"
    folder.mkdir(parents=True)
    for i in range(manifest.BUCKET_OVER + 200):
        (folder / f"{i:05d}.bin").write_bytes(b"%d" % i)
    r = Repo.open(repo)
    (v1,) = data.add(r, "images", "data/images", cwd=repo)
    (folder / "00042.bin").write_bytes(b"changed")
    (v2,) = data.add(r, "images")
    t1, t2 = manifest._tree(r, v1.entry["manifest"]), manifest._tree(r, v2.entry["manifest"])
    assert t1["files"][0] is True  # a tree of buckets, not one big blob
    b1 = manifest._tree(r, t1["files"][1])
    b2 = manifest._tree(r, t2["files"][1])
    assert len(b1) > 200 and set(b1) == set(b2)
    assert sum(b1[k] != b2[k] for k in b1) == 1  # one bucket rewritten
    changes = manifest.diff(r, v1.entry["manifest"], v2.entry["manifest"])
    assert (changes.modified, changes.added, changes.removed) == (["00042.bin"], [], [])
    assert len(manifest.read(r, v2.entry["manifest"])) == manifest.BUCKET_OVER + 200


def test_manifests_survive_gc(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    git(repo, "reset", "-q")  # the lock is never committed: only the ref keeps the manifest
    git(repo, "gc", "-q", "--prune=now")
    oid = lockfile.load(repo)["train"]["manifest"]
    assert len(manifest.read(Repo.open(repo), oid)) == 3


# --- bad input: one clear error, nothing changed -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "add", "x", "../outside"], "outside the repository"),
        (["data", "add", "x", "/etc"], "outside the repository"),
        (["data", "add", "x", "data/missing"], "does not exist"),
        (["data", "add", "x", "data/link"], "outside the repository"),
        (["data", "add", "x", "data/train"], "symlink to"),
        (["data", "add", "bad.name", "data/train"], "bad dataset name"),
        (["data", "add", "nosuch"], "not declared"),
    ],
)
def test_bad_paths(repo: Path, args: list[str], message: str) -> None:
    make_data(repo)
    if "link" in args[-1]:
        os.symlink("/etc", repo / "data/link")
    elif args[-1] == "data/train":
        os.symlink("/etc/hostname", repo / "data/train/escape")
    before = state(repo)
    proc = mlm(repo, *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("git mlm: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert state(repo) == before


def test_overlapping_datasets(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    before = state(repo)
    proc = mlm(repo, "data", "add", "sub", "data/train/sub", check=False)
    assert proc.returncode == 1 and "overlap" in proc.stderr
    assert state(repo) == before


def test_broken_lock(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    lock = repo / "mlm.lock"
    for broken in (
        lock.read_text().replace("schema = 1", "schema = [1"),
        lock.read_text().replace('digest = "sha256:', 'digest = "md5:'),
        lock.read_text().replace("files = 3", 'files = "three"'),
    ):
        lock.write_text(broken)
        before = state(repo)
        for args in (("data", "status"), ("data", "add", "train"), ("data", "ls")):
            proc = mlm(repo, *args, check=False)
            assert proc.returncode == 1, args
            assert "mlm.lock" in proc.stderr and "git checkout mlm.lock" in proc.stderr
            assert state(repo) == before
    # Recording every dataset rebuilds the lock: the documented fix.
    mlm(repo, "data", "add")
    assert lockfile.load(repo)["train"]["files"] == 3


def test_unreadable_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(repo)
    target = repo / "data/train/a.csv"
    r = Repo.open(repo)
    if os.geteuid() != 0:
        target.chmod(0)
    else:  # root reads anything: make the open fail the way a permission would
        real = os.open

        def deny(path: str, flags: int, *args: int) -> int:
            if str(path).endswith("a.csv"):
                raise PermissionError(13, "Permission denied", path)
            return real(path, flags, *args)

        monkeypatch.setattr(os, "open", deny)
    before = state(repo)
    with pytest.raises(MlmError, match=r"cannot read data/train/a.csv: permission denied"):
        data.add(r, "train", "data/train", cwd=repo)
    assert state(repo) == before


def test_file_changing_while_hashed_is_refused(repo: Path) -> None:
    big = repo / "data/train/big.bin"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(8 << 20))
    stop = threading.Event()

    def writer() -> None:
        with open(big, "ab") as fh:
            while not stop.is_set():
                fh.write(b"x")
                fh.flush()
                time.sleep(0.0005)

    t = threading.Thread(target=writer)
    t.start()
    try:
        before = state(repo)
        with pytest.raises(MlmError, match="changed while it was being hashed"):
            data.add(Repo.open(repo), "train", "data/train", cwd=repo)
        assert state(repo) == before
    finally:
        stop.set()
        t.join()


def test_not_a_regular_file(repo: Path) -> None:
    make_data(repo)
    os.mkfifo(repo / "data/train/pipe")
    proc = mlm(repo, "data", "add", "train", "data/train", check=False)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr


# --- runs record their data --------------------------------------------------------------------


def test_runs_record_datasets_and_filter_and_diff(repo: Path) -> None:
    make_data(repo)
    mlm(repo, "data", "add", "train", "data/train")
    git(repo, "commit", "-qm", "data")
    v1 = lockfile.load(repo)["train"]["digest"]
    mlm(repo, "run", "--name", "a", "--", "true")
    write(repo / "data/train/a.csv", "x,y\n0,0\n")
    mlm(repo, "run", "--name", "b", "--", "true")
    runs = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    by_name = {r["name"]: r for r in runs}
    assert by_name["a"]["datasets.train"] == v1
    v2 = by_name["b"]["datasets.train"]
    assert v2 != v1 and v2.startswith("sha256:")

    picked = json.loads(
        mlm(repo, "runs", "--where", f"datasets.train = '{v1}'", "--format", "json").stdout
    )
    assert [r["name"] for r in picked] == ["a"]
    shown = mlm(repo, "show", by_name["b"]["run_id"]).stdout
    assert 'source = "hashed"' in shown
    assert 'source = "lock"' in mlm(repo, "show", by_name["a"]["run_id"]).stdout

    out = mlm(repo, "diff", by_name["a"]["run_id"], by_name["b"]["run_id"]).stdout
    assert "datasets.train" in out and v1[:19] in out and v2[:19] in out


def test_log_dataset_outside_the_declarations(repo: Path) -> None:
    write(repo / "extra/lookup.csv", "k,v\n")
    script = write(
        repo / "train.py",
        "import gitmlm\n"
        "with gitmlm.start_run(name='x') as run:\n"
        "    run.log_dataset('extra/lookup.csv')\n",
    )
    mlm(repo, "run", "--", "python", str(script))
    (row,) = json.loads(mlm(repo, "runs", "--format", "json").stdout)
    digest = "sha256:" + hashlib.sha256(b"k,v\n").hexdigest()
    assert row["datasets.extra/lookup.csv"] == digest


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from gitmlm.cli import progress

    assert progress.for_stderr(10, 1) is None  # pytest's stderr is not a terminal
    stream = io.StringIO()
    bar = progress.Bar(2_000_000, 2, stream)
    bar.start -= 1.0  # as if hashing had run for a second
    bar(1_000_000, 1)
    assert "hashing 1/2 files, 1.0 MB/2.0 MB (50%" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_several_large_files_hash_in_threads_to_their_sha256(tmp_path: Path) -> None:
    # Over SMALL_JOB in total and more than one file: the threaded path, checked against hashlib.
    sizes = [hashing.SMALL_JOB + 1, 9 << 20, 3 << 20, 10]
    jobs = []
    for i, size in enumerate(sizes):
        data = bytes([i + 1]) * size
        (tmp_path / f"f{i}").write_bytes(data)
        jobs.append((f"f{i}", size))
    seen: list[tuple[int, int]] = []
    out = hashing.hash_files(str(tmp_path), jobs, "sha256", lambda b, n: seen.append((b, n)), 2)
    for i, size in enumerate(sizes):
        want = hashlib.sha256(bytes([i + 1]) * size).hexdigest()
        assert out[f"f{i}"].hex == want and out[f"f{i}"].key[0] == size
    assert sum(b for b, _ in seen) == sum(sizes) and sum(n for _, n in seen) == len(sizes)
