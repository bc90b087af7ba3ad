"""MTurk actions on a study's work: approve, reject, bonus, expire, delete, grant a participation
qualification; each recorded so that it happens once.

Every action is recorded in `mturk_action` with UNIQUE(kind, target), written as `pending` (and
committed) BEFORE the MTurk call and marked `done` after it, so:
- re-running never approves, rejects or bonuses twice: a `done` action is skipped;
- a run interrupted between the call and the bookkeeping is repaired on the next run: a `pending`
  approval/rejection is checked with `get_assignment`, a pending bonus with `list_bonus_payments`, and a
  repeated `send_bonus` carries the same deterministic UniqueRequestToken, so MTurk refuses to pay twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Sequence

from botocore.exceptions import ClientError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server.clock import utcnow
from annotation_server.models import Study
from annotation_server.mturk.client import MTurk, error_message
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
from annotation_server.studies import get_study

#: `update_expiration_for_hit` with a time in the past expires a HIT at once.
EXPIRE_NOW = datetime(2015, 1, 1, tzinfo=timezone.utc)
MAX_FEEDBACK = 1024


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


def checked_feedback(text: str | None, required: bool, what: str) -> str | None:
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
    return _decide(db, mturk, get_study(db, study_name), APPROVE, assignment_id,
                   checked_feedback(feedback, False, "approve"), now or utcnow())


def reject(db: Session, mturk: MTurk, study_name: str, assignment_id: str, feedback: str,
           now: datetime | None = None) -> ActionOutcome:
    """Reject an assignment once, with the feedback MTurk requires; re-running calls nothing."""
    return _decide(db, mturk, get_study(db, study_name), REJECT, assignment_id,
                   checked_feedback(feedback, True, "reject"), now or utcnow())


def bonus_token(study: Study, assignment_id: str) -> str:
    """The deterministic UniqueRequestToken of the (single) bonus for an assignment."""
    digest = hashlib.sha256(f"{study_fingerprint(study)}|bonus|{assignment_id}".encode()).hexdigest()[:40]
    return f"subjlab-bonus-{digest}"


def bonus(db: Session, mturk: MTurk, study_name: str, assignment_id: str, amount: Decimal, reason: str,
          now: datetime | None = None) -> ActionOutcome:
    """Pay one bonus for an assignment (worker looked up from the recorded assignment); never twice.

    ValueError: unknown assignment (run `review` first), empty reason, or a different bonus already paid.
    """
    study = get_study(db, study_name)
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
    study = get_study(db, study_name)
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
    study = get_study(db, study_name)
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
