"""Reviewing a study's MTurk work: status, sync, approve/reject (by hand or by rule), bonus, expire, delete.

Every action is recorded in `mturk_action` with UNIQUE(kind, target), written as `pending` (and
committed) BEFORE the MTurk call and marked `done` after it, so:
- re-running never approves, rejects or bonuses twice: a `done` action is skipped;
- a run interrupted between the call and the bookkeeping is repaired on the next run: a `pending`
  approval/rejection is checked with `get_assignment`, a pending bonus with `list_bonus_payments`, and a
  repeated `send_bonus` carries the same deterministic UniqueRequestToken, so MTurk refuses to pay twice.

Rules (`parse_rule`): a tiny expression language over a worker's quality figures, e.g.
`gold>=0.8 and agreement>=0.5` or `seconds<2 or attention_failed>0`. Names: gold, agreement, seconds,
units, gold_answered, attention_failed, flagged (how many exclusion rules of `quality.ExclusionRules` the
worker breaks: 0 for a clean worker); operators: < <= > >= == !=; `and` binds tighter than `or`.
A comparison on a figure the worker does not have (no gold answered, say) is false. No eval.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from botocore.exceptions import ClientError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server.clock import utcnow
from annotation_server.models import Study
from annotation_server.mturk.client import MTurk, error_message
from annotation_server.mturk.identity import MTurkRecord, SessionCheck, check_mturk_sessions
from annotation_server.mturk.models import (
    APPROVE,
    BONUS,
    DELETE,
    DONE,
    EXPIRE,
    PENDING,
    QUALIFY,
    REJECT,
    MTurkAction,
    MTurkAssignment,
    MTurkHit,
    MTurkQualification,
)
from annotation_server.mturk.publish import money, study_fingerprint
from annotation_server.quality import ExclusionRules, WorkerQuality, flag_workers, worker_quality
from annotation_server.studies import get_study

#: `update_expiration_for_hit` with a time in the past expires a HIT at once.
EXPIRE_NOW = datetime(2015, 1, 1, tzinfo=timezone.utc)
ASSIGNMENT_STATUSES = ["Submitted", "Approved", "Rejected"]
MAX_FEEDBACK = 1024


# ------------------------------------------------------------------------------------ rules
RULE_NAMES = ("gold", "agreement", "seconds", "units", "gold_answered", "attention_failed", "flagged")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
_TOKEN_RE = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<op>>=|<=|==|!=|>|<)|(?P<word>[A-Za-z_]+))")


@dataclass(frozen=True)
class Comparison:
    """`name op value`, e.g. gold >= 0.8."""

    name: str
    op: str
    value: float

    def evaluate(self, metrics: Mapping[str, float | None]) -> bool:
        """True when the figure exists and the comparison holds."""
        got = metrics.get(self.name)
        return got is not None and _OPS[self.op](float(got), self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Rule:
    """A disjunction of conjunctions of comparisons (`or` of `and`s)."""

    clauses: tuple[tuple[Comparison, ...], ...]

    def evaluate(self, metrics: Mapping[str, float | None]) -> bool:
        """True when any clause has all its comparisons true."""
        return any(all(c.evaluate(metrics) for c in clause) for clause in self.clauses)

    def __str__(self) -> str:
        return " or ".join(" and ".join(str(c) for c in clause) for clause in self.clauses)


def parse_rule(text: str) -> Rule:
    """Parse a rule like "gold>=0.8 and agreement>=0.5"; ValueError pointing at the problem otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("rule is empty; example: gold>=0.8 and agreement>=0.5")
    if len(text) > 500:
        raise ValueError("rule is too long (500 characters at most)")
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN_RE.match(stripped, pos)
        if not m or m.end() == pos:
            raise ValueError(f"rule {text!r}: unexpected {stripped[pos:pos + 10]!r} at position {pos}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    clauses: list[tuple[Comparison, ...]] = []
    current: list[Comparison] = []
    i = 0

    def take(expected_kind: str, what: str) -> str:
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"rule {text!r}: expected {what} at the end")
        kind, value, p = tokens[i]
        if kind != expected_kind:
            raise ValueError(f"rule {text!r}: expected {what} at position {p}, got {value!r}")
        i += 1
        return value

    while True:
        if i < len(tokens) and tokens[i][0] == "word" and tokens[i][1].lower() not in RULE_NAMES:
            raise ValueError(f"rule {text!r}: {tokens[i][1]!r} at position {tokens[i][2]} is not one of "
                             f"{', '.join(RULE_NAMES)}")
        name = take("word", "a comparison like gold>=0.8").lower()
        op = take("op", "an operator (< <= > >= == !=)")
        num = take("num", "a number")
        current.append(Comparison(name, op, float(num)))
        if i == len(tokens):
            break
        word = take("word", "'and' or 'or'")
        if word.lower() not in ("and", "or"):
            raise ValueError(f"rule {text!r}: expected 'and' or 'or' at position {tokens[i - 1][2]}, got {word!r}")
        if word.lower() == "or":
            clauses.append(tuple(current))
            current = []
    clauses.append(tuple(current))
    return Rule(tuple(clauses))


# ------------------------------------------------------------------------------------ bookkeeping
@dataclass(frozen=True)
class ActionOutcome:
    """What one action did: `done` (called MTurk now), `already` (recorded before; nothing sent),
    `recovered` (an interrupted earlier call had gone through; now recorded)."""

    kind: str
    target: str
    outcome: str
    detail: str = ""


def _action(db: Session, kind: str, target: str) -> MTurkAction | None:
    return db.scalars(select(MTurkAction).where(MTurkAction.kind == kind, MTurkAction.target == target)).first()


def _begin(db: Session, study: Study, kind: str, target: str, now: datetime, **fields: Any) -> tuple[MTurkAction, bool]:
    """Return (the action row, whether it already existed); a new row is committed as pending."""
    row = _action(db, kind, target)
    if row is not None:
        return row, True
    row = MTurkAction(study_id=study.id, kind=kind, target=target, state=PENDING, created_at=now, **fields)
    db.add(row)
    try:
        db.commit()
    except IntegrityError:  # a concurrent run recorded it first
        db.rollback()
        row = _action(db, kind, target)
        if row is None:  # pragma: no cover - the conflicting row must exist
            raise
        return row, True
    return row, False


def _finish(db: Session, row: MTurkAction, now: datetime) -> None:
    row.state = DONE
    row.done_at = now
    db.add(row)
    db.commit()


def _abandon(db: Session, row: MTurkAction) -> None:
    db.delete(row)
    db.commit()


def _study(db: Session, study_name: str) -> Study:
    return get_study(db, study_name)


def _assignment(db: Session, study: Study, assignment_id: str) -> MTurkAssignment | None:
    return db.scalars(select(MTurkAssignment).where(MTurkAssignment.assignment_id == assignment_id,
                                                    MTurkAssignment.study_id == study.id)).first()


def _set_status(db: Session, study: Study, assignment_id: str, status: str, now: datetime) -> None:
    row = _assignment(db, study, assignment_id)
    if row is not None:
        row.mturk_status = status
        row.updated_at = now
        db.add(row)
        db.commit()


# ------------------------------------------------------------------------------------ sync / status
def sync_assignments(db: Session, mturk: MTurk, study_name: str, now: datetime | None = None,
                     records: dict[str, MTurkRecord] | None = None) -> list[MTurkAssignment]:
    """Fetch every assignment of the study's HITs (this environment) from MTurk and record it; return them.
    `records` (if given) is filled with what MTurk said of each assignment: its HIT, worker and status."""
    study = _study(db, study_name)
    now = now or utcnow()
    hits = db.scalars(select(MTurkHit).where(MTurkHit.study_id == study.id, MTurkHit.environment == mturk.environment)
                      .order_by(MTurkHit.batch_index)).all()
    seen: list[MTurkAssignment] = []
    for hit in hits:
        token = None
        while True:
            params: dict[str, Any] = {"HITId": hit.hit_id, "MaxResults": 100, "AssignmentStatuses": ASSIGNMENT_STATUSES}
            if token:
                params["NextToken"] = token
            resp = mturk.call("list_assignments_for_hit", **params)
            for a in resp.get("Assignments", []):
                seen.append(_upsert_assignment(db, study, hit.hit_id, a, now))
                if records is not None:
                    records[a["AssignmentId"]] = MTurkRecord(hit.hit_id, a["WorkerId"], a.get("AssignmentStatus"))
            token = resp.get("NextToken")
            if not token:
                break
    db.commit()
    return seen


def _upsert_assignment(db: Session, study: Study, hit_id: str, a: Mapping[str, Any], now: datetime) -> MTurkAssignment:
    row = db.scalars(select(MTurkAssignment).where(MTurkAssignment.assignment_id == a["AssignmentId"])).first()
    if row is None:
        row = MTurkAssignment(study_id=study.id, assignment_id=a["AssignmentId"], hit_id=hit_id,
                              worker_id=a["WorkerId"], accepted_at=a.get("AcceptTime"))
    elif row.study_id != study.id:
        raise ValueError(f"assignment {a['AssignmentId']} is recorded for another study")
    row.mturk_status = a.get("AssignmentStatus")
    row.mturk_submit_time = a.get("SubmitTime")
    row.updated_at = now
    db.add(row)
    db.flush()
    return row


@dataclass(frozen=True)
class HitStatus:
    """A HIT as MTurk reports it now."""

    hit_id: str
    batch_index: int
    status: str
    review_status: str | None
    max_assignments: int
    available: int
    pending: int
    completed: int
    expiration: datetime | None

    def to_json(self) -> dict[str, Any]:
        """Return the status as JSON."""
        return {"hit_id": self.hit_id, "batch_index": self.batch_index, "status": self.status,
                "review_status": self.review_status, "max_assignments": self.max_assignments,
                "available": self.available, "pending": self.pending, "completed": self.completed,
                "expiration": self.expiration.isoformat() if self.expiration else None}


def hit_statuses(db: Session, mturk: MTurk, study_name: str) -> list[HitStatus]:
    """Ask MTurk for the state of each of the study's HITs (this environment) and record it."""
    study = _study(db, study_name)
    out = []
    for hit in db.scalars(select(MTurkHit).where(MTurkHit.study_id == study.id, MTurkHit.environment == mturk.environment)
                          .order_by(MTurkHit.batch_index)).all():
        h = mturk.call("get_hit", HITId=hit.hit_id)["HIT"]
        hit.status = h.get("HITStatus")
        db.add(hit)
        out.append(HitStatus(hit_id=hit.hit_id, batch_index=hit.batch_index, status=h.get("HITStatus", ""),
                             review_status=h.get("HITReviewStatus"), max_assignments=int(h.get("MaxAssignments", 0)),
                             available=int(h.get("NumberOfAssignmentsAvailable", 0)),
                             pending=int(h.get("NumberOfAssignmentsPending", 0)),
                             completed=int(h.get("NumberOfAssignmentsCompleted", 0)), expiration=h.get("Expiration")))
    db.commit()
    return out


# ------------------------------------------------------------------------------------ actions
def _feedback(text: str | None, required: bool, what: str) -> str | None:
    if text is None or not text.strip():
        if required:
            raise ValueError(f"{what} needs --feedback: MTurk shows workers why their work was rejected")
        return None
    if len(text) > MAX_FEEDBACK:
        raise ValueError(f"feedback is too long ({len(text)} characters, MTurk allows {MAX_FEEDBACK})")
    return text


def _decide(db: Session, mturk: MTurk, study: Study, kind: str, assignment_id: str, feedback: str | None,
            now: datetime) -> ActionOutcome:
    other = REJECT if kind == APPROVE else APPROVE
    done_other = _action(db, other, assignment_id)
    if done_other is not None and done_other.state == DONE:
        raise ValueError(f"assignment {assignment_id} was already {other}d; it cannot be {kind}d now")
    row, existed = _begin(db, study, kind, assignment_id, now, message=feedback,
                          worker_id=_worker_of(db, study, assignment_id))
    target_status = "Approved" if kind == APPROVE else "Rejected"
    if existed and row.state == DONE:
        return ActionOutcome(kind, assignment_id, "already")
    if existed and _mturk_status(mturk, assignment_id) == target_status:
        _finish(db, row, now)
        _set_status(db, study, assignment_id, target_status, now)
        return ActionOutcome(kind, assignment_id, "recovered")
    params: dict[str, Any] = {"AssignmentId": assignment_id}
    if feedback:
        params["RequesterFeedback"] = feedback
    try:
        mturk.call("approve_assignment" if kind == APPROVE else "reject_assignment", **params)
    except ClientError as exc:
        if _mturk_status(mturk, assignment_id) == target_status:
            _finish(db, row, now)
            _set_status(db, study, assignment_id, target_status, now)
            return ActionOutcome(kind, assignment_id, "recovered")
        _abandon(db, row)
        raise ValueError(f"MTurk refused to {kind} assignment {assignment_id}: {error_message(exc)}") from None
    _finish(db, row, now)
    _set_status(db, study, assignment_id, target_status, now)
    return ActionOutcome(kind, assignment_id, "done")


def _mturk_status(mturk: MTurk, assignment_id: str) -> str | None:
    try:
        return mturk.call("get_assignment", AssignmentId=assignment_id)["Assignment"].get("AssignmentStatus")
    except ClientError:
        return None


def _worker_of(db: Session, study: Study, assignment_id: str) -> str | None:
    row = _assignment(db, study, assignment_id)
    return row.worker_id if row is not None else None


def approve(db: Session, mturk: MTurk, study_name: str, assignment_id: str, feedback: str | None = None,
            now: datetime | None = None) -> ActionOutcome:
    """Approve an assignment once (pays the reward); re-running reports `already` and calls nothing."""
    return _decide(db, mturk, _study(db, study_name), APPROVE, assignment_id,
                   _feedback(feedback, False, "approve"), now or utcnow())


def reject(db: Session, mturk: MTurk, study_name: str, assignment_id: str, feedback: str,
           now: datetime | None = None) -> ActionOutcome:
    """Reject an assignment once, with the feedback MTurk requires; re-running calls nothing."""
    return _decide(db, mturk, _study(db, study_name), REJECT, assignment_id,
                   _feedback(feedback, True, "reject"), now or utcnow())


def bonus_token(study: Study, assignment_id: str) -> str:
    """The deterministic UniqueRequestToken of the (single) bonus for an assignment."""
    digest = hashlib.sha256(f"{study_fingerprint(study)}|bonus|{assignment_id}".encode()).hexdigest()[:40]
    return f"subjlab-bonus-{digest}"


def bonus(db: Session, mturk: MTurk, study_name: str, assignment_id: str, amount: Decimal, reason: str,
          now: datetime | None = None) -> ActionOutcome:
    """Pay one bonus for an assignment (worker looked up from the recorded assignment); never twice.

    ValueError: unknown assignment (run `review` first), empty reason, or a different bonus already paid.
    """
    study = _study(db, study_name)
    now = now or utcnow()
    if not reason or not reason.strip():
        raise ValueError("a bonus needs --reason (MTurk shows it to the worker)")
    if len(reason) > MAX_FEEDBACK:
        raise ValueError(f"reason is too long ({len(reason)} characters, at most {MAX_FEEDBACK})")
    worker = _worker_of(db, study, assignment_id)
    if worker is None:
        raise ValueError(f"assignment {assignment_id} is not recorded for study {study.name!r}; run `subjlab mturk review` first")
    amount_text = money(amount)
    existing = _action(db, BONUS, assignment_id)
    if existing is not None and existing.amount != amount_text:
        raise ValueError(f"assignment {assignment_id} already has a bonus of ${existing.amount}; one bonus per assignment")
    token = bonus_token(study, assignment_id)
    row, existed = _begin(db, study, BONUS, assignment_id, now, worker_id=worker, amount=amount_text,
                          message=reason, request_token=token)
    if existed and row.state == DONE:
        return ActionOutcome(BONUS, assignment_id, "already", f"${amount_text}")
    if existed and _bonus_paid(mturk, assignment_id, worker, amount_text):
        _finish(db, row, now)
        return ActionOutcome(BONUS, assignment_id, "recovered", f"${amount_text}")
    try:
        mturk.call("send_bonus", WorkerId=worker, BonusAmount=amount_text, AssignmentId=assignment_id,
                   Reason=reason, UniqueRequestToken=token)
    except ClientError as exc:
        if _bonus_paid(mturk, assignment_id, worker, amount_text):
            _finish(db, row, now)
            return ActionOutcome(BONUS, assignment_id, "recovered", f"${amount_text}")
        _abandon(db, row)
        raise ValueError(f"MTurk refused the bonus for {assignment_id}: {error_message(exc)}") from None
    _finish(db, row, now)
    return ActionOutcome(BONUS, assignment_id, "done", f"${amount_text}")


def _bonus_paid(mturk: MTurk, assignment_id: str, worker: str, amount: str) -> bool:
    try:
        resp = mturk.call("list_bonus_payments", AssignmentId=assignment_id, MaxResults=100)
    except ClientError:
        return False
    return any(p.get("WorkerId") == worker and p.get("BonusAmount") == amount for p in resp.get("BonusPayments", []))


def _hits(db: Session, mturk: MTurk, study: Study, hit_ids: Sequence[str] | None) -> list[str]:
    known = list(db.scalars(select(MTurkHit.hit_id).where(MTurkHit.study_id == study.id,
                                                          MTurkHit.environment == mturk.environment)
                            .order_by(MTurkHit.batch_index)))
    if not hit_ids:
        return known
    unknown = [h for h in hit_ids if h not in known]
    if unknown:
        raise ValueError(f"HIT {unknown[0]} is not a {mturk.environment} HIT of study {study.name!r}")
    return list(hit_ids)


def expire(db: Session, mturk: MTurk, study_name: str, hit_ids: Sequence[str] | None = None,
           now: datetime | None = None) -> list[ActionOutcome]:
    """Expire the study's HITs (all, or `hit_ids`) now: no new workers can accept them. Once per HIT."""
    return _once_per_hit(db, mturk, study_name, hit_ids, now, EXPIRE, "expire", "",
                         lambda hit_id: mturk.call("update_expiration_for_hit", HITId=hit_id, ExpireAt=EXPIRE_NOW))


def delete(db: Session, mturk: MTurk, study_name: str, hit_ids: Sequence[str] | None = None,
           now: datetime | None = None) -> list[ActionOutcome]:
    """Delete the study's HITs on MTurk (they must be expired and fully reviewed). Once per HIT."""
    return _once_per_hit(db, mturk, study_name, hit_ids, now, DELETE, "delete",
                         " (expire it and review every assignment first)",
                         lambda hit_id: mturk.call("delete_hit", HITId=hit_id))


def _once_per_hit(db: Session, mturk: MTurk, study_name: str, hit_ids: Sequence[str] | None, now: datetime | None,
                  action: str, verb: str, hint: str, call) -> list[ActionOutcome]:
    """Run `call(hit_id)` for each of the study's HITs (all, or `hit_ids`) that has not had `action` yet,
    recording it (`_begin`/`_finish`) so that it happens once; ValueError naming the HIT (with `hint`) when
    MTurk refuses."""
    study = _study(db, study_name)
    now = now or utcnow()
    out = []
    for hit_id in _hits(db, mturk, study, hit_ids):
        row, existed = _begin(db, study, action, hit_id, now)
        if existed and row.state == DONE:
            out.append(ActionOutcome(action, hit_id, "already"))
            continue
        try:
            call(hit_id)
        except ClientError as exc:
            _abandon(db, row)
            raise ValueError(f"MTurk refused to {verb} HIT {hit_id}{hint}: {error_message(exc)}") from None
        _finish(db, row, now)
        out.append(ActionOutcome(action, hit_id, "done"))
    return out


def grant_participation(db: Session, mturk: MTurk, study_name: str, worker_ids: Sequence[str],
                        now: datetime | None = None) -> list[ActionOutcome]:
    """Give each worker the study's "took part" qualification once, so they are kept out of its HITs.

    Does nothing when the study has no such qualification in this environment (published without it).
    """
    study = _study(db, study_name)
    now = now or utcnow()
    qual = db.scalars(select(MTurkQualification).where(MTurkQualification.study_id == study.id,
                                                       MTurkQualification.environment == mturk.environment)).first()
    if qual is None:
        return []
    out = []
    for worker in dict.fromkeys(worker_ids):
        target = f"{qual.qualification_type_id}:{worker}"
        row, existed = _begin(db, study, QUALIFY, target, now, worker_id=worker)
        if existed and row.state == DONE:
            out.append(ActionOutcome(QUALIFY, target, "already"))
            continue
        try:
            mturk.call("associate_qualification_with_worker", QualificationTypeId=qual.qualification_type_id,
                       WorkerId=worker, IntegerValue=1, SendNotification=False)
        except ClientError as exc:
            _abandon(db, row)
            raise ValueError(f"MTurk refused to give worker {worker} the participation qualification: "
                             f"{error_message(exc)}") from None
        _finish(db, row, now)
        out.append(ActionOutcome(QUALIFY, target, "done"))
    return out


# ------------------------------------------------------------------------------------ review
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
    study = _study(db, study_name)
    now = now or utcnow()
    if reject_if is not None:
        _feedback(feedback, True, "--reject-if")
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
