"""`git mlm data add|status|diff|ls|rm`, `git mlm install-hooks` and `git mlm hook`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitmlm.cli import datafast, progress
from gitmlm.cli.common import format_option, open_repo, size_text
from gitmlm.core import fmt


def _short(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}" if hex_ else digest


@click.group()
def data() -> None:
    """Datasets: declare, fingerprint into mlm.lock, inspect, diff.

    Declare datasets in mlm.toml ([datasets.NAME] path = "a file, folder or glob") or with
    `git mlm data add NAME PATH`; mlm.lock records their digests and is committed with the code.
    The `mlm-data` hook blocks a commit whose data differs from its mlm.lock.
    """


@data.command("add")
@click.argument("name", required=False)
@click.argument("path", required=False)
@click.option("--no-stage", is_flag=True, help="Do not `git add` mlm.lock and mlm.toml.")
@click.option("--no-store", is_flag=True, help="Do not keep the files' bytes in the object cache.")
def data_add(name: str | None, path: str | None, no_stage: bool, no_store: bool) -> None:
    """Record dataset NAME (declared as PATH, when given) in mlm.lock; every dataset when no
    NAME. Stages mlm.lock (and mlm.toml when it changed), ready to commit."""
    from gitmlm.data import datasets as _data

    repo = open_repo()
    done = _data.add(
        repo,
        name,
        path,
        cwd=Path.cwd(),
        stage=not no_stage,
        progress=progress.for_stderr,
        store=not no_store,
    )
    for r in done:
        e = r.entry
        if r.previous == e["digest"]:
            what = "unchanged"
        elif r.previous is None:
            what = "recorded"
        else:
            what = f"recorded (was {_short(r.previous)})"
        click.echo(
            f"{r.name}: {_short(e['digest'])}  {e['files']} file{'' if e['files'] == 1 else 's'}, "
            f"{size_text(e['size'])}  {what}"
        )
    if not no_stage:
        click.echo("staged mlm.lock; commit it with your code", err=True)


@data.command("rm")
@click.argument("name")
@click.option("--no-stage", is_flag=True, help="Do not `git add` mlm.lock and mlm.toml.")
def data_rm(name: str, no_stage: bool) -> None:
    """Forget dataset NAME: its declaration in mlm.toml and its record in mlm.lock (the files
    and the recorded manifests stay)."""
    from gitmlm.data import datasets as _data

    _data.remove(open_repo(), name, stage=not no_stage)
    click.echo(f"forgot dataset {name}")


@data.command("status")
@click.argument("names", nargs=-1)
@click.option("--exit-code", is_flag=True, help="Exit with 1 when any dataset is not clean.")
@format_option
def data_status(names: tuple[str, ...], exit_code: bool, fmt_: str) -> int:
    """Each dataset against mlm.lock: clean, modified (with counts), unrecorded, undeclared,
    or error (files that cannot be read as declared; exits 1)."""
    from gitmlm.data import datasets as _data

    repo = open_repo()
    found = _data.status(repo, list(names) or None, progress=progress.for_stderr)
    rows: list[dict[str, Any]] = []
    for st in found:
        c = st.changes
        rows.append(
            {
                "dataset": st.name,
                "status": st.state,
                "modified": len(c.modified) if c else None,
                "added": len(c.added) if c else None,
                "removed": len(c.removed) if c else None,
                "path": st.path,
                "digest": st.current.digest if st.current else "",
                "note": st.note,
            }
        )
    if not rows:
        click.echo("no datasets declared; declare one with `git mlm data add NAME PATH`", err=True)
        return 0
    text, notes = datafast.render(rows, fmt_)
    click.echo(text)
    for line in notes:
        click.echo(line, err=True)
    dirty = any(st.state != "clean" for st in found)
    return 1 if (exit_code and dirty) or any(st.state == "error" for st in found) else 0


@data.command("diff")
@click.argument("name")
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@format_option
def data_diff(name: str, rev_a: str | None, rev_b: str | None, fmt_: str) -> None:
    """File-level changes of dataset NAME: mlm.lock against the files; or the version recorded
    at REV_A against the files; or REV_A against REV_B."""
    from gitmlm.data import datasets as _data

    d = _data.diff(open_repo(), name, rev_a, rev_b)
    c = d.changes
    rows: list[dict[str, Any]] = []
    for kind, paths in (("modified", c.modified), ("added", c.added), ("removed", c.removed)):
        for p in paths:
            old, new = c.sizes.get(p, (None, None))
            rows.append({"change": kind, "path": p, "old_size": old, "new_size": new})
    if fmt_ == "table":
        click.echo(f"dataset {name}: {d.a} ({_short(d.a_digest)}) -> {d.b} ({_short(d.b_digest)})")
        if not rows:
            click.echo("no changes" if d.a_digest == d.b_digest else "no file-level changes")
            return
        for row in rows:
            row["old_size"], row["new_size"] = (
                size_text(row["old_size"]),
                size_text(row["new_size"]),
            )
    click.echo(fmt.render(rows, ["change", "path", "old_size", "new_size"], fmt_))


@data.command("ls")
@format_option
def data_ls(fmt_: str) -> None:
    """Declared and recorded datasets: digest, size, files, the commit that last changed them."""
    from gitmlm.data import datasets as _data

    repo = open_repo()
    rows: list[dict[str, Any]] = []
    for d in _data.listing(repo):
        changed = d.changed
        if fmt_ == "table" and len(changed) == 40:
            info = repo.commit(changed)
            import time

            changed = f"{changed[:10]} {time.strftime('%Y-%m-%d', time.gmtime(info.time))}"
        rows.append(
            {
                "dataset": d.name,
                "path": d.path + ("" if d.declared else " (undeclared)"),
                "digest": _short(d.digest) if fmt_ == "table" else d.digest,
                "size": size_text(d.size) if fmt_ == "table" else d.size,
                "files": d.files,
                "changed": changed or ("" if d.digest else "not recorded"),
            }
        )
    if not rows:
        click.echo("no datasets declared; declare one with `git mlm data add NAME PATH`", err=True)
        return
    click.echo(fmt.render(rows, ["dataset", "path", "digest", "size", "files", "changed"], fmt_))


# --- bytes: push, pull, checkout, verify (the object store, docs/storage.md) -------------------


def _transfer_bar(label: str) -> Any:
    return progress.for_stderr(0, 0, label)


@data.command("push")
@click.argument("names", nargs=-1)
@click.option("--rev", help="Push the versions mlm.lock records at REV (default: the work tree's).")
@click.option("-r", "--remote", help="Storage remote (default: the default one).")
def data_push(names: tuple[str, ...], rev: str | None, remote: str | None) -> int:
    """Upload the files of the recorded dataset versions that the storage remote lacks."""
    from gitmlm.data import restore

    bar = _transfer_bar("pushing")
    try:
        moved = restore.push(open_repo(), list(names) or None, rev, remote=remote, progress=bar)
    finally:
        if bar:
            bar.close()
    r = moved.report
    click.echo(
        f"{moved.remote}: pushed {len(r.moved)} object(s), {size_text(r.bytes)}; "
        f"{r.already} already there"
    )
    if moved.unavailable:
        click.echo(
            f"git mlm: {len(moved.unavailable)} file(s) are stored nowhere here (they changed "
            "before gitmlm kept their bytes) and were not pushed",
            err=True,
        )
        return 1
    return 0


@data.command("pull")
@click.argument("names", nargs=-1)
@click.option("--rev", help="Pull the versions mlm.lock records at REV (default: the work tree's).")
@click.option("-r", "--remote", help="Storage remote (default: the default one).")
def data_pull(names: tuple[str, ...], rev: str | None, remote: str | None) -> None:
    """Download into the object cache the files of the recorded versions it lacks (checked
    against their digests); `git mlm data checkout` then places them."""
    from gitmlm.data import restore

    bar = _transfer_bar("pulling")
    try:
        moved = restore.pull(open_repo(), list(names) or None, rev, remote=remote, progress=bar)
    finally:
        if bar:
            bar.close()
    r = moved.report
    click.echo(
        f"{moved.remote}: pulled {len(r.moved)} object(s), {size_text(r.bytes)}; "
        f"{r.already} already here"
    )


@data.command("checkout")
@click.argument("name")
@click.argument("rev", required=False)
@click.option("--force", is_flag=True, help="Overwrite local changes that are stored nowhere.")
@click.option("-r", "--remote", help="Storage remote to fetch from (default: the default one).")
def data_checkout(name: str, rev: str | None, force: bool, remote: str | None) -> None:
    """Make dataset NAME's path hold exactly the version mlm.lock records (at REV), fetching
    missing files from the storage remote. Refuses to overwrite unstored changes."""
    from gitmlm.data import restore

    bar = _transfer_bar("pulling")
    try:
        done = restore.checkout(open_repo(), name, rev, force=force, remote=remote, progress=bar)
    finally:
        if bar:
            bar.close()
    v = done.version
    click.echo(
        f"{v.label}: {_short(v.digest)}  {len(done.written)} written, "
        f"{len(done.removed)} removed, {done.unchanged} unchanged"
    )
    for path in done.replaced:
        click.echo(f"replaced local change: {path}", err=True)


@data.command("verify")
@click.argument("names", nargs=-1)
@click.option("--rev", help="Check the versions mlm.lock records at REV.")
@click.option("--remote", "on_remote", is_flag=True, help="Check the remote's copies instead.")
@click.option("-r", "remote", help="Which storage remote (with --remote; default: the default).")
@format_option
def data_verify(
    names: tuple[str, ...], rev: str | None, on_remote: bool, remote: str | None, fmt_: str
) -> int:
    """Re-hash the stored files of each recorded version: missing or corrupt ones fail."""
    from gitmlm.data import restore

    found = restore.verify(
        open_repo(), list(names) or None, rev, remote=remote, on_remote=on_remote
    )
    rows = [
        {
            "dataset": f.version.label,
            "where": f.where,
            "ok": f.ok,
            "missing": len(f.missing),
            "corrupt": len(f.bad),
        }
        for f in found
    ]
    click.echo(fmt.render(rows, ["dataset", "where", "ok", "missing", "corrupt"], fmt_))
    for f in found:
        for d in f.bad:
            click.echo(f"corrupt: {d} ({f.version.label}, {f.where})", err=True)
    return 1 if any(f.missing or f.bad for f in found) else 0


COMMANDS = [data]
