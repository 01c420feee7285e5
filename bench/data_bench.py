"""Benchmark of data version management (issue: data). Prints each figure beside its reference.

    python bench/data_bench.py [--small] [--keep] [--no-dvc]

Builds, in a temporary folder (removed at the end unless --keep):
- a repository with many files: 20,000 small files (1-8 kB, 100 folders) and 500 files of
  1-3 MiB (--small: 2,000 and 50), and times:
  * cold hashing (empty stat cache): `hashing.hash_files` in-process (forked processes
    allowed, as in the command line), and `git mlm data add --no-store` end to end, in MB/s
    against the single-core `hashlib.sha256` rate measured in this run (target >= 0.8 x cores
    x that rate), and against the same hashing on one thread;
  * the machine's ceiling for that hashing: bench/hash_ceiling.c, a C program with OpenSSL's
    SHA-256, compiled here at run time (`cc -O2 ... -lcrypto`: needs a C compiler and OpenSSL's
    headers, Debian's `libssl-dev`; without them the line says so and is skipped). It hashes
    the same file list in as many forked processes as cores, taking files from a shared
    counter, each read through a 256 KiB buffer, and its digests must equal ours. Ours and it
    take turns, three times each (medians): the page-cache copies and per-file system calls
    bound both, so "ours / ceiling" is what is left to win in gitmlm;
  * one 1 GiB file (--small: 64 MiB) alone: one file is hashed by one core, so its reference
    is one core's rate;
  * `git mlm data status` with nothing changed (target <= 0.3 s), beside `find` printing every
    file's size, mtime, ctime and inode (the cost of stat-ing the tree at all);
  * the `mlm-data` hook (a fresh Python process, as git or pre-commit starts it) and
    `git mlm hook pre-commit` (what the installed shim runs) on the unchanged repository
    (target <= 0.3 s), beside `git status` and a bare `python -c pass`;
  * with DVC (installed by ../shared/peers/install.sh into /tmp/gitmlm-peers/dvc), `dvc add`
    and a warm `dvc status` of the same tree (target: ours >= 10x faster on status).
- a repository with 100,000 files (--small: 10,000) and times `git mlm data add` cold, with
  `--no-store` and with the default (the bytes also go into the object cache, small ones
  packed: docs/storage.md), target <= 3 s, beside creating one file per object in one process
  (what the cache cost before packs);
  and `git mlm data status` unchanged against `git status` on the same files tracked by git in
  a repository of their own (target <= 2x).

The page cache is warm (the files were just written): "cold" means no stat cache, so every
file is read and hashed, not that the disk is read.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitmlm.data import hashing

try:
    from gitmlm.data import forking
except ImportError:  # an older gitmlm, measured for comparison: it never forks
    forking = None  # type: ignore[assignment]

DVC = Path(os.environ.get("PEERS_DIR", "/tmp/gitmlm-peers")) / "dvc" / "bin" / "dvc"
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": str(ROOT),
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
GIT_MLM = [sys.executable, "-m", "gitmlm"]
FIND = ["find", "data", "-type", "f", "-printf", "%s %T@ %C@ %i\\n"]
"""Stat every file and print what a stat cache compares: the floor for any tool that has no
file-system monitor, whatever its language."""
MB = 1e6


def run(cmd: list[str], cwd: Path, check: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return took


def median(cmd: list[str], cwd: Path, repeat: int = 7) -> float:
    return statistics.median(run(cmd, cwd) for _ in range(repeat))


def sha256_rate() -> float:
    """Single-core hashlib.sha256 over an in-memory buffer, bytes per CPU second (best of 3):
    what one core gives when it is ours, so the figure does not drop with the machine's load."""
    buf = os.urandom(256 << 20)
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        hashlib.sha256(buf).digest()
        best = max(best, len(buf) / (time.process_time() - start))
    return best


def hash_tree(root: Path, files: list[tuple[str, int]], **kw: object) -> dict[str, str]:
    """`hashing.hash_files` as `data add` calls it: with the file-system time taken just before
    (the stat cache's stamp), which lets files last written before it be read with one fstat.
    An older gitmlm without `stamp` is called without it."""
    if "stamp" in inspect.signature(hashing.hash_files).parameters:
        marker = root.parent / "stamp"
        marker.touch()
        os.utime(marker)
        kw["stamp"] = marker.stat().st_mtime_ns
    out = hashing.hash_files(str(root), files, "sha256", **kw)  # type: ignore[arg-type]
    return {rel: h.hex for rel, h in out.items()}


CEILING_SOURCE = ROOT / "bench" / "hash_ceiling.c"
CEILING_BUFFER_KIB = 256
ROUNDS = 3
"""Ours and the C ceiling take turns this many times; each figure is the median."""


def build_ceiling(tmp: Path) -> Path | str:
    """bench/hash_ceiling.c compiled into `tmp`, or why it cannot be."""
    name = os.environ.get("CC", "cc")
    cc = shutil.which(name)
    if cc is None:
        return f"no C compiler ({name} not found)"
    exe = tmp / "hash_ceiling"
    proc = subprocess.run(
        [cc, "-O2", "-o", str(exe), str(CEILING_SOURCE), "-lcrypto"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["?"])[0]
        if "openssl/" in proc.stderr:
            return f"no OpenSSL headers (Debian: apt-get install libssl-dev): {first}"
        return f"cc failed: {first}"
    return exe


def hash_ceiling(
    exe: Path, root: Path, files: list[tuple[str, int]], procs: int
) -> tuple[float, int, dict[str, str]]:
    """(seconds, bytes, digest per path) of the C program over `files`, largest first as
    `hash_files` orders them; its own clock, from its first fork to its last child reaped."""
    ordered = sorted(files, key=lambda j: j[1], reverse=True)
    proc = subprocess.run(
        [str(exe), str(root), str(procs), str(CEILING_BUFFER_KIB)],
        input="".join(f"{rel}\n" for rel, _ in ordered),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"hash_ceiling failed ({proc.returncode}): {proc.stderr.strip()}")
    head, *rows = proc.stdout.splitlines()
    seconds, nbytes = head.split()
    digests = dict(reversed(row.split("  ", 1)) for row in rows)
    return float(seconds), int(nbytes), digests


def make_repo(path: Path) -> None:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True, env=ENV)
    (path / ".gitignore").write_text("/data/\n")
    (path / "train.py").write_text("print('train')\n")
    subprocess.run(["git", "add", "."], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True, env=ENV)


def small_files(folder: Path, count: int, folders: int, sizes: tuple[int, int]) -> int:
    seed = os.urandom(sizes[1])
    total = 0
    lo, hi = sizes
    for i in range(count):
        sub = folder / f"part-{i % folders:03d}"
        if i < folders:
            sub.mkdir(parents=True)
        n = lo + (i * 7919) % (hi - lo + 1)
        # Distinct content per file: the counter in front of a shared random block.
        (sub / f"f{i:06d}.bin").write_bytes(i.to_bytes(8, "little") + seed[: n - 8])
        total += n
    return total


def big_file(path: Path, size: int) -> None:
    block = os.urandom(16 << 20)
    with open(path, "wb") as fh:
        for i in range(size // len(block)):
            fh.write(i.to_bytes(8, "little") + block[8:])


def medium_files(folder: Path, count: int, sizes: tuple[int, int]) -> int:
    block = os.urandom(sizes[1])
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        n = sizes[0] + (i * 7919 * 4099) % (sizes[1] - sizes[0] + 1)
        (folder / f"m{i:05d}.bin").write_bytes(i.to_bytes(8, "little") + block[: n - 8])
        total += n
    return total


def create_files(folder: Path, count: int) -> float:
    """Seconds to create `count` small files the way the object cache stores a loose object (a
    temporary file, then a rename into one of 256 folders), in one process: the file system's
    own cost of one object per file, which packs avoid."""
    for i in range(256):
        (folder / f"{i:02x}").mkdir(parents=True)
    (folder / "tmp").mkdir()
    body = b"x" * 288
    start = time.perf_counter()
    for i in range(count):
        tmp = f"{folder}/tmp/{i}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.write(fd, body)
        os.close(fd)
        os.replace(tmp, f"{folder}/{i % 256:02x}/{i:08d}")
    took = time.perf_counter() - start
    shutil.rmtree(folder)
    return took


def fresh_git(path: Path) -> None:
    """Forget every record of the repository (its .git), keeping the files: a cold start."""
    shutil.rmtree(path / ".git")
    for name in ("mlm.lock", "mlm.toml"):
        (path / name).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "add", "."], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True, env=ENV)


def line(what: str, ours: str, ref: str, ratio: str, target: str) -> None:
    print(f"{what:<46} {ours:>12}  {ref:>22}  {ratio:>9}  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick run on a smaller tree")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-dvc", action="store_true", help="skip DVC even if installed")
    args = parser.parse_args()
    n_small, n_medium, n_many, big = (
        (2_000, 50, 10_000, 64 << 20) if args.small else (20_000, 500, 100_000, 1 << 30)
    )
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="gitmlm-data-bench-"))
    # Timed processes start as after `pip install` (bytecode compiled), whatever this shell's
    # PYTHONDONTWRITEBYTECODE says; the bytecode goes to the temporary folder.
    ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    try:
        rate = sha256_rate()
        load = os.getloadavg()[0]
        print(
            f"machine: {cores} cores, load average {load:.1f} (other work shares the cores); "
            f"single-core hashlib.sha256: {rate / MB:,.0f} MB/s"
        )
        print(f"{'figure':<46} {'ours':>12}  {'reference':>22}  {'ratio':>9}  target")

        # --- tree 1: many files ------------------------------------------------------------------
        if forking is not None:
            forking.allow()  # as the command line does: this process runs nothing else
        repo = tmp / "repo"
        make_repo(repo)
        data = repo / "data"
        total = small_files(data, n_small, 100, (1_000, 8_000))
        total += medium_files(data / "medium", n_medium, (1 << 20, 3 << 20))
        files = [
            (p.relative_to(repo).as_posix(), p.stat().st_size)
            for p in data.rglob("*")
            if p.is_file()
        ]
        print(f"tree: {len(files):,} files, {total / MB:,.0f} MB")

        start = time.perf_counter()
        hash_tree(repo, files, workers=1)
        one_thread = time.perf_counter() - start
        exe = build_ceiling(tmp)
        rounds, c_rounds = [], []
        for _ in range(ROUNDS):  # taking turns: both see the same load
            start, before = time.perf_counter(), os.times()
            ours = hash_tree(repo, files)
            took, after = time.perf_counter() - start, os.times()
            rounds.append((took, sum(after[:4]) - sum(before[:4])))  # with the children's CPU
            if isinstance(exe, Path):
                c_took, c_bytes, c_digests = hash_ceiling(exe, repo, files, cores)
                if c_bytes != total or c_digests != ours:
                    wrong = sorted(r for r in ours if c_digests.get(r) != ours[r])[:5]
                    raise SystemExit(f"hash_ceiling disagrees with gitmlm on {wrong or 'bytes'}")
                c_rounds.append(c_took)
        parallel, cpu = sorted(rounds)[ROUNDS // 2]
        line(
            "cold hash of many files, in-process (MB/s)",
            f"{total / parallel / MB:,.0f}",
            f"{cores} x sha256 {cores * rate / MB:,.0f}",
            f"{total / parallel / (cores * rate):.2f}x",
            ">= 0.80x",
        )
        line(
            "  the same per CPU second (MB/s)",
            f"{total / cpu / MB:,.0f}",
            f"sha256 {rate / MB:,.0f}",
            f"{total / cpu / rate:.2f}x",
            "(load-free)",
        )
        line(
            "  cores the hashing got (CPU/wall)",
            f"{cpu / parallel:.2f}",
            f"{cores} cores",
            f"{cpu / parallel / cores:.2f}x",
            "(load-bound)",
        )
        if isinstance(exe, Path):
            ceiling = statistics.median(c_rounds)
            line(
                "  C + OpenSSL, same files, same cores (MB/s)",
                f"{total / ceiling / MB:,.0f}",
                f"{cores} x sha256 {cores * rate / MB:,.0f}",
                f"{total / ceiling / (cores * rate):.2f}x",
                "(the machine's ceiling)",
            )
            line(
                "  ours against that ceiling (MB/s)",
                f"{total / parallel / MB:,.0f}",
                f"C {total / ceiling / MB:,.0f}",
                f"{ceiling / parallel:.2f}x",
                "(what is left to win)",
            )
        else:
            print(f"  (C ceiling skipped: {exe})")
        line(
            "  same files on one core (MB/s)",
            f"{total / one_thread / MB:,.0f}",
            f"sha256 {rate / MB:,.0f}",
            f"{total / one_thread / rate:.2f}x",
            "(one core)",
        )
        big_path = tmp / "big.bin"
        big_file(big_path, big)
        start = time.perf_counter()
        hashing.hash_files(str(tmp), [("big.bin", big)], "sha256")
        one_big = time.perf_counter() - start
        big_path.unlink()
        line(
            f"  one {big >> 20} MiB file alone (MB/s)",
            f"{big / one_big / MB:,.0f}",
            f"sha256 {rate / MB:,.0f}",
            f"{big / one_big / rate:.2f}x",
            "(one core's)",
        )
        for warm in (["--version"], ["hook", "--help"]):
            run([*GIT_MLM, *warm], repo)  # compile the bytecode once
        run([sys.executable, "-m", "gitmlm.hooks.data"], repo)
        # Hashing throughput: --no-store leaves out the copy into the object cache (measured
        # by bench/storage_bench.py).
        took = run([*GIT_MLM, "data", "add", "--no-store", "train", "data"], repo)
        line(
            "cold `git mlm data add --no-store` (MB/s)",
            f"{total / took / MB:,.0f}",
            f"{cores} x sha256 {cores * rate / MB:,.0f}",
            f"{total / took / (cores * rate):.2f}x",
            ">= 0.80x",
        )
        subprocess.run(["git", "commit", "-qm", "data"], cwd=repo, check=True, env=ENV)
        for _ in range(2):  # files written within the last tick are racy once; let them settle
            run([*GIT_MLM, "data", "status"], repo)
        time.sleep(0.05)
        status = median([*GIT_MLM, "data", "status"], repo)
        bare = median([sys.executable, "-c", "pass"], repo)
        floor = median(FIND, repo)
        line(
            f"`git mlm data status`, unchanged, {len(files) // 1000}k files",
            f"{status:.3f} s",
            f"find -printf stat {floor:.3f} s",
            f"{status / floor:.1f}x",
            "<= 0.3 s",
        )
        hook = median([sys.executable, "-m", "gitmlm.hooks.data"], repo)
        line(
            "mlm-data hook, unchanged (process start incl.)",
            f"{hook:.3f} s",
            f"python -c pass {bare:.3f} s",
            f"{hook / bare:.1f}x",
            "<= 0.3 s",
        )
        shim = median([*GIT_MLM, "hook", "pre-commit"], repo)
        line(
            "`git mlm hook pre-commit` (the git shim)",
            f"{shim:.3f} s",
            f"python -c pass {bare:.3f} s",
            f"{shim / bare:.1f}x",
            "<= 0.3 s",
        )

        if not args.no_dvc and DVC.exists():
            dvc = str(DVC)
            drepo = tmp / "dvc-repo"
            make_repo(drepo)
            os.rename(data, drepo / "data")  # the very same files
            run([dvc, "init", "-q"], drepo)
            run([dvc, "config", "core.analytics", "false"], drepo)
            dvc_add = run([dvc, "add", "-q", "data"], drepo)
            line(
                "cold `git mlm data add` vs `dvc add`",
                f"{took:.2f} s",
                f"dvc add {dvc_add:.2f} s",
                f"{dvc_add / took:.1f}x",
                "(faster)",
            )
            run([dvc, "status", "-q"], drepo, check=False)
            dvc_status = median([dvc, "status", "-q"], drepo, repeat=3)
            line(
                "`git mlm data status` vs warm `dvc status`",
                f"{status:.3f} s",
                f"dvc status {dvc_status:.3f} s",
                f"{dvc_status / status:.1f}x",
                ">= 10x faster",
            )
            shutil.rmtree(drepo)  # its cache holds a second copy of the big file
        elif not args.no_dvc:
            print(f"(DVC not found at {DVC}; run ../shared/peers/install.sh dvc to compare)")
        shutil.rmtree(repo)

        # --- tree 2: many small files ------------------------------------------------------------
        many = tmp / "many"
        make_repo(many)
        small_files(many / "data", n_many, 100, (64, 512))
        # The same files tracked by git, in a repository of their own, for `git status`.
        tracked = tmp / "tracked"
        make_repo(tracked)
        shutil.copytree(many / "data", tracked / "data")
        (tracked / ".gitignore").write_text("")
        subprocess.run(["git", "add", "."], cwd=tracked, check=True, env=ENV)
        subprocess.run(["git", "commit", "-qm", "data"], cwd=tracked, check=True, env=ENV)
        for store in (["--no-store"], []):
            fresh_git(many)
            took = run([*GIT_MLM, "data", "add", *store, "train", "data"], many)
            line(
                f"cold `git mlm data add{' ' if store else ''}{' '.join(store)}`, "
                f"{n_many // 1000}k files",
                f"{took:.2f} s",
                f"{n_many / took:,.0f} files/s",
                "",
                "<= 3 s",
            )
        floor = create_files(tmp / "objects", n_many)
        line(
            f"  creating {n_many // 1000}k small files, one process",
            f"{floor:.2f} s",
            "(one file per object)",
            "",
            "",
        )
        subprocess.run(["git", "commit", "-qm", "data"], cwd=many, check=True, env=ENV)
        for _ in range(2):
            run([*GIT_MLM, "data", "status"], many)
        time.sleep(0.05)
        for _ in range(2):
            run(["git", "status"], tracked)
        status, gstatus = [], []
        for _ in range(7):  # interleaved: both see the same load
            status.append(run([*GIT_MLM, "data", "status"], many))
            gstatus.append(run(["git", "status"], tracked))
        status_m, git_m = statistics.median(status), statistics.median(gstatus)
        line(
            f"`git mlm data status`, unchanged, {n_many // 1000}k files",
            f"{status_m:.3f} s",
            f"git status {git_m:.3f} s",
            f"{status_m / git_m:.2f}x",
            "<= 2x",
        )
        floor = median(FIND, many, repeat=5)
        line(
            "  the same beside stat-ing every file",
            f"{status_m:.3f} s",
            f"find -printf stat {floor:.3f} s",
            f"{status_m / floor:.1f}x",
            "",
        )
        hook = median([sys.executable, "-m", "gitmlm.hooks.data"], many, repeat=5)
        line(
            f"mlm-data hook, unchanged, {n_many // 1000}k files",
            f"{hook:.3f} s",
            f"python -c pass {bare:.3f} s",
            f"{hook / bare:.1f}x",
            "",
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
