"""`git mlm fetch|push|sync`: carry every record through a git remote and lose none.

Fetch brings the remote's gitmlm refs into a remote-tracking namespace beside ours (never over
them), then merges: notes refs run by run (`merge.py`), the keep chain as a commit union
(`keep.py`), and the unique-named refs (checkpoints, manifests) and registry tags by adding the
ones we lack. Push sends each ref as a compare-and-swap against what fetch saw; sync repeats
fetch-merge-push when another clone pushed in between, a bounded number of times.

Domain code: returns reports, never prints.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gitmlm.checkpoints import pins
from gitmlm.core import codec, refs
from gitmlm.core import notes as store
from gitmlm.core import remote as transport
from gitmlm.core.git import CasFailed, Repo
from gitmlm.errors import MlmError
from gitmlm.sync import keep, merge

MAX_ATTEMPTS = 8
"""Sync rounds before giving up when other clones keep pushing first."""
_LOCAL_ATTEMPTS = 30


@dataclass
class RefChange:
    """What a fetch did to one of our refs."""

    ref: str
    action: str
    """"created", "fast-forward", "merged" (a merge commit with both parents) or "conflict"."""
    notes: int = 0
    """Notes (annotated commits) whose content changed here."""
    runs_added: int = 0
    runs_changed: int = 0


@dataclass
class FetchReport:
    remote: str
    changes: list[RefChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Things kept as they were and why: invalid notes, refs that differ on the two sides."""
    registry: list[str] = field(default_factory=list)
    """What reconciling the registry did: local events replayed after the remote's."""
    diverged: list[str] = field(default_factory=list)
    """Registry tags that still differ from the remote's: the clones disagree until fixed."""
    remote_refs: dict[str, str] = field(default_factory=dict)
    """The remote's gitmlm refs and registry tags as this fetch saw them (ref -> oid)."""


@dataclass
class PushReport:
    remote: str
    pushed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    kept: int = 0
    """Commits newly pinned by keep refs (refs/mlm/keep/<commit>) with this push."""
    deleted: list[str] = field(default_factory=list)
    """Pin refs of collected runs deleted on the remote (docs/tracking.md "gc")."""


@dataclass
class SyncReport:
    fetch: FetchReport
    push: PushReport
    attempts: int


# --- fetch -----------------------------------------------------------------------------------


def _wanted(shallow: bool, name: str) -> bool:
    """Whether fetch brings this ref; a shallow clone leaves others' keep refs on the remote.

    Fetching them would fetch every pinned commit with its whole history, undoing the shallow
    clone; pinning is the job of full clones. (Its own keep refs it still pushes.)
    """
    return not (shallow and name.startswith(refs.KEEP))


Reconcile = Callable[[Repo, str, Mapping[str, str]], list[str]]
"""Makes the registry tags here agree with the remote's (short name -> object id, objects
fetched) and replays local events after them; what it did, one line each. The registry part
provides it (sync knows refs, not registry events); the command line passes it in."""

INCOMING = "refs/mlm-incoming/tags/"
"""Where the remote's version of a registry tag we hold differently waits for `reconcile`."""


def fetch(repo: Repo, remote: str, reconcile: Reconcile | None = None) -> FetchReport:
    """Bring the remote's records here and merge them into ours; pushes nothing."""
    transport.check_remote(repo, remote)
    advertised = transport.ls_remote(repo, remote)
    report = FetchReport(remote)
    shallow = repo.is_shallow
    tracking_prefixes = (refs.remote_notes_prefix(remote), refs.remote_mlm_prefix(remote))
    local = repo.ref_table(refs.TAGS, *tracking_prefixes)
    _prune_tracking(repo, remote, advertised, local)
    specs: list[str] = []
    # Fetch only what moved since our remote-tracking copies: a sync with nothing new is one
    # `ls-remote` round trip, not two.
    moved = {
        n
        for n, oid in advertised.items()
        if refs.is_carried(n)
        and _wanted(shallow, n)
        and local.get(refs.remote_tracking(remote, n)) != oid
    }
    if any(refs.is_notes_ref(n) for n in moved):
        specs.append(f"+{refs.NOTES_GLOB}:{refs.remote_notes_prefix(remote)}mlm*")
    if any(n.startswith(refs.PREFIX) for n in moved):
        specs.append(f"+{refs.PREFIX}*:{refs.remote_mlm_prefix(remote)}*")
        if shallow:
            specs.append(f"^{refs.KEEP}*")
    tags = {n: oid for n, oid in advertised.items() if _is_registry_tag(n)}
    new_tags = []
    differing: dict[str, str] = {}
    for name, oid in sorted(tags.items()):
        mine = local.get(name)
        if mine is None:
            specs.append(f"{name}:{name}")
            new_tags.append(RefChange(name, "created"))
        elif mine != oid:
            differing[name] = oid
            specs.append(f"+{name}:{INCOMING}{name[len(refs.TAGS) :]}")
    transport.fetch(repo, remote, specs)
    report.changes += new_tags
    if reconcile is not None:
        report.registry = reconcile(repo, remote, {n[len(refs.TAGS) :]: o for n, o in tags.items()})
        now = repo.ref_table(refs.TAGS)
        differing = {n: o for n, o in tags.items() if now.get(n) not in (None, o)}
    for name, oid in sorted(differing.items()):
        report.diverged.append(
            f"tag {name[len(refs.TAGS) :]} differs from {remote}'s (theirs {oid[:10]}); "
            f"run `git mlm sync {remote}` to make yours again after theirs"
        )
    for ref, oid in repo.ref_table(INCOMING).items():
        repo.delete_ref(ref, oid)

    # What the remote has, as fetched: leases for the push that follows are taken from this.
    for tracking, oid in repo.ref_table(*tracking_prefixes).items() if specs else local.items():
        ours = refs.tracked_ref(remote, tracking)
        if ours and _wanted(shallow, ours) and refs.is_carried(ours):
            report.remote_refs[ours] = oid
    report.remote_refs.update(tags)
    # Refs not fetched (a shallow clone's view of keep refs) are known from the listing.
    report.remote_refs.update(
        {n: oid for n, oid in advertised.items() if refs.is_carried(n) and not _wanted(shallow, n)}
    )

    unique: dict[str, str] = {}
    for name, theirs in sorted(report.remote_refs.items()):
        if refs.is_notes_ref(name):
            change = merge_notes_ref(repo, name, theirs, remote, report.problems)
            if change is not None:
                report.changes.append(change)
        elif name.startswith(refs.PREFIX) and _wanted(shallow, name):
            unique[name] = theirs
        # tags were fetched straight into refs/tags when we lacked them
    report.changes += _adopt(repo, unique, remote, report.problems)
    return report


def _is_registry_tag(name: str) -> bool:
    return name.startswith(refs.TAGS) and refs.is_registry_tag(name[len(refs.TAGS) :])


def _prune_tracking(
    repo: Repo, remote: str, advertised: dict[str, str], local: dict[str, str]
) -> None:
    """Forget remote-tracking refs of refs the remote no longer has, so leases stay true."""
    for tracking, oid in list(local.items()):
        name = refs.tracked_ref(remote, tracking)
        if name is not None and name not in advertised:
            repo.delete_ref(tracking, oid)
            del local[tracking]


def _adopt(repo: Repo, theirs: dict[str, str], remote: str, problems: list[str]) -> list[RefChange]:
    """Unique-named refs (checkpoints, keep refs, manifests): add the ones we lack, in one
    transaction, and never overwrite one we have."""
    mine = repo.ref_table(refs.PREFIX)
    missing = {n: oid for n, oid in theirs.items() if n not in mine}
    for name in pins.dead_pins(repo, missing):  # gc dropped it here: never brought back
        del missing[name]
        theirs = {n: o for n, o in theirs.items() if n != name}
    failed = set(repo.create_refs(missing, f"gitmlm: fetched from {remote}"))
    changes = [RefChange(n, "created") for n in missing if n not in failed]
    mine = repo.ref_table(refs.PREFIX) if failed else mine
    for name, oid in sorted(theirs.items()):
        have = mine.get(name)
        if have is None and name in failed:
            problems.append(f"could not create {name} here (a clashing ref name?); skipped")
        elif have is not None and have != oid:
            problems.append(
                f"{name} differs from {remote}'s; kept ours ({have[:10]}, theirs {oid[:10]})"
            )
            changes.append(RefChange(name, "conflict"))
    return changes


def merge_notes_ref(
    repo: Repo, ref: str, theirs: str, remote: str = "the remote", problems: list[str] | None = None
) -> RefChange | None:
    """Merge the notes commit `theirs` into our `ref`, run by run, as a compare-and-swap.

    When neither side contains the other, the result is a notes commit with both parents, so
    `git log REF` shows the merge and a later fetch of the same remote tip is a no-op.
    """
    problems = problems if problems is not None else []
    with repo.lock(ref):
        for _ in range(_LOCAL_ATTEMPTS):
            ours = repo.ref(ref)
            found: list[str] = []
            if ours is None:
                change = RefChange(ref, "created", notes=len(repo.notes(theirs)))
                new = theirs
            elif repo.is_ancestor(theirs, ours):
                return None
            elif repo.is_ancestor(ours, theirs):
                change = RefChange(ref, "fast-forward", notes=_count_diff(repo, ours, theirs))
                new = theirs
            else:
                change = RefChange(ref, "merged")
                updates = _merge_trees(repo, ref, ours, theirs, remote, change, found)
                message = f"gitmlm: merge {ref} from {remote}"
                new = repo.write_notes(ref, ours, updates, message, extra_parents=(theirs,))
            try:
                repo.update_ref(ref, new, ours, f"gitmlm: {change.action} from {remote}")
            except CasFailed:
                continue  # a run was recorded meanwhile: merge again with it
            problems.extend(found)
            return change
    raise MlmError(f"could not update {ref}: it kept moving; try again")


def _count_diff(repo: Repo, a: str, b: str) -> int:
    return sum(1 for _, blob in repo.notes_changes(a, b).values() if blob is not None)


class _Note:
    """One side's note: its bytes read once, parsed (None if invalid), its run blocks on demand.

    The listing cache is read but not filled: after the merge these blobs are history.
    """

    def __init__(self, repo: Repo, blob: str) -> None:
        self.blob = blob
        self.data = repo.blob(blob)
        doc = store.cached_doc(repo, blob)
        if doc is None:
            try:
                if store.is_index(self.data):
                    doc = store.read_doc(repo, blob)
                else:
                    doc = codec.decode_doc(self.data)
            except codec.NoteError:
                doc = None
        self.doc = doc
        self.known = store.store_blobs(repo, self.data) if doc is not None else {}
        """Run id -> blob of an index note's runs, reused when the merge keeps a run as is."""


def _encode(merged: store.Doc, sides: tuple[_Note, _Note]) -> bytes:
    """The merged note's bytes: unchanged run blocks copied from either side, others encoded."""
    a, b = sides
    if a.doc and b.doc:  # ids disjoint and in order: the two notes simply follow each other
        if max(a.doc) < min(b.doc):
            joined = codec.concatenate(a.data, b.data)
        elif max(b.doc) < min(a.doc):
            joined = codec.concatenate(b.data, a.data)
        else:
            joined = None
        if joined is not None:
            return joined
    found = []
    for side in sides:
        blocks, doc = codec.sections(side.data), side.doc or {}
        if blocks is None or blocks.keys() != doc.keys():
            return codec.encode_doc(merged)
        found.append((blocks, doc))
    out: dict[str, bytes] = {}
    for rid, table in merged.items():
        for blocks, doc in found:
            if doc.get(rid) == table:
                out[rid] = blocks[rid]
                break
        else:
            fresh = codec.sections(codec.encode_doc({rid: table}))
            if fresh is None or rid not in fresh:
                return codec.encode_doc(merged)
            out[rid] = fresh[rid]
    return codec.assemble(out)


def _replace(
    repo: Repo,
    commit: str,
    oblob: str | None,
    doc: store.Doc,
    known: dict[str, str],
) -> dict[str, str | None]:
    """`write_notes` updates that make `doc` the note on `commit` (none left if empty)."""
    out: dict[str, str | None] = {}
    if oblob is not None and store.is_index(repo.blob(oblob)) and len(doc) <= store.INLINE_MAX:
        out[store.store_key(commit)] = None
    if doc:
        out.update(store.stage_doc(repo, commit, doc, known))
    elif oblob is not None:
        out[commit] = None
    return out


def _merge_trees(
    repo: Repo,
    ref: str,
    ours: str,
    theirs: str,
    remote: str,
    change: RefChange,
    problems: list[str],
) -> dict[str, str | None]:
    """New note blobs (by annotated commit) for our tree so it holds the union of both.

    In the run-keyed refs (series, profiles) the tables of runs gc collected are left out
    (checkpoints/pins.py), from either side: the union would otherwise bring back from a clone
    that has not run gc what another clone's gc dropped.
    """
    updates: dict[str, str | None] = {}
    fresh: dict[str, bytes] = {}  # merged notes to write, in one batch
    changes = sorted(repo.notes_changes(ours, theirs).items())
    gone = pins.collected_on(repo, [c for c, _ in changes]) if ref in pins.RUN_KEYED else {}
    for commit, (oblob, tblob) in changes:
        drop = gone.get(commit, set())
        if tblob is None:
            # A note only we have (or one they removed): the union keeps ours, less what gc
            # collected.
            if drop and oblob is not None:
                with contextlib.suppress(codec.NoteError):  # an invalid note stays as it is
                    ours_only = store.Snapshot(ref, ours, {commit: oblob})
                    updates.update(store.drop_runs(repo, ours_only, commit, drop))
            continue
        tnote = _Note(repo, tblob)
        tdoc = tnote.doc
        if drop and tdoc is not None:
            mine = None if oblob is None else _Note(repo, oblob)
            odoc_ = {} if mine is None else mine.doc
            if odoc_ is not None:  # an invalid note of ours: decided below, as any other
                merged = merge.merge_docs(odoc_, tdoc)
                merged = {rid: t for rid, t in merged.items() if rid not in drop}
                if merged != odoc_:
                    change.notes += 1
                    known = {
                        rid: blob
                        for side in (tnote, mine)
                        if side is not None and side.doc is not None
                        for rid, blob in side.known.items()
                        if side.doc.get(rid) == merged.get(rid)
                    }
                    updates.update(_replace(repo, commit, oblob, merged, known))
                continue
        if oblob is None:
            # Theirs alone: taken as it is, even when unreadable, so nothing is lost.
            updates.update(store.adopt(commit, tblob, tnote.data))
            change.notes += 1
            if tdoc is None:
                problems.append(f"{remote}'s note on {commit[:12]} in {ref} is not valid; kept")
            else:
                change.runs_added += len(tdoc)
            continue
        onote = _Note(repo, oblob)
        odoc = onote.doc
        if tdoc is None or odoc is None:
            # Never merge into garbage: the readable side wins; the other stays in history
            # (the merge commit's parents), where `git show` still finds it.
            bad = "their" if tdoc is None else "our"
            if tdoc is None and odoc is None:
                updates[commit] = max(oblob, tblob)  # any fixed choice, the same on both sides
            elif odoc is None:
                updates.update(store.adopt(commit, tblob, tnote.data))
            problems.append(
                f"{bad} note on {commit[:12]} in {ref} is not valid TOML of schema "
                f"{codec.SCHEMA}; kept the other side's, the invalid one stays in the history "
                f"of {ref}"
            )
            if updates.get(commit) not in (None, oblob):
                change.notes += 1
            continue
        merged = merge.merge_docs(odoc, tdoc)
        if merged == odoc:
            continue
        added, changed = merge.changed_runs(odoc, merged)
        change.notes += 1
        change.runs_added += added
        change.runs_changed += changed
        if merged == tdoc:
            updates.update(store.adopt(commit, tblob, tnote.data))
        elif len(merged) > store.INLINE_MAX:  # an index and its store of run blobs
            known = {
                rid: blob
                for side in (onote, tnote)
                for rid, blob in side.known.items()
                if side.doc is not None and side.doc.get(rid) == merged.get(rid)
            }
            updates.update(store.stage_doc(repo, commit, merged, known))
        else:
            fresh[commit] = _encode(merged, (onote, tnote))
    for commit, blob in zip(fresh, repo.write_blobs(list(fresh.values())), strict=True):
        updates[commit] = blob
    return updates


# --- push ------------------------------------------------------------------------------------


class Diverged(MlmError):
    """The remote has records we have not merged: fetch first."""


def push(repo: Repo, remote: str, remote_refs: dict[str, str] | None = None) -> PushReport:
    """Push our gitmlm refs and registry tags, each only if the remote still has what we saw.

    `remote_refs` is the remote's state as a fetch just saw it; without it the remote is asked
    (`git mlm push` alone), and a remote that has records we lack is an error naming sync.
    """
    transport.check_remote(repo, remote)
    if remote_refs is None:
        remote_refs = transport.ls_remote(repo, remote)
    report = PushReport(remote)
    unique: list[transport.Update] = []
    moving: list[transport.Update] = []
    table = repo.ref_table(refs.NOTES_GLOB, refs.PREFIX, refs.TAGS)
    locals_ = {n: o for n, o in table.items() if refs.is_carried(n) or _is_registry_tag(n)}
    # Keep refs for annotated commits nothing pins yet: pushed now, made here once pushed.
    lacking = [n for n in remote_refs if _is_registry_tag(n) and n not in locals_]
    if lacking:
        # Registry events here may have to come after those: only a sync can tell.
        raise _diverged(remote, lacking[0])
    made = keep.unpinned(repo, table)
    locals_.update(made)
    report.kept = len(made)
    # Pins of runs gc collected (checkpoints/pins.py) travel no more: one we still hold (not
    # collected here yet) is not sent, and one only the remote holds is deleted there.
    # Only the pins one side lacks are judged: a sync with nothing new reads no note for this.
    gone = pins.dead_pins(
        repo,
        {
            **{n: o for n, o in remote_refs.items() if n not in locals_},
            **{n: o for n, o in locals_.items() if n not in remote_refs},
        },
        table,
    )
    deleting = [transport.Update(n, "", remote_refs[n]) for n in sorted(gone) if n not in locals_]
    for name, mine in sorted(locals_.items()):
        if name in gone and name not in remote_refs:
            continue
        theirs = remote_refs.get(name)
        if theirs == mine:
            continue
        if refs.is_notes_ref(name):
            if theirs is not None and not repo.is_ancestor(theirs, mine):
                raise _diverged(remote, name)
            moving.append(transport.Update(name, mine, theirs))
        elif theirs is None:
            unique.append(transport.Update(name, mine, None))
        elif _is_registry_tag(name):
            raise _diverged(remote, name)  # the remote's tag wins; ours is made again after it
        else:
            report.problems.append(
                f"{name} differs on {remote} ({theirs[:10]}, ours {mine[:10]}); not pushed"
            )
    # Checkpoints, manifests and tags first: the notes that name them land after them.
    transport.push(repo, remote, unique + moving + deleting)
    repo.create_refs(made, "gitmlm: keep a commit that carries records")  # the remote has them
    for u in deleting:  # our copy of the remote's ref, so `git gc --prune` can reclaim it
        repo.delete_ref(refs.remote_tracking(remote, u.ref), u.expect)
    report.pushed = [u.ref for u in unique + moving]
    report.deleted = [u.ref for u in deleting]
    return report


def _diverged(remote: str, name: str) -> Diverged:
    return Diverged(
        f"{remote} has records in {name} that are not here yet; "
        f"run `git mlm sync {remote}` (fetch, merge, push)"
    )


# --- sync ------------------------------------------------------------------------------------


def sync(
    repo: Repo, remote: str, attempts: int = MAX_ATTEMPTS, reconcile: Reconcile | None = None
) -> SyncReport:
    """Fetch, merge and push until the remote holds everything we hold (bounded retries)."""
    first: FetchReport | None = None
    for attempt in range(1, attempts + 1):
        fetched = fetch(repo, remote, reconcile)
        if first is None:
            first = fetched
        else:
            first.changes.extend(fetched.changes)
            first.problems.extend(p for p in fetched.problems if p not in first.problems)
            first.registry.extend(fetched.registry)
        if fetched.diverged:
            # Pushing now would publish a registry the remote contradicts.
            raise MlmError("; ".join(fetched.diverged))
        try:
            pushed = push(repo, remote, fetched.remote_refs)
        except (transport.Raced, Diverged):
            # Another clone pushed between our fetch and our push: back off, then go again.
            time.sleep(random.uniform(0.05, 0.2) * attempt)
            continue
        return SyncReport(first, pushed, attempt)
    raise MlmError(
        f"{remote} kept moving: gave up after {attempts} attempts; your records are merged "
        f"here and nothing is lost; run `git mlm sync {remote}` again"
    )
