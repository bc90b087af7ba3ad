"""Reviewing a study's MTurk work: `review` approves and rejects by rule (`review_rules`) after syncing
(`sync`) and checking identities, through the recorded actions of `actions`.

The actions and the sync are imported here too (`review.approve`, `review.bonus`, `review.sync_assignments`,
...): the CLI and the tests reach the whole review workflow through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from annotation_server.clock import utcnow
from annotation_server.mturk.client import MTurk
from annotation_server.mturk.identity import MTurkRecord, SessionCheck, check_mturk_sessions
from annotation_server.mturk.models import APPROVE, REJECT, MTurkHit
from annotation_server.quality import (
    ExclusionRules,
    WorkerQuality,
    flag_workers,
    worker_quality,
)
from annotation_server.studies import get_study
from annotation_server.mturk.actions import (
    ActionOutcome,
    approve,
    checked_feedback,
    bonus,
    bonus_token,
    delete,
    expire,
    grant_participation,
    reject,
)
from annotation_server.mturk.review_rules import Comparison, Rule, parse_rule
from annotation_server.mturk.sync import HitStatus, hit_statuses, sync_assignments

__all__ = ["review", "ReviewRow", "ReviewResult", "ActionOutcome", "approve", "reject", "bonus", "bonus_token",
           "expire", "delete", "grant_participation", "checked_feedback", "Comparison", "Rule", "parse_rule",
           "HitStatus", "hit_statuses", "sync_assignments"]


@dataclass(frozen=True)
class ReviewRow:
    """One assignment in the review: who, its MTurk status, the worker's quality, the decision taken."""

    assignment_id: str
    hit_id: str
    worker_id: str
    status: str | None
    units: int | None
    quality: WorkerQuality | None
    flags: tuple[str, ...]
    decision: str | None
    outcome: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the row as JSON."""
        q = self.quality
        return {"assignment_id": self.assignment_id, "hit_id": self.hit_id, "worker_id": self.worker_id,
                "status": self.status, "units": self.units,
                "gold_accuracy": q.gold_accuracy if q else None, "gold_answered": q.gold_answered if q else 0,
                "agreement": q.agreement if q else None, "median_seconds": q.median_seconds if q else None,
                "flags": list(self.flags), "decision": self.decision, "outcome": self.outcome}


@dataclass(frozen=True)
class ReviewResult:
    """The review: one row per assignment and the counts of what was done."""

    study: str
    environment: str
    rows: tuple[ReviewRow, ...]
    approved: int
    rejected: int
    qualified: int
    dry_run: bool
    sessions: tuple[SessionCheck, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the review as JSON."""
        return {"study": self.study, "environment": self.environment, "dry_run": self.dry_run,
                "approved": self.approved, "rejected": self.rejected, "qualified": self.qualified,
                "assignments": [r.to_json() for r in self.rows], "sessions": [s.to_json() for s in self.sessions]}


def review(db: Session, mturk: MTurk, study_name: str, approve_if: Rule | None = None, reject_if: Rule | None = None,
           feedback: str | None = None, dry_run: bool = False, rules: ExclusionRules | None = None,
           now: datetime | None = None) -> ReviewResult:
    """Sync the study's assignments, score their workers, and approve/reject the submitted ones by rule.

    A submitted assignment matching `reject_if` is rejected (with `feedback`, required then); else one
    matching `approve_if` is approved; else it is left for a person. Every worker seen gets the study's
    participation qualification. `rules` (default `ExclusionRules()`) decide each worker's flags (and the
    rule name `flagged`). `dry_run` decides but calls nothing that changes MTurk.

    Every worker session of the study is checked against MTurk's records of the study's HITs
    (`identity.check_mturk_sessions`): sessions MTurk does not confirm are marked unconfirmed, with the
    reason, and their answers are left out of exports and analyses by default (also in a dry run: the
    check changes nothing on MTurk).
    """
    study = get_study(db, study_name)
    now = now or utcnow()
    if reject_if is not None:
        checked_feedback(feedback, True, "--reject-if")
    records: dict[str, MTurkRecord] = {}
    assignments = sync_assignments(db, mturk, study.name, now, records)
    hits = set(db.scalars(select(MTurkHit.hit_id).where(MTurkHit.study_id == study.id,
                                                        MTurkHit.environment == mturk.environment)))
    checks = check_mturk_sessions(db, study, hits, records, now)
    db.commit()
    qualities = {q.worker: q for q in worker_quality(db, study.name)}
    flags = {f.worker: tuple(r.code for r in f.reasons) for f in flag_workers(qualities.values(), rules)}
    rows: list[ReviewRow] = []
    approved = rejected = 0
    for a in assignments:
        q = qualities.get(a.worker_id)
        metrics = {**q.metrics(), "flagged": float(len(flags.get(a.worker_id, ())))} if q else {}
        decision = outcome = None
        if a.mturk_status == "Submitted":
            if reject_if is not None and reject_if.evaluate(metrics):
                decision = REJECT
            elif approve_if is not None and approve_if.evaluate(metrics):
                decision = APPROVE
        if decision and not dry_run:
            result = (reject(db, mturk, study.name, a.assignment_id, feedback or "", now) if decision == REJECT
                      else approve(db, mturk, study.name, a.assignment_id, feedback, now))
            outcome = result.outcome
            approved += decision == APPROVE and outcome != "already"
            rejected += decision == REJECT and outcome != "already"
        rows.append(ReviewRow(assignment_id=a.assignment_id, hit_id=a.hit_id, worker_id=a.worker_id,
                              status=a.mturk_status if not outcome else ("Approved" if decision == APPROVE else "Rejected"),
                              units=a.submitted_units, quality=q, flags=flags.get(a.worker_id, ()),
                              decision=decision, outcome=outcome))
    qualified = 0
    if not dry_run and assignments:
        granted = grant_participation(db, mturk, study.name, [a.worker_id for a in assignments], now)
        qualified = sum(g.outcome == "done" for g in granted)
    return ReviewResult(study=study.name, environment=mturk.environment, rows=tuple(rows), approved=approved,
                        rejected=rejected, qualified=qualified, dry_run=dry_run, sessions=tuple(checks))
