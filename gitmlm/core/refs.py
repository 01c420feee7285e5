"""Every ref name gitmlm reads or writes: the one place for the ref grammar."""

from __future__ import annotations

RUNS = "refs/notes/mlm"
"""Run summaries: one TOML note per code commit, holding every run made on it."""
SERIES = "refs/notes/mlm-series"
"""Per-step metric series, apart from the summaries so listings never parse them."""
OBSERVATIONS = "refs/notes/mlm-observations"
"""Monitor results, as notes on a model version's commit."""
SCANS = "refs/notes/mlm-scans"
"""Model scan results (`git mlm scan`), as notes on a model version's commit."""
PROFILES = "refs/notes/mlm-profiles"
"""Training data profiles, one table per run and dataset, on the run's commit: apart from the
summaries so listings never parse them."""
NOTES_GLOB = "refs/notes/mlm*"

PREFIX = "refs/mlm/"
"""Everything else that must stay reachable (checkpoints, manifests) lives below here."""
CHECKPOINTS = PREFIX + "checkpoints/"
MANIFESTS = PREFIX + "manifests/"
KEEP = PREFIX + "keep/"
"""Records whose commits were rewritten away (squash, rebase) stay reachable here."""
TAGS = "refs/tags/"


def is_registry_tag(name: str) -> bool:
    """Whether a tag (`churn@v1.0.0` or `refs/tags/churn@v1.0.0`) is in GTO's grammar."""
    from gitmlm.core import tags

    return tags.parse(name) is not None


def checkpoint(run_id: str) -> str:
    return CHECKPOINTS + run_id


def keep(commit: str) -> str:
    return KEEP + commit


def is_notes_ref(name: str) -> bool:
    """One of our notes refs (records merged run by run), not a remote's copy of one."""
    return name.startswith("refs/notes/mlm")


def is_carried(name: str) -> bool:
    """A ref sync carries other than tags: our notes refs and everything under refs/mlm/."""
    return is_notes_ref(name) or name.startswith(PREFIX)


def remote_notes_prefix(remote: str) -> str:
    return f"refs/notes/remotes/{remote}/"


def remote_mlm_prefix(remote: str) -> str:
    return f"refs/mlm-remotes/{remote}/"


def manifest(tree: str) -> str:
    """One ref per dataset manifest (a commit of the manifest tree): it never moves, so clones
    that record manifests independently push and fetch them without conflicts."""
    return MANIFESTS + tree


def remote_tracking(remote: str, ref: str) -> str:
    """Where a remote's copy of one of our refs is fetched to, beside (never over) ours."""
    if ref.startswith("refs/notes/"):
        return remote_notes_prefix(remote) + ref[len("refs/notes/") :]
    return remote_mlm_prefix(remote) + ref[len(PREFIX) :]


def tracked_ref(remote: str, tracking: str) -> str | None:
    """The inverse of `remote_tracking`: which of our refs a remote-tracking ref mirrors."""
    for prefix, ours in (
        (remote_notes_prefix(remote), "refs/notes/"),
        (remote_mlm_prefix(remote), PREFIX),
    ):
        if tracking.startswith(prefix):
            return ours + tracking[len(prefix) :]
    return None


def fetch_refspecs(remote: str) -> list[str]:
    return [
        f"+{NOTES_GLOB}:refs/notes/remotes/{remote}/mlm*",
        f"+{PREFIX}*:refs/mlm-remotes/{remote}/*",
    ]


def push_refspecs() -> list[str]:
    # A configured push refspec replaces push.default, so HEAD keeps `git push` pushing the
    # current branch as before.
    return ["HEAD", f"{NOTES_GLOB}:{NOTES_GLOB}", f"{PREFIX}*:{PREFIX}*"]
