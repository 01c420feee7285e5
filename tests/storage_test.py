"""The object store: the cache, folder and S3 remotes, integrity, models from git and Git LFS,
and what bad input gets (one clear line, nothing changed)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gitmlm
from gitmlm.core.git import Repo
from gitmlm.data import restore
from gitmlm.errors import MlmError
from gitmlm.storage import objects, settings, transfer
from tests.helpers import free_port, git, mlm

TOML = 'schema = 1\n\n[models.churn]\npath = "models/churn.pkl"\n'


def _dataset(repo: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (repo / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "data" / name).write_bytes(data)
    mlm(repo, "data", "add", "train", "data")
    git(repo, "commit", "-q", "-m", "data")


def _fail(repo: Path, *args: str) -> str:
    proc = mlm(repo, *args, check=False)
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("git mlm: "), proc.stderr
    return lines[0]


def _remote(repo: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "objects-remote"
    mlm(repo, "storage", "add", "shared", str(folder), "-d")
    return folder


def test_log_artifact_keeps_the_bytes_of_files_and_folders(repo: Path, tmp_path: Path) -> None:
    (repo / "out" / "sub").mkdir(parents=True)
    (repo / "out" / "a.txt").write_text("A1")
    (repo / "out" / "sub" / "b.txt").write_text("B1")
    (repo / "model.bin").write_bytes(b"v1")
    with gitmlm.start_run() as run:
        file_info = run.log_artifact("model.bin")
        folder_info = run.log_artifact("out/")
    assert folder_info["kind"] == "dir" and folder_info["files"] == 2
    # The folder digest is the sha256 of its sha256sum-style listing (docs/storage.md).
    listing = subprocess.run(
        "sha256sum a.txt sub/b.txt", shell=True, cwd=repo / "out", capture_output=True
    ).stdout
    assert folder_info["digest"] == "sha256:" + objects.hashlib.sha256(listing).hexdigest()
    (repo / "model.bin").write_bytes(b"v2")
    (repo / "out" / "a.txt").write_text("A2")
    mlm(repo, "artifacts", "get", run.id, "model.bin", "-o", str(tmp_path / "m"))
    assert (tmp_path / "m").read_bytes() == b"v1"
    mlm(repo, "artifacts", "get", run.id, "out", "-o", str(tmp_path / "o"))
    assert (tmp_path / "o" / "a.txt").read_text() == "A1"
    assert (tmp_path / "o" / "sub" / "b.txt").read_text() == "B1"
    assert file_info["digest"] == "sha256:" + objects.hashlib.sha256(b"v1").hexdigest()
    line = _fail(repo, "artifacts", "get", run.id, "modle.bin")
    assert "did you mean model.bin" in line


def test_folder_remote_push_is_idempotent_and_pull_checks_every_object(
    repo: Path, tmp_path: Path
) -> None:
    _dataset(repo, {"a.csv": b"a" * 10, "b.csv": b"b" * 20, "c/d.csv": b"d"})
    folder = _remote(repo, tmp_path)
    # An interrupted push left a temporary file: it is not an object, and the next push completes.
    (folder / "sha256" / "00").mkdir(parents=True)
    (folder / "sha256" / "00" / ".x.1234.mlm-tmp").write_bytes(b"half")
    assert "pushed 3 object(s)" in mlm(repo, "data", "push").stdout
    assert "pushed 0 object(s), 0 B; 3 already there" in mlm(repo, "data", "push").stdout

    # Corrupt one remote object; a clone without the cache must refuse it and change nothing.
    r = Repo.open(repo)
    digest = f"sha256:{objects.hashlib.sha256(b'b' * 20).hexdigest()}"
    bad = folder / objects.key(digest)
    os.chmod(bad, 0o644)
    bad.write_bytes(b"x" * 20)
    store = settings.cache(r)
    store.delete({digest})
    (repo / "data" / "b.csv").unlink()
    line = _fail(repo, "data", "checkout", "train")
    assert "do not match their digest" in line
    assert not store.has(digest) and not (repo / "data" / "b.csv").exists()
    assert not any((store.root / "tmp").iterdir())
    verify = mlm(repo, "data", "verify", "--remote", check=False)
    assert verify.returncode == 1 and f"corrupt: {digest}" in verify.stderr


def test_checkout_refuses_unstored_changes_and_force_says_what_it_replaced(
    repo: Path, tmp_path: Path
) -> None:
    _dataset(repo, {"a.csv": b"one"})
    v1 = git(repo, "rev-parse", "HEAD").strip()
    _dataset(repo, {"a.csv": b"two", "new.csv": b"n"})
    (repo / "data" / "a.csv").write_bytes(b"edited, never recorded")
    line = _fail(repo, "data", "checkout", "train", v1)
    assert "stored nowhere (data/a.csv)" in line
    assert (repo / "data" / "a.csv").read_bytes() == b"edited, never recorded"
    proc = mlm(repo, "data", "checkout", "train", v1, "--force")
    assert "replaced local change: data/a.csv" in proc.stderr
    assert (repo / "data" / "a.csv").read_bytes() == b"one"
    assert not (repo / "data" / "new.csv").exists()  # not in v1: removed (it is stored)


def test_dataset_path_now_a_file_where_the_folder_was(repo: Path) -> None:
    _dataset(repo, {"a.csv": b"one"})
    import shutil

    shutil.rmtree(repo / "data")
    (repo / "data").write_text("not a folder")
    line = _fail(repo, "data", "checkout", "train")
    assert "is now a file where the dataset's folder was" in line
    assert (repo / "data").read_text() == "not a folder"


def test_cache_on_another_filesystem_falls_back_from_hardlinks_to_copies(
    repo: Path, tmp_path: Path
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(repo).st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    cache = shm / f"gitmlm-cache-{os.getpid()}-{free_port()}"
    try:
        git(repo, "config", "mlm.cache", str(cache))
        git(repo, "config", "mlm.link", "hardlink,copy")
        _dataset(repo, {"a.csv": b"one"})
        (repo / "data" / "a.csv").unlink()
        done = restore.checkout(Repo.open(repo), "train")
        assert done.how == {"copy": 1}
        assert (repo / "data" / "a.csv").read_bytes() == b"one"
    finally:
        import shutil

        with contextlib.suppress(OSError):
            for p in cache.rglob("*"):
                os.chmod(p, 0o755)
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_while_pulling_is_one_line_and_leaves_nothing(
    repo: Path, tmp_path: Path, tiny_disk: Path
) -> None:
    _dataset(repo, {"big.bin": os.urandom(200_000)})
    _remote(repo, tmp_path)
    mlm(repo, "data", "push")
    git(repo, "config", "mlm.cache", str(tiny_disk))
    line = _fail(repo, "data", "pull")
    assert "disk is full" in line
    left = [p for p in tiny_disk.rglob("*") if p.is_file()]
    assert left == []  # no object, no temporary file


def test_remote_settings_refuse_credentials_and_unknown_names(repo: Path) -> None:
    line = _fail(repo, "storage", "add", "s3", "s3://AKIA:secret@bucket/x")
    assert "credentials belong in the environment" in line
    assert not (repo / "mlm.toml").exists() or "AKIA" not in (repo / "mlm.toml").read_text()
    mlm(repo, "storage", "add", "team", "s3://bucket/x", "-d")
    assert "did you mean 'team'" in _fail(repo, "data", "push", "-r", "taem")
    assert "did you mean 'team'" in _fail(repo, "storage", "rm", "tema")
    with (repo / "mlm.toml").open("a") as fh:
        fh.write('\n[storage.remotes.bad]\nurl = "s3://b"\naws_secret_access_key = "x"\n')
    assert "is a credential" in _fail(repo, "storage", "list")
    mlm(repo, "storage", "rm", "bad")
    mlm(repo, "storage", "rm", "team")
    assert "team" not in (repo / "mlm.toml").read_text()  # its table and the default


def test_s3_bucket_missing_and_endpoint_unreachable_are_one_line(repo: Path, s3: str) -> None:
    _dataset(repo, {"a.csv": b"one"})
    mlm(repo, "storage", "add", "gone", "s3://no-such-bucket/x", "-d")
    assert "the bucket 'no-such-bucket' does not exist" in _fail(repo, "data", "push")
    port = free_port()
    mlm(
        repo, "storage", "add", "down", f"s3://{s3}/x", "--endpoint-url", f"http://127.0.0.1:{port}"
    )
    line = _fail(repo, "data", "push", "-r", "down")
    assert "cannot reach storage remote down" in line
    mlm(repo, "storage", "add", "ok", f"s3://{s3}/x")
    assert "pushed 1 object(s)" in mlm(repo, "data", "push", "-r", "ok").stdout
    conn = transfer.connect(Repo.open(repo), settings.pick(Repo.open(repo), "ok"))
    assert len(transfer.present(conn)) == 1


def test_model_committed_to_git_and_as_git_lfs_pointer(repo: Path, tmp_path: Path) -> None:
    (repo / "mlm.toml").write_text(TOML)
    git(repo, "lfs", "install", "--local")
    git(repo, "lfs", "track", "*.pkl")
    (repo / "models").mkdir()
    weights = os.urandom(5000)
    (repo / "models" / "churn.pkl").write_bytes(weights)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model via LFS")
    assert git(repo, "cat-file", "-p", "HEAD:models/churn.pkl").startswith("version https://git")
    mlm(repo, "register", "churn")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))  # LFS pushes to a named remote
    git(repo, "push", "-q", "origin", "main", "--tags")
    clone = tmp_path / "clone"
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, env=env)
    assert not (clone / ".git" / "lfs" / "objects").exists()
    code = "import gitmlm; print(gitmlm.artifact_path('churn'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).read_bytes() == weights
    out = mlm(clone, "model", "get", "churn", "-o", "w.pkl").stdout
    assert "from cache" in out and (clone / "w.pkl").read_bytes() == weights

    # A plain git blob (no LFS) in another model version: its bytes come from git.
    git(repo, "lfs", "untrack", "*.pkl")
    (repo / "models" / "churn.pkl").write_bytes(b"plain weights")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "plain model")
    mlm(repo, "register", "churn")
    out = mlm(repo, "model", "get", "churn@v0.0.2", "-o", str(tmp_path / "p.pkl")).stdout
    assert "from git" in out and (tmp_path / "p.pkl").read_bytes() == b"plain weights"


def test_store_rejects_what_does_not_match_its_name(tmp_path: Path) -> None:
    store = objects.Store(tmp_path / "cache")
    tmp = store.tmp()
    tmp.write_bytes(b"not what it claims")
    with pytest.raises(MlmError, match="arrived with different content"):
        store.adopt(tmp, "sha256:" + "0" * 64)
    assert not tmp.exists() and not store.has("sha256:" + "0" * 64)
    with pytest.raises(MlmError, match="is not a digest"):
        objects.key("md5:abc")


def test_wrong_credentials_are_one_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import S3_ENV, start_moto

    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # this one checks keys
    try:
        for var, value in S3_ENV.items():
            monkeypatch.setenv(var, value)
        _dataset(repo, {"a.csv": b"one"})
        mlm(repo, "storage", "add", "s3", "s3://bucket/x", "--endpoint-url", url, "-d")
        line = _fail(repo, "data", "push")
        assert "refused access" in line and "check the credentials" in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gc_drops_only_what_nothing_names(repo: Path) -> None:
    _dataset(repo, {"a.csv": b"data v1"})
    (repo / "m.bin").write_bytes(b"model")
    with gitmlm.start_run() as run:
        run.log_artifact("m.bin")
    r = Repo.open(repo)
    store = settings.cache(r)
    orphan = store.add_bytes(b"nobody names me")
    young = store.add_bytes(b"just stored, record not written yet")
    for digest in (orphan, *store.digests() - {young}):
        os.utime(store.path(digest), (1, 1))
    dry = mlm(repo, "gc", "--dry-run").stdout
    assert "would delete 1 object(s)" in dry and store.has(orphan)
    mlm(repo, "gc")
    assert not store.has(orphan) and store.has(young)
    assert store.has(f"sha256:{objects.hashlib.sha256(b'model').hexdigest()}")
    assert store.has(f"sha256:{objects.hashlib.sha256(b'data v1').hexdigest()}")
    assert run.record.artifacts["m.bin"]["size"] == 5


def test_two_pushes_of_the_same_objects_at_once_are_safe(repo: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _dataset(repo, {f"f{i}.csv": bytes([i]) * 100 for i in range(40)})
    _remote(repo, tmp_path)
    r = Repo.open(repo)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: restore.push(r), range(2)))
    assert all(not d.unavailable for d in done)
    conn = transfer.connect(r, settings.pick(r, None))
    assert len(transfer.present(conn)) == 40
    assert all(f.ok == 40 and not f.bad for f in restore.verify(r, on_remote=True))
