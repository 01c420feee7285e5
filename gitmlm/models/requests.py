"""Promotion through pull requests: requests are committed TOML files under .mlm/requests/.

`git mlm promote --request` writes one; the pull request carries it; `git mlm ci check` (PR
CI) judges each against the gates and renders a Markdown report; `git mlm ci apply` (main,
after merge) creates the tags, pushes them at most three per push (GitHub sends no events for
larger tag pushes), and removes the applied requests in one commit. A request is identified
by the hash of its file, which the tag body records, so applying twice never promotes twice.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from gitmlm.core import codec, config, fmt, scans, tags
from gitmlm.core import remote as transport
from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.models import gates, signing
from gitmlm.models import ops as life
from gitmlm.models import state as model_registry

DIR = ".mlm/requests"
PUSH_BATCH = 3
MAX_FINDINGS = 20
"""Scan findings shown per scan in the pull-request report."""


@dataclass(frozen=True)
class Request:
    path: str
    """Relative to the work tree, with forward slashes."""
    id: str
    model: str
    stage: str
    version: str
    requested_by: str
    why: str
    force: bool
    reason: str


def request_path(model: str, stage: str) -> str:
    return f"{DIR}/{model.replace('/', '__').replace(':', '__')}--{stage.replace('/', '__')}.toml"


def write_request(
    repo: Repo,
    name: str,
    stage: str,
    version: str,
    *,
    message: str = "",
    force: bool = False,
    reason: str | None = None,
    scanner: gates.Scanner | None = None,
) -> tuple[Request, life.Plan]:
    """Validate a promotion and write it as a request file (not committed: the user commits)."""
    cfg = config.load(repo.workdir)
    tags.check_version(version)
    if force and not (reason or "").strip():
        raise MlmError("--force needs --reason TEXT: the override is recorded in the tag")
    plan = life.plan(repo, cfg, signing.load(repo)[0], name, stage, version, scanner=scanner)
    rel = request_path(name, stage)
    file = repo.workdir / rel
    if file.exists():
        raise MlmError(f"{rel} already requests a {name} version for {stage}; edit or delete it")
    doc: dict[str, Any] = {
        "schema": 1,
        "model": name,
        "stage": stage,
        "version": version,
        "requested_by": model_registry.identity(repo),
        "requested_at": codec.now(),
        "why": message,
    }
    if force:
        doc["force"] = True
        doc["reason"] = reason
    file.parent.mkdir(parents=True, exist_ok=True)
    text = tomli_w.dumps(doc)
    file.write_text(text, encoding="utf-8")
    return _request(rel, text.encode()), plan


def _request(rel: str, data: bytes) -> Request:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MlmError(f"{rel}: not a valid request ({exc}); fix or delete it") from exc
    if doc.get("schema") != 1:
        raise MlmError(f"{rel}: schema {doc.get('schema')!r} is not one this gitmlm reads (1)")
    missing = [k for k in ("model", "stage", "version") if not isinstance(doc.get(k), str)]
    if missing:
        raise MlmError(
            f"{rel}: missing {', '.join(missing)}; a request names model, stage, version"
        )
    return Request(
        path=rel,
        id="sha256:" + hashlib.sha256(data).hexdigest()[:16],
        model=doc["model"],
        stage=doc["stage"],
        version=doc["version"],
        requested_by=str(doc.get("requested_by", "")),
        why=str(doc.get("why", "")),
        force=doc.get("force") is True,
        reason=str(doc.get("reason", "")),
    )


def read_requests(repo: Repo) -> list[Request]:
    folder = repo.workdir / DIR
    if not folder.is_dir():
        return []
    out = []
    for file in sorted(folder.glob("*.toml")):
        rel = file.relative_to(repo.workdir).as_posix()
        out.append(_request(rel, file.read_bytes()))
    return out


def _applied_by(reg: model_registry.Registry, req: Request) -> str | None:
    """The tag that applied this request, or that put its version in its stage already."""
    model = reg.models.get(req.model)
    if model is None:
        return None
    for e in model.events:
        if e.action == tags.ASSIGN and e.body.get("request") == req.id:
            return e.tag
    held = model.holder(req.stage)
    if held is not None and held.version == req.version:
        for e in reversed(model.events):
            if e.action == tags.ASSIGN and e.stage == req.stage and e.version == req.version:
                return e.tag
    return None


# --- check -------------------------------------------------------------------------------------


@dataclass
class Review:
    request: Request
    plan: life.Plan | None = None
    error: str | None = None
    applied: str | None = None
    """The tag that applied this request already, if one did."""
    scanned: list[scans.Recorded] = field(default_factory=list)
    """The candidate's latest recorded scan per evaluation data (`git mlm scan`)."""

    @property
    def ok(self) -> bool:
        if self.error is not None:
            return False
        return self.applied is not None or (
            self.plan is not None and (self.plan.passed or self.request.force)
        )


@dataclass
class Report:
    reviews: list[Review]
    cfg: dict[str, Any]
    verdicts: list[signing.Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reviews) and all(v.ok for v in self.verdicts)


def check(repo: Repo, scanner: gates.Scanner | None = None) -> Report:
    """Judge every request in the work tree against the gates and the registry as it is."""
    cfg = config.load(repo.workdir)
    reg, verdicts = signing.load(repo, cfg)
    listing = life._listing(repo)
    reviews = []
    for req in read_requests(repo):
        review = Review(req)
        review.applied = _applied_by(reg, req)
        if review.applied is None:
            try:
                tags.check_model_name(req.model)
                tags.check_version(req.version)
                _check_published(reg, req)
                review.plan = life.plan(
                    repo, cfg, reg, req.model, req.stage, req.version, listing, scanner
                )
                review.scanned = _latest_scans(repo, review.plan)
            except MlmError as exc:
                review.error = str(exc)
        reviews.append(review)
    problems = [p for p in reg.problems if p not in reg.rejected]  # the report lists those
    return Report(reviews, cfg, verdicts, problems)


def _check_published(reg: model_registry.Registry, req: Request) -> None:
    """A request for a version this clone has no tag of: most often registered on a laptop
    and pushed with plain `git push`, which carries no tags. Say how to publish it."""
    model = reg.models.get(req.model)
    found = model.versions.get(req.version) if model else None
    if found is None or found.registered is None:
        raise MlmError(
            f"{req.model} has no version {req.version} here: if it was registered on another "
            "clone, publish its registry tags there with `git mlm push` (plain `git push` "
            "carries no tags), then run the check again"
        )


def _latest_scans(repo: Repo, p: life.Plan) -> list[scans.Recorded]:
    return scans.latest_of_version(repo, p.version.commit, p.model, p.version.version)


def _scan_lines(recorded: list[scans.Recorded]) -> list[str]:
    lines: list[str] = []
    for r in recorded:
        lines += [f"**Scan findings** on {r.doc.get('data', '?')}: {r.summary}.", ""]
        rows = [
            {
                "severity": f.get("severity", ""),
                "detector": f.get("detector", ""),
                "where": f.get("slice", "") or "(all rows)",
                "finding": f.get("message", ""),
            }
            for f in r.findings[:MAX_FINDINGS]
        ]
        if rows:
            lines += [fmt.render(rows, ["severity", "detector", "where", "finding"], "md"), ""]
        if len(r.findings) > MAX_FINDINGS:
            lines += [f"… and {len(r.findings) - MAX_FINDINGS} more (`git mlm scan history`)", ""]
    return lines


def _title(req: Request) -> str:
    return f"{req.model} {req.version} → {req.stage}"


def markdown(report: Report) -> str:
    """The pull-request comment: a summary, then each candidate against the stage holder."""
    lines = ["## gitmlm: model promotion requests", ""]
    if not report.reviews:
        lines.append("No promotion requests in this change.")
    else:
        summary = []
        for r in report.reviews:
            if r.error:
                state = "❌ invalid"
            elif r.applied:
                state = f"✔️ applied already ({r.applied})"
            elif r.plan is not None and r.plan.passed:
                state = "✅ gates pass"
            elif r.request.force:
                state = "⚠️ gates fail, override requested"
            else:
                state = "❌ gates fail"
            summary.append({"request": _title(r.request), "file": r.request.path, "result": state})
        lines += [fmt.render(summary, ["request", "file", "result"], "md"), ""]
    for r in report.reviews:
        lines += [f"### {_title(r.request)}", ""]
        if r.request.why:
            lines += [f"> {r.request.why}", ""]
        if r.request.requested_by:
            lines += [f"Requested by {r.request.requested_by}.", ""]
        if r.error:
            lines += [f"**Invalid:** {r.error}", ""]
            continue
        if r.applied or r.plan is None:
            continue
        p = r.plan
        holder = f"**{p.current.version}**" if p.current else "nothing"
        lines += [f"Now in {p.stage}: {holder}. Candidate evidence: {p.candidate.source}.", ""]
        changes = gates.metric_changes(report.cfg, p.candidate, p.holder)
        if changes:
            cur = f"{p.current.version} (current)" if p.current else "current"
            shaped = [
                {
                    "metric": c["metric"],
                    cur: c["current"],
                    f"{p.version.version} (candidate)": c["candidate"],
                    "change": c["change"],
                }
                for c in changes
            ]
            cols = ["metric", cur, f"{p.version.version} (candidate)", "change"]
            lines += [fmt.render(shaped, cols, "md"), ""]
        if p.checks:
            rows = [
                {"gate": c.gate, "result": "✅ pass" if c.ok else "❌ fail", "detail": c.detail}
                for c in p.checks
            ]
            lines += [fmt.render(rows, ["gate", "result", "detail"], "md"), ""]
        else:
            lines += [f"Stage {p.stage} has no gates.", ""]
        lines += _scan_lines(r.scanned)
        if r.request.force and not p.passed:
            lines += [f"**Override requested:** {r.request.reason}", ""]
        if p.signed:
            lines += [f"Stage {p.stage} is protected: `ci apply` signs its tag.", ""]
    if report.verdicts:
        lines += ["### Signatures", ""]
        rows = [{"tag": v.tag, "problem": v.detail} for v in report.verdicts]
        lines += [fmt.render(rows, ["tag", "problem"], "md"), ""]
    return "\n".join(lines).rstrip() + "\n"


# --- apply -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    request: Request
    tag: str | None
    status: str
    """created | already applied | refused | invalid"""
    detail: str = ""


@dataclass
class Applied:
    outcomes: list[Outcome]
    pushed: list[list[str]]
    """Tag names per push (each at most PUSH_BATCH)."""
    commit: str | None

    @property
    def ok(self) -> bool:
        return all(o.status in ("created", "already applied") for o in self.outcomes)


def _fetch_tags(repo: Repo, remote: str) -> None:
    """Read the registry as the remote has it: another job may have promoted meanwhile."""
    code, err = repo.run_git_status("fetch", "--tags", remote)
    if code != 0:
        clash = [ln.split()[2] for ln in err.splitlines() if "would clobber" in ln]
        if clash:
            raise MlmError(
                f"{remote} has other tags named {', '.join(clash)}: another promotion took "
                "those numbers; delete them here (git tag -d) and run ci apply again"
            )
        raise MlmError(f"git fetch --tags {remote} failed: {err.strip()}")


def apply(repo: Repo, *, remote: str | None = "origin", branch: str | None = None) -> Applied:
    """Create the tags of every request in the work tree, push them, remove the requests.

    Idempotent: a request whose tag exists (by its id in the tag body) is not applied again;
    its tag is pushed if the remote lacks it and its file is removed.
    """
    requests = read_requests(repo)
    if not requests:
        return Applied([], [], None)
    if remote is not None:
        if remote not in repo.remotes():
            raise MlmError(f"no remote {remote!r}; give --remote NAME (or --no-push)")
        branch = branch or repo.head().branch
        if branch is None:
            raise MlmError("HEAD is detached: give --branch NAME to push the cleanup commit to")
    if remote is not None:
        _fetch_tags(repo, remote)
    cfg = config.load(repo.workdir)
    listing = life._listing(repo)
    outcomes: list[Outcome] = []
    with repo.lock(life.LOCK):
        for req in requests:
            reg = signing.load(repo)[0]
            done = _applied_by(reg, req)
            if done is not None:
                outcomes.append(Outcome(req, done, "already applied"))
                continue
            try:
                p = life.plan(repo, cfg, reg, req.model, req.stage, req.version, listing)
                extra = {"request": req.id, "requested_by": req.requested_by}
                tag = life.apply_plan(
                    repo,
                    reg,
                    p,
                    force=req.force,
                    reason=req.reason,
                    message=req.why,
                    extra=extra,
                )
                outcomes.append(Outcome(req, tag, "created"))
            except life.GateRefused as exc:
                failed = "; ".join(f"{c.gate}: {c.detail}" for c in exc.plan.failed)
                outcomes.append(Outcome(req, None, "refused", failed))
            except MlmError as exc:
                outcomes.append(Outcome(req, None, "invalid", str(exc)))
    done_tags = [o.tag for o in outcomes if o.tag]
    pushed: list[list[str]] = []
    if remote is not None and done_tags:
        there = repo.remote_tags(remote)
        clash = [t for t in done_tags if t in there and there[t] != repo.ref(f"refs/tags/{t}")]
        if clash:
            raise MlmError(
                f"{remote} has other tags named {', '.join(clash)}: another promotion took "
                "those numbers; delete them here (git tag -d) and run ci apply again"
            )
        missing = [t for t in done_tags if t not in there]
        for i in range(0, len(missing), PUSH_BATCH):
            batch = missing[i : i + PUSH_BATCH]
            # Leases that the tags must not exist there: a name taken meanwhile is refused.
            updates = [
                transport.Update(f"refs/tags/{t}", repo.ref(f"refs/tags/{t}") or "", None)
                for t in batch
            ]
            try:
                transport.push(repo, remote, updates)
            except transport.Raced as exc:
                raise MlmError(
                    f"{remote} got tags named {exc} while this ran: another promotion took those "
                    "numbers; delete them here (git tag -d) and run ci apply again"
                ) from None
            pushed.append(batch)
    finished = [o for o in outcomes if o.tag]
    commit = None
    if finished:
        paths = [o.request.path for o in finished]
        repo.run_git("rm", "-q", "--", *paths)
        body = "\n".join(f"{_title(o.request)}: {o.tag}" for o in finished)
        repo.run_git(
            "commit",
            "-q",
            "-m",
            f"gitmlm: apply {len(finished)} promotion request(s) [skip ci]",
            "-m",
            body,
            "--",
            *paths,
        )
        commit = repo.head_commit()
        if remote is not None:
            repo.run_git("push", "-q", remote, f"HEAD:refs/heads/{branch}")
    return Applied(outcomes, pushed, commit)
