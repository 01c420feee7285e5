"""Talking to a remote with the git CLI: list its refs, fetch, push with leases, read results.

Everything goes through `git` itself, so every URL, credential helper and protocol the user's
git handles (ssh, https, file://, git://) works for gitmlm too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitmlm.core import refs
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

MAX_ARGS_BYTES = 512_000
"""Push arguments per git invocation: well below Linux's ARG_MAX (2 MiB), ~2,000 refs."""

# Rejections that mean "someone moved the ref first": fetch, merge and try again.
_RACED = (
    "stale info",
    "fetch first",
    "non-fast-forward",
    "already exists",
    "failed to lock",
    "cannot lock",
    "failed to update ref",
    "incorrect old value",
)
# Rejections that only echo another ref's failure in an atomic push.
_ECHO = ("atomic push failed", "atomic transaction failed")


class Raced(Exception):
    """The remote moved while we pushed: fetch, merge and push again."""


def remote_url(repo: Repo, remote: str) -> str:
    return repo.config_get(f"remote.{remote}.url") or remote


def check_remote(repo: Repo, remote: str) -> None:
    if remote not in repo.remotes():
        known = ", ".join(repo.remotes()) or "none"
        raise MlmError(
            f"no remote named {remote!r} (remotes: {known}); "
            f"add one with `git remote add {remote} URL`"
        )


def default_remote(repo: Repo) -> str:
    """The current branch's upstream remote, else `origin`, else the only remote."""
    head = repo.head()
    if head.branch:
        upstream = repo.config_get(f"branch.{head.branch}.remote")
        if upstream and upstream != ".":
            return upstream
    names = repo.remotes()
    if "origin" in names:
        return "origin"
    if len(names) == 1:
        return names[0]
    if not names:
        raise MlmError("this repository has no remote; add one with `git remote add origin URL`")
    raise MlmError(f"several remotes ({', '.join(names)}); name one: `git mlm sync REMOTE`")


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else "no message from git"


def ls_remote(repo: Repo, remote: str) -> dict[str, str]:
    """The remote's gitmlm refs and tags: ref name -> object id (tags unpeeled)."""
    proc = repo.git_proc(
        "ls-remote", "--refs", remote, "refs/notes/mlm*", refs.PREFIX + "*", refs.TAGS + "*"
    )
    if proc.returncode != 0:
        raise MlmError(
            f"cannot reach remote {remote!r} ({remote_url(repo, remote)}): "
            f"{_last_error(proc.stderr)}; nothing was changed"
        )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        oid, _, name = line.partition("\t")
        if name and (
            refs.is_notes_ref(name) or name.startswith(refs.PREFIX) or name.startswith(refs.TAGS)
        ):
            out[name] = oid
    return out


def fetch(repo: Repo, remote: str, refspecs: list[str]) -> None:
    """`git fetch` these refspecs (passed on stdin, so thousands are fine)."""
    if not refspecs:
        return
    proc = repo.git_proc(
        "fetch", "--no-tags", "--no-write-fetch-head", "--quiet", "--stdin", remote,
        input="".join(spec + "\n" for spec in refspecs),
    )  # fmt: skip
    if proc.returncode != 0:
        raise MlmError(
            f"fetch from {remote!r} failed: {_last_error(proc.stderr)}; "
            "nothing was merged; try again"
        )


@dataclass(frozen=True)
class Update:
    """Push our `ref` (at `new`) if the remote still has `expect` there (None: must not exist)."""

    ref: str
    new: str
    expect: str | None


def _batches(updates: list[Update]) -> list[list[Update]]:
    out: list[list[Update]] = [[]]
    size = 0
    for u in updates:
        cost = 2 * len(u.ref) + 2 * 41 + 40
        if out[-1] and size + cost > MAX_ARGS_BYTES:
            out.append([])
            size = 0
        out[-1].append(u)
        size += cost
    return [b for b in out if b]


def push(repo: Repo, remote: str, updates: list[Update]) -> None:
    """Push each update as a compare-and-swap; atomic per batch, batches in the given order.

    Raises Raced when a lease failed (the caller fetches, merges and retries) and MlmError when
    the remote refused for any other reason or could not be reached; our own refs are never
    touched by a push.
    """
    for batch in _batches(updates):
        _push_batch(repo, remote, batch, atomic=True)


def _push_batch(repo: Repo, remote: str, batch: list[Update], atomic: bool) -> None:
    args = ["push", "--porcelain"] + (["--atomic"] if atomic else []) + [remote]
    for u in batch:
        args.append(f"--force-with-lease={u.ref}:{u.expect or ''}")
        args.append(f"{u.new}:{u.ref}")
    proc = repo.git_proc(*args)
    if proc.returncode == 0:
        return
    if atomic and "does not support --atomic" in proc.stderr:
        _push_batch(repo, remote, batch, atomic=False)
        return
    rejected = _rejections(proc.stdout)
    if not rejected:
        raise MlmError(
            f"push to {remote!r} failed: {_last_error(proc.stderr)}; "
            "your local records are unchanged; run `git mlm sync` again"
        )
    causes = {ref: why for ref, why in rejected.items() if not why.startswith(_ECHO)}
    refused = {ref: why for ref, why in causes.items() if not why.startswith(_RACED)}
    if refused:
        reasons = sorted(set(refused.values()))
        what = f" of {next(iter(refused))}" if len(refused) == 1 else ""
        lines = proc.stderr.splitlines()
        said = [ln[len("remote:") :].strip() for ln in lines if ln.startswith("remote:")]
        said = [ln for ln in said if ln]
        told = f"; the remote said: {' / '.join(said)}" if said else ""
        raise MlmError(
            f"{remote!r} refused the push{what} ({', '.join(reasons)}){told}; "
            "your local records are unchanged"
        )
    raise Raced(", ".join(sorted(causes or rejected)))


_LINE = re.compile(r"^!\t[^\t]*:([^\t]+)\t\[([^\]]*)\](?: \((.*)\))?$")


def _rejections(porcelain: str) -> dict[str, str]:
    """Rejected ref -> reason, from `git push --porcelain` output.

    A `[remote failure]` (the server died before it answered) is not a rejection: it is left
    out, so the caller reports a failed connection.
    """
    out: dict[str, str] = {}
    for line in porcelain.splitlines():
        m = _LINE.match(line)
        if m and m.group(2) != "remote failure":
            out[m.group(1)] = m.group(3) or m.group(2)
    return out
