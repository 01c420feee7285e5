"""Benchmark: `git mlm models` on generated registries (1 model; 200 versions and 500 stage
tags, then 800 and 2,000), beside `gto show` on the same repositories when GTO is installed.

    python bench/registry_bench.py            # GTO from /tmp/gitmlm-peers/gto (or $GTO)
    /work/shared/peers/install.sh gto         # installs GTO in its own venv first, if wanted

Tags are generated with `git fast-import` in gitmlm's format (annotated, TOML bodies, GTO's
names and counters), one second apart so GTO's clock ordering is sane too, and refs are
packed as a clone has them. Figures are wall times of the real command line (the first run
without gitmlm's tag cache, then the median and the fastest of several), and the in-process
registry read alone, whose growth shows the algorithm without Python's start-up.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitmlm.core import tags
from gitmlm.core.git import Repo
from gitmlm.models import state as model_registry

TARGET = 0.25
SIZES = [(200, 500), (800, 2000)]
EXTRA = (1600, 4000)
"""Read in-process only (GTO would take minutes), to see the per-tag cost stay flat."""
STAGES = ["dev", "staging", "production"]
BASE_TIME = 1_700_000_000


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITMLM_"))}
    bindir = home / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shim = bindir / "git-mlm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gitmlm "$@"\n')
    shim.chmod(0o755)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        PATH=f"{bindir}{os.pathsep}{env['PATH']}",
        PYTHONPATH=str(ROOT),
    )
    return env


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


def generate(path: Path, versions: int, stage_tags: int, env: dict[str, str]) -> None:
    """One model with `versions` registrations and `stage_tags` stage assignments."""
    subprocess.run(["git", "init", "-q", str(path)], check=True, env=env)
    who = "Bench <bench@example.com>"
    out = bytearray()
    toml = 'schema = 1\n[models.churn]\npath = "models/churn.pkl"\n[metrics]\nauc = "max"\n'
    toml += f"[registry]\nstages = {STAGES!r}\n".replace("'", '"')
    for i in range(1, versions + 1):
        out += b"commit refs/heads/main\nmark :%d\n" % i
        out += f"committer {who} {BASE_TIME + i} +0000\n".encode() + _data(f"model {i}")
        if i > 1:
            out += b"from :%d\n" % (i - 1)
        else:
            out += b"M 100644 inline mlm.toml\n" + _data(toml)
        out += b"M 100644 inline models/churn.pkl\n" + _data(f"weights {i}")
    seq = 0
    per_version = stage_tags / versions
    made = 0
    for i in range(1, versions + 1):
        seq += 1
        version = f"v{i // 100}.{(i // 10) % 10}.{i % 10}"
        body = {
            "event": "register",
            "sequence": seq,
            "model": "churn",
            "version": version,
            "run": f"01bench{i:019d}",
            "who": who,
            "why": "nightly retrain",
            "artifact": {"path": "models/churn.pkl", "digest": "sha256:" + f"{i:064x}"},
            "metrics": {"auc": 0.8 + i / (versions * 10), "loss": 1 / i},
        }
        name = tags.format_tag(tags.REGISTER, "churn", version=version)
        out += _tag(name, i, who, BASE_TIME + seq, f"Register churn {version}", body)
        while made < round(per_version * i):
            made += 1
            seq += 1
            stage = STAGES[made % 3]
            action = tags.UNASSIGN if made % 10 == 0 else tags.ASSIGN
            body = {
                "event": action,
                "sequence": seq,
                "model": "churn",
                "version": version,
                "stage": stage,
                "who": who,
                "why": "bench",
            }
            name = tags.format_tag(action, "churn", stage=stage, counter=seq)
            out += _tag(name, i, who, BASE_TIME + seq, f"{action} {version} {stage}", body)
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input=bytes(out), check=True, env=env
    )
    subprocess.run(["git", "pack-refs", "--all"], cwd=path, check=True, env=env)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True, env=env)


def _tag(name: str, mark: int, who: str, when: int, subject: str, body: dict[str, object]) -> bytes:
    head = f"tag {name}\nfrom :{mark}\ntagger {who} {when} +0000\n".encode()
    return head + _data(tags.encode_message(subject, body))


def read_only(tmp: Path, versions: int, stage_tags: int) -> float:
    """The fastest of 15 in-process registry reads of a generated repository (warm cache)."""
    try:
        env = _env(tmp / "home")
        repo = tmp / "repo"
        generate(repo, versions, stage_tags, env)
        model_registry.load(Repo.open(repo))
        return min(_read_times(repo))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_times(repo: Path, runs: int = 15) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        model_registry.load(Repo.open(repo))
        out.append(time.perf_counter() - start)
    return out


def timed(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    gto = os.environ.get("GTO", "/tmp/gitmlm-peers/gto/bin/gto")
    have_gto = Path(gto).is_file()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(Path(tmp) / "home")
        baseline = statistics.median(timed(["git", "mlm", "--version"], Path(tmp), env, 5))
        print(f"startup: `git mlm --version` {baseline:.3f} s (included in every figure below)")
        for versions, stage_tags in SIZES:
            repo = Path(tmp) / f"r{versions}"
            generate(repo, versions, stage_tags, env)
            shutil.rmtree(repo / ".git" / "mlm", ignore_errors=True)
            cold = timed(["git", "mlm", "models"], repo, env, 1)[0]
            warm_runs = timed(["git", "mlm", "models"], repo, env, 9)
            warm, best = statistics.median(warm_runs), min(warm_runs)
            check = subprocess.run(
                ["git", "mlm", "models"], cwd=repo, env=env, capture_output=True, text=True
            ).stdout
            inproc = _read_times(repo)
            theirs = None
            if have_gto:
                theirs = statistics.median(timed([gto, "show"], repo, env, 3))
            rows.append(
                {
                    "size": f"{versions}/{stage_tags}",
                    "cold": cold,
                    "warm": warm,
                    "best": best,
                    "read": min(inproc),
                    "gto": theirs,
                    "output": check,
                }
            )
    print()
    print(
        f"{'versions/stage tags':<20} {'cold':>8} {'warm':>8} {'best':>8} {'read only':>10}"
        f" {'gto show':>9} {'gto/ours':>9}"
    )
    for r in rows:
        gto_s = f"{r['gto']:8.3f}s" if r["gto"] else "      n/a"
        ratio = f"{r['gto'] / r['warm']:8.1f}x" if r["gto"] else "     n/a"
        print(
            f"{r['size']:<20} {r['cold']:7.3f}s {r['warm']:7.3f}s {r['best']:7.3f}s"
            f" {r['read']:9.4f}s {gto_s} {ratio}"
        )
    print(
        "(wall time of the command line: cold = first run, no cache; warm = median of 9;"
        " best = fastest of 9;\n read only = fastest of 15 in-process model_registry.load;"
        " gto/ours = gto show median of 3 / warm)"
    )
    small, large = rows[0], rows[1]
    print()
    print(
        f"target: `git mlm models` <= {TARGET} s at 200/500: warm {small['warm']:.3f} s "
        f"({'met' if small['warm'] <= TARGET else 'MISSED'}; {small['warm'] / TARGET:.2f} of"
        f" target), of which `git mlm --version` takes {baseline:.3f} s"
    )
    growth = large["read"] / small["read"]
    print(
        f"growth 200/500 -> 800/2000 (4x tags): registry read {growth:.1f}x (linear = 4x),"
        f" command line {large['warm'] / small['warm']:.1f}x"
    )
    extra_read = read_only(Path(tempfile.mkdtemp()), *EXTRA)
    print(
        f"registry read per tag: {small['read'] / 700 * 1e6:.1f} µs at 700 tags,"
        f" {large['read'] / 2800 * 1e6:.1f} µs at 2,800, {extra_read / 5600 * 1e6:.1f} µs"
        f" at 5,600 ({EXTRA[0]}/{EXTRA[1]}; a constant cost per tag is linear growth)"
    )
    if small["gto"] and large["gto"]:
        print(f"gto show growth for the same 4x: {large['gto'] / small['gto']:.1f}x")
    else:
        print("gto not installed: /work/shared/peers/install.sh gto (or set $GTO)")
    print()
    print("`git mlm models` at 800/2000:")
    print(str(large["output"]).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
