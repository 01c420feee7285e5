"""Record-level merge of two versions of gitmlm notes: pure functions, no git.

A note is a table of runs keyed by run id. Two notes merge as the union of their runs; a run
present on both sides with different content merges by `merge_run`. The rule is symmetric
(the result does not depend on which side is "ours") and idempotent (merging a result again
with either input changes nothing), and it only adds keys and moves to newer versions, so
clones that sync in any order converge on the same records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Table = dict[str, Any]
Doc = dict[str, Table]
"""run id -> run table, as one note holds them."""

TERMINAL = frozenset({"finished", "failed", "crashed"})


def _rank(table: Mapping[str, Any]) -> tuple[bool, str]:
    """Which version of a run is newer: a finished run beats a running one, then later `updated`.

    A record that says `running` was written before the run ended, whatever its clock says, so
    it never overrides a final status.
    """
    stamp = table.get("updated") or table.get("ended") or table.get("started") or ""
    return (table.get("status") in TERMINAL, str(stamp))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _union(winner: Mapping[str, Any], loser: Mapping[str, Any]) -> dict[str, Any]:
    """The winner's values, plus every key (at any depth of nested tables) only the loser has."""
    out = dict(winner)
    for key, value in loser.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _union(out[key], value)
    return out


EDITED = "edited"
"""Per-field times of edits made after the fact (`git mlm runs tag/rename/rm...`): `{name = T,
tags = {KEY = T}}`. Two clones editing different fields of one run concurrently both win."""


def _apply_edits(out: dict[str, Any], a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """For each edited field, the value of the side that edited it last (absent if it removed
    it); a tie keeps the overall winner's. Depends only on the stamps: symmetric, idempotent."""
    ea, eb = a.get(EDITED), b.get(EDITED)
    if not isinstance(ea, dict) and not isinstance(eb, dict):
        return
    # A side without stamps never edited those fields: the edited side's values stand even
    # when the other side is the newer version (e.g. written again by a later tool).
    ea = ea if isinstance(ea, dict) else {}
    eb = eb if isinstance(eb, dict) else {}

    def pick(sa: Any, sb: Any) -> Mapping[str, Any] | None:
        sa, sb = str(sa or ""), str(sb or "")
        return a if sa > sb else b if sb > sa else None

    stamps: dict[str, Any] = {}
    for key in sorted(set(ea) | set(eb)):
        va, vb = ea.get(key), eb.get(key)
        if isinstance(va, dict) or isinstance(vb, dict):
            da = va if isinstance(va, dict) else {}
            db = vb if isinstance(vb, dict) else {}
            inner: dict[str, Any] = {}
            for sub in sorted(set(da) | set(db)):
                inner[sub] = max(str(da.get(sub, "")), str(db.get(sub, "")))
                src = pick(da.get(sub), db.get(sub))
                if src is None:
                    continue
                table = src.get(key)
                target = dict(out.get(key) or {})
                if isinstance(table, Mapping) and sub in table:
                    target[sub] = table[sub]
                else:
                    target.pop(sub, None)
                out[key] = target
            stamps[key] = inner
        else:
            stamps[key] = max(str(va or ""), str(vb or ""))
            src = pick(va, vb)
            if src is None:
                continue
            if key in src:
                out[key] = src[key]
            else:
                out.pop(key, None)
    out[EDITED] = stamps


def merge_run(a: Mapping[str, Any], b: Mapping[str, Any]) -> Table:
    """Two versions of one run's table: the newer wins field by field, nothing is dropped.

    Newer is decided by `_rank`; on a tie (same status class and same `updated`, which only
    happens for hand-made records) the version whose canonical JSON sorts last wins, so both
    sides of a sync pick the same one. Keys that only the older version has (a tag added on
    another machine, a metric logged late) are kept.
    """
    if a == b:
        return dict(a)
    ka, kb = _rank(a), _rank(b)
    if ka == kb:
        ka_c, kb_c = _canonical(a), _canonical(b)
        a_wins = ka_c >= kb_c
    else:
        a_wins = ka > kb
    out = _union(a, b) if a_wins else _union(b, a)
    _apply_edits(out, a, b)
    return out


def merge_docs(ours: Mapping[str, Table], theirs: Mapping[str, Table]) -> Doc:
    """The union of runs by id; a run on both sides merges by `merge_run`."""
    out: Doc = {rid: dict(t) for rid, t in ours.items()}
    for rid, table in theirs.items():
        mine = out.get(rid)
        out[rid] = dict(table) if mine is None else merge_run(mine, table)
    return out


def changed_runs(before: Mapping[str, Table], after: Mapping[str, Table]) -> tuple[int, int]:
    """(runs added, runs changed) going from `before` to `after`: what a merge brought."""
    added = sum(1 for rid in after if rid not in before)
    changed = sum(1 for rid, t in after.items() if rid in before and before[rid] != t)
    return added, changed
