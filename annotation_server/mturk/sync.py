"""A study's MTurk assignments: synced from MTurk into `mturk_assignment`, and the HITs' status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlmodel import Session

from annotation_server.clock import utcnow
from annotation_server.models import Study
from annotation_server.mturk.client import MTurk
from annotation_server.mturk.identity import MTurkRecord
from annotation_server.mturk.models import MTurkAssignment, MTurkHit
from annotation_server.studies import get_study

#: The assignment statuses a sync asks MTurk for.
ASSIGNMENT_STATUSES = ["Submitted", "Approved", "Rejected"]


def sync_assignments(db: Session, mturk: MTurk, study_name: str, now: datetime | None = None,
                     records: dict[str, MTurkRecord] | None = None) -> list[MTurkAssignment]:
    """Fetch every assignment of the study's HITs (this environment) from MTurk and record it; return them.
    `records` (if given) is filled with what MTurk said of each assignment: its HIT, worker and status."""
    study = get_study(db, study_name)
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
    study = get_study(db, study_name)
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
