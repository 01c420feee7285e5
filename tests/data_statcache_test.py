"""The stat cache's memos, the fast path of `data status`, and hashing in forked processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitmlm.core.git import Repo
from gitmlm.data import forking, hashing, lstats, statcache
from gitmlm.data.spec import Spec
from gitmlm.errors import MlmError
from gitmlm.storage import settings
from tests.helpers import mlm


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settled(repo: Path, files: dict[str, str], spec: str = "data/train") -> None:
    """Files written a tick before they are recorded, so no entry is racy and the memo is
    written at once."""
    for rel, text in files.items():
        write(repo / rel, text)
    time.sleep(0.05)
    mlm(repo, "data", "add", "train", spec)


DATA = {
    "data/train/a.csv": "x,y\n1,2\n",
    "data/train/b.csv": "x,y\n3,4\n",
    "data/train/sub/c.csv": "x,y\n5,6\n",
}


def status(repo: Path, *args: str) -> list[dict[str, object]]:
    """Through `git mlm`, so the fast path answers when it can."""
    out = mlm(repo, "data", "status", "--format", "json", *args, check=False)
    return list(json.loads(out.stdout))


def full_status(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The full path (click and pygit2), never the fast one."""
    code = "import sys; from gitmlm.cli import root; sys.exit(root.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "data", "status", *args],
        cwd=repo,
        capture_output=True,
        text=True,
    )


def memo_of(repo: Path, spec: Spec) -> statcache.Memo | None:
    r = Repo.open(repo)
    return statcache.StatCache.load(r.mlm_dir, repo).memos.get(spec.memo_key)


def test_fast_path_prints_what_the_full_path_prints(repo: Path) -> None:
    settled(repo, DATA)
    write(repo / "data/other/z.bin", "z")
    time.sleep(0.05)
    mlm(repo, "data", "add", "other", "data/other")
    assert memo_of(repo, Spec("train", "data/train")) is not None
    for args in ([], ["--format", "json"], ["--format=csv"], ["train"], ["--exit-code", "train"]):
        fast = mlm(repo, "data", "status", *args)
        full = full_status(repo, *args)
        assert (fast.stdout, fast.stderr, fast.returncode) == (full.stdout, full.stderr, 0)
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitmlm", "data", "status"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stderr
    assert "pygit2" not in imported and "click" not in imported  # the fast path answered


def test_file_rewritten_with_same_size_within_the_same_second_is_modified(repo: Path) -> None:
    settled(repo, DATA)
    assert status(repo)[0]["status"] == "clean"
    f = repo / "data/train/a.csv"
    before = f.stat()
    f.write_text("x,y\n1,3\n")  # same size, at once
    # ...and the very same mtime, as a rewrite within one timestamp tick leaves it
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    got = status(repo)[0]
    assert (got["status"], got["modified"]) == ("modified", 1)


def test_racy_files_get_no_memo_until_they_settle(repo: Path) -> None:
    """A file whose mtime is not older than the hashing's start may be rewritten within the same
    tick without its stat showing it: the dataset gets no memo, so it is hashed again."""
    future = time.time_ns() + 60_000_000_000
    for rel, text in DATA.items():
        write(repo / rel, text)
    os.utime(repo / "data/train/a.csv", ns=(future, future))
    mlm(repo, "data", "add", "train", "data/train")
    spec = Spec("train", "data/train")
    assert memo_of(repo, spec) is None
    f = repo / "data/train/a.csv"
    f.write_text("x,y\n9,9\n")  # same size, same (future) mtime
    os.utime(f, ns=(future, future))
    got = status(repo)[0]
    assert (got["status"], got["modified"]) == ("modified", 1)


@pytest.mark.parametrize(
    "change",
    ["add_file", "add_folder", "remove_file", "replace_with_link", "folder_to_link", "grow"],
)
def test_every_kind_of_change_gets_past_the_memo(repo: Path, change: str) -> None:
    settled(repo, DATA)
    top = repo / "data/train"
    if change == "add_file":
        write(top / "sub/new.csv", "n")
    elif change == "add_folder":
        write(top / "deeper/new/d.csv", "d")
    elif change == "remove_file":
        (top / "sub/c.csv").unlink()
    elif change == "replace_with_link":
        (top / "b.csv").unlink()
        (top / "b.csv").symlink_to(repo / "train.py")
    elif change == "folder_to_link":
        (top / "sub").rename(repo / "elsewhere")
        (top / "sub").symlink_to(repo / "elsewhere")
    else:
        with open(top / "a.csv", "a") as fh:
            fh.write("7,8\n")
    fast = status(repo)
    full = json.loads(full_status(repo, "--format", "json").stdout)
    assert fast == full
    assert fast[0]["status"] == ("clean" if change == "folder_to_link" else "modified")


def test_a_glob_sees_a_name_that_becomes_a_folder(repo: Path) -> None:
    """A glob's walk passes over names it does not select; one that turns into a folder may
    bring matching files, so its kind is part of what the memo compares."""
    write(repo / "data/x.csv", "1")
    write(repo / "data/notes", "not a csv")
    write(repo / "mlm.toml", 'schema = 1\n[datasets.csvs]\npath = "data/**/*.csv"\n')
    time.sleep(0.05)
    mlm(repo, "data", "add")
    assert memo_of(repo, Spec("csvs", "data/**/*.csv")) is not None
    assert status(repo)[0]["status"] == "clean"
    (repo / "data/notes").unlink()
    write(repo / "data/notes/y.csv", "2")
    got = status(repo)[0]
    assert (got["status"], got["added"]) == ("modified", 1)


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign"])
def test_a_damaged_cache_is_ignored_and_rebuilt(repo: Path, damage: str) -> None:
    settled(repo, DATA)
    r = Repo.open(repo)
    cache = statcache.StatCache.load(r.mlm_dir, repo)
    for file in (cache.memo_file, cache.file):
        raw = file.read_bytes()
        if damage == "truncate":
            file.write_bytes(raw[: len(raw) // 2])
        elif damage == "flip":  # a byte of the payload: a digest, a path, a stat value
            i = len(raw) - 40
            file.write_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :])
        else:
            file.write_bytes(raw.replace(statcache.MAGIC[:13], b"gitmlm-stat-9", 1))
        assert statcache._load(file) is None
    write(repo / "data/train/b.csv", "x,y\n3,5\n")  # a real change under the damaged cache
    got = status(repo)[0]
    assert (got["status"], got["modified"]) == ("modified", 1)
    rebuilt = statcache.StatCache.load(r.mlm_dir, repo)
    assert rebuilt.memos  # written again, readable
    assert statcache._load(rebuilt.file) is not None


def test_pack_folds_inodes_above_the_signed_range() -> None:
    fields = (0o100644, 2**64 - 5, 0, 1, 0, 0, 3, 0, 1, 1)
    st = os.stat_result(fields, {"st_mtime_ns": 7, "st_ctime_ns": 9})
    packed = lstats.pack([st])
    (back,) = lstats.unpack(packed)
    assert (back.st_ino, back.st_size, back.st_mtime_ns) == (2**64 - 5, 3, 7)


def test_lstat_pass_split_across_processes(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"data/train/d{i % 3}/f{i:03d}.csv": str(i) for i in range(60)}
    files.update({f"data/train/f{i:03d}.csv": str(i) for i in range(60, 90)})
    settled(repo, files)
    spec = Spec("train", "data/train")
    memo = memo_of(repo, spec)
    assert memo is not None
    monkeypatch.setattr(forking, "workers", lambda: 3)
    monkeypatch.setattr(statcache, "PARALLEL_OVER", 10)
    monkeypatch.setattr(lstats, "STATX_OVER", 10)  # statx where there is one, as on 100k files
    monkeypatch.setattr(lstats, "_tried", False)
    monkeypatch.setattr(lstats, "_chosen", lstats._by_os)
    root = os.path.realpath(repo)
    assert statcache.quick(root, spec, memo) is not None
    assert lstats._tried  # chosen in this process, before the fork
    last = memo.paths()[-1]  # in the last part: a child's
    write(repo / last, "changed")
    assert statcache.quick(root, spec, memo) is None
    (repo / last).unlink()  # a child's lstat fails: a miss, not an error
    assert statcache.quick(root, spec, memo) is None


def test_forked_hashing_matches_and_stores_what_it_read(repo: Path) -> None:
    """Enough files for `data add` to hash in forked processes; the digests are sha256sum's
    and every small file is in the object store with exactly its bytes."""
    n = hashing.PROCESSES_OVER + 10
    top = repo / "data/many"
    top.mkdir(parents=True)
    for i in range(n):
        (top / f"{i:05d}.bin").write_bytes(b"%d" % (i * 7919))
    mlm(repo, "data", "add", "many", "data/many")
    r = Repo.open(repo)
    cache = statcache.StatCache.load(r.mlm_dir, repo)
    table = cache.table("sha256")
    store = settings.cache(r)
    for i in (0, 1, n // 2, n - 1):
        body = b"%d" % (i * 7919)
        hex_ = hashlib.sha256(body).hexdigest()
        assert table[f"data/many/{i:05d}.bin"][1] == hex_
        assert store.path(f"sha256:{hex_}").read_bytes() == body
    assert not any((store.root / "tmp").iterdir())


def test_stream_hands_frames_in_order_per_child_and_reports_a_dead_child() -> None:
    got: list[bytes] = []

    def work(part: list[int]) -> list[bytes]:
        return [b"%d" % v for v in part]

    forking.stream(work, [[1, 2, 3], [4, 5]], got.append)
    assert sorted(got) == [b"1", b"2", b"3", b"4", b"5"]
    assert got.index(b"1") < got.index(b"2") < got.index(b"3")

    def dies(part: list[int]) -> list[bytes]:
        raise RuntimeError("boom")

    with pytest.raises(forking.ChildFailed):
        forking.stream(dies, [[1]], got.append)


def test_an_error_in_a_hashing_process_is_the_files_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forking, "workers", lambda: 2)
    monkeypatch.setattr(hashing, "PROCESSES_OVER", 4)
    for i in range(8):
        (tmp_path / f"{i}.bin").write_bytes(b"%d" % i)
    jobs = [(f"{i}.bin", 1) for i in range(8)] + [("gone.bin", 1)]
    with pytest.raises(MlmError, match=r"gone\.bin disappeared while being hashed"):
        hashing.hash_files(str(tmp_path), jobs, "sha256")
    got = hashing.hash_files(str(tmp_path), jobs[:8], "sha256")
    assert got["3.bin"].hex == hashlib.sha256(b"3").hexdigest()


def test_the_object_store_refuses_nothing_it_was_given(repo: Path) -> None:
    """put_hashed trusts its caller's digest; hash_file gives it only the bytes it hashed."""
    f = write(repo / "data/one.bin", "payload")
    store = settings.cache(Repo.open(repo))
    h = hashing.hash_file(str(f), "data/one.bin", "sha256", store=store)
    assert h.stored and h.hex == hashlib.sha256(b"payload").hexdigest()
    assert store.path(f"sha256:{h.hex}").read_bytes() == b"payload"
    with pytest.raises(MlmError, match="disappeared"):
        hashing.hash_file(str(repo / "data/gone.bin"), "data/gone.bin", "sha256", store=store)


def test_statx_and_os_lstat_give_the_same_keys(repo: Path) -> None:
    """On Linux the memo check lstats through statx(2); its bytes must be os.lstat's."""
    write(repo / "data/a.csv", "1")
    (repo / "data/sub").mkdir()
    (repo / "data/link").symlink_to("a.csv")
    fast = lstats._statx()
    if fast is None:
        pytest.skip("no statx here: os.lstat is the only way")
    fd = os.open(repo / "data", os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = [b"a.csv", b"sub", b"link", b"."]
        assert fast(fd, names) == lstats._by_os(fd, names)
        assert fast(fd, [b"a.csv", b"gone"]) is None
    finally:
        os.close(fd)
    st = os.lstat(repo / "data/a.csv")
    (back,) = lstats.unpack(lstats.pack([st]))
    assert (back.st_mode, back.st_ino, back.st_size) == (st.st_mode, st.st_ino, st.st_size)
    assert (back.st_mtime_ns, back.st_ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)


def test_a_folder_not_older_than_the_walk_proves_nothing(repo: Path) -> None:
    """A folder's stat proves its names only when its mtime and ctime are older than the stamp
    taken before the walk: a name added within the same tick as the walk listed the folder
    leaves both times as they were (ctime cannot be forged here, so the stamp is moved)."""
    settled(repo, DATA)
    spec = Spec("train", "data/train")
    root = os.path.realpath(repo)
    memo = memo_of(repo, spec)
    assert memo is not None and statcache.quick(root, spec, memo) is not None
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in lstats.unpack(memo.dir_keys))
    assert statcache.quick(root, spec, memo._replace(stamp=newest)) is None
    assert statcache.quick(root, spec, memo._replace(stamp=newest + 1)) is not None
    assert statcache.quick(root, spec, memo._replace(stamp=0)) is None


def test_a_touched_folder_settles_after_one_walk(repo: Path) -> None:
    settled(repo, DATA)
    spec = Spec("train", "data/train")
    root = os.path.realpath(repo)
    assert statcache.quick(root, spec, memo_of(repo, spec)) is not None
    write(repo / "data/train/tmp.txt", "t")
    (repo / "data/train/tmp.txt").unlink()  # the names are as they were; the mtime is not
    assert statcache.quick(root, spec, memo_of(repo, spec)) is None
    time.sleep(0.05)
    assert status(repo)[0]["status"] == "clean"  # walked: the memo takes the folder's stat
    assert statcache.quick(root, spec, memo_of(repo, spec)) is not None
