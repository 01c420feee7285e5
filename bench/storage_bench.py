"""Benchmark of the object store (issue 13). Prints each figure beside its reference, measured
in the same run on the same data and servers.

    python bench/storage_bench.py [--files N] [--mb M] [--many K] [--keep] [--no-dvc]

Defaults are the issue's sizes: 10,000 files / 1,000 MB, and 100,000 small files for the
checkout and unchanged-push figures. Smaller sizes run the same steps.

- push and pull of the dataset to a local folder remote and to a loopback S3 server (moto's
  standalone server, as the tests start it), `git mlm data push` and `git mlm data checkout`
  (pull + place, from an empty cache into an empty path) against `dvc push` / `dvc pull`
  (DVC with dvc-s3 from ../shared/peers/install.sh) after `git mlm data add` / `dvc add`
  (both keep the bytes in their cache; untimed). Target: ours >= 2x faster for each.
- checkout of the K-file version from the cache into an empty path (`git mlm data checkout`,
  hard links and copies) against `cp -al` of the same tree. Target: <= 2x `cp -al`.
- push of the unchanged K-file dataset to the folder remote. Target: <= 0.5 s.

Every timed command is a fresh process, as a user runs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import S3_ENV, make_bucket, start_moto

DVC = Path(os.environ.get("PEERS_DIR", "/tmp/gitmlm-peers")) / "dvc" / "bin" / "dvc"
GIT_MLM = [sys.executable, "-m", "gitmlm"]
MB = 1e6


def env(endpoint: str) -> dict[str, str]:
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "GIT_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    return (
        out
        | S3_ENV
        | {
            "AWS_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(ROOT),
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
    )


ENV: dict[str, str] = {}


def run(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return took


def make_tree(top: Path, files: int, total_mb: float) -> None:
    size = max(1, int(total_mb * MB / files))
    block = os.urandom(size + files)
    for i in range(files):
        folder = top / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        # Distinct content per file: a window of the random block, plus the index.
        (folder / f"f{i:06d}.bin").write_bytes(block[i : i + size] + i.to_bytes(4, "big"))


def git_repo(path: Path, data: Path) -> None:
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    shutil.copytree(data, path / "data", copy_function=os.link)
    (path / ".gitignore").write_text("data/\n")


def wipe_cache(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def line(what: str, ours: float, ref: float, ref_name: str, target: str) -> None:
    ratio = ref / ours if ours else float("inf")
    print(f"{what:<44} gitmlm {ours:7.2f} s   {ref_name} {ref:7.2f} s   ({ratio:4.1f}x; {target})")


def bench_transfers(tmp: Path, data: Path, endpoint: str, use_dvc: bool) -> None:
    ours = tmp / "ours"
    git_repo(ours, data)
    run([*GIT_MLM, "data", "add", "train", "data"], ours)
    run(["git", "commit", "-q", "-m", "data"], ours)
    make_bucket(endpoint, "bench-ours")
    run([*GIT_MLM, "storage", "add", "folder", str(tmp / "remote-ours")], ours)
    run([*GIT_MLM, "storage", "add", "s3", "s3://bench-ours/store"], ours)
    cache = ours / ".git" / "mlm" / "objects"

    theirs = tmp / "dvc"
    if use_dvc:
        git_repo(theirs, data)
        run([str(DVC), "init", "-q"], theirs)
        run([str(DVC), "add", "-q", "data"], theirs)
        make_bucket(endpoint, "bench-dvc")
        run([str(DVC), "remote", "add", "folder", str(tmp / "remote-dvc")], theirs)
        run([str(DVC), "remote", "add", "s3", "s3://bench-dvc/store"], theirs)
        run([str(DVC), "remote", "modify", "s3", "endpointurl", endpoint], theirs)

    for remote in ("folder", "s3"):
        push = run([*GIT_MLM, "data", "push", "-r", remote], ours)
        unchanged = run([*GIT_MLM, "data", "push", "-r", remote], ours)
        wipe_cache(cache)
        shutil.rmtree(ours / "data")
        pull = run([*GIT_MLM, "data", "checkout", "train", "-r", remote], ours)
        if use_dvc:
            dpush = run([str(DVC), "push", "-q", "-r", remote], theirs)
            dunchanged = run([str(DVC), "push", "-q", "-r", remote], theirs)
            wipe_cache(theirs / ".dvc" / "cache")
            shutil.rmtree(theirs / "data")
            dpull = run([str(DVC), "pull", "-q", "-r", remote], theirs)
            line(f"push to {remote}", push, dpush, "dvc push", "target >= 2x")
            line(f"push to {remote}, unchanged", unchanged, dunchanged, "dvc push", "")
            line(
                f"pull from {remote} into an empty cache+path",
                pull,
                dpull,
                "dvc pull",
                "target >= 2x",
            )
        else:
            print(f"push to {remote}: {push:.2f} s, unchanged {unchanged:.2f} s, pull {pull:.2f} s")


def bench_many(tmp: Path, files: int) -> None:
    many = tmp / "many-src"
    make_tree(many, files, files * 1000 / MB)  # ~1 kB each
    repo = tmp / "many"
    git_repo(repo, many)
    run([*GIT_MLM, "data", "add", "train", "data"], repo)
    run(["git", "commit", "-q", "-m", "data"], repo)
    run([*GIT_MLM, "storage", "add", "folder", str(tmp / "remote-many"), "-d"], repo)
    run([*GIT_MLM, "data", "push"], repo)
    unchanged = min(run([*GIT_MLM, "data", "push"], repo) for _ in range(3))
    noop = min(run([*GIT_MLM, "--version"], repo) for _ in range(3))
    print(
        f"{'push, unchanged ' + format(files, ',') + ' files':<44} gitmlm {unchanged:7.2f} s"
        f"   (`git mlm --version` {noop:.2f} s; target <= 0.5 s)"
    )
    cp = tmp / "cp-al"
    start = time.perf_counter()
    subprocess.run(["cp", "-al", str(repo / "data"), str(cp)], check=True)
    ref = time.perf_counter() - start
    for how in ("hardlink,copy", "reflink,copy"):
        shutil.rmtree(repo / "data")
        run(["git", "config", "mlm.link", how], repo)
        took = run([*GIT_MLM, "data", "checkout", "train"], repo)
        label = f"checkout {files:,} files ({how.split(',')[0]})"
        print(
            f"{label:<44} gitmlm {took:7.2f} s   cp -al {ref:7.2f} s   "
            f"({took / ref:4.1f}x cp -al; target <= 2x)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=float, default=1000)
    ap.add_argument("--many", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-dvc", action="store_true")
    args = ap.parse_args()
    use_dvc = not args.no_dvc and DVC.exists()
    tmp = Path(tempfile.mkdtemp(prefix="gitmlm-storage-bench-"))
    proc, endpoint = start_moto()
    ENV.update(env(endpoint))
    try:
        print(
            f"dataset: {args.files:,} files, {args.mb:,.0f} MB; many: {args.many:,} files; "
            f"cores: {os.cpu_count()}; S3: moto on {endpoint}"
        )
        data = tmp / "src"
        make_tree(data, args.files, args.mb)
        bench_transfers(tmp, data, endpoint, use_dvc)
        if args.many:
            bench_many(tmp, args.many)
    finally:
        proc.terminate()
        if args.keep:
            print(f"kept {tmp}")
        else:
            wipe_cache(tmp)


if __name__ == "__main__":
    main()
