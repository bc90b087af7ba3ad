"""Tables for the crowd platforms: MTurk HITs, MTurk assignments, recorded actions, Prolific sessions.

They share the server's metadata (`annotation_server.models.Base`), so the Alembic environment and the
core's schema checks see them; the revision that creates them is `migrations/versions/mturk_0001_*.py`.

Nothing secret is stored: no AWS credentials, no worker tokens (the core keeps only token hashes), and
the request tokens kept here are deterministic hashes that exist to make retried calls idempotent.

Idempotency lives in the UNIQUE constraints:
- one HIT per (study, environment, batch index) and per request token;
- one MTurk assignment row per assignment id (bound to one worker);
- one action per (kind, target): an assignment is approved, rejected or bonused at most once, a HIT
  expired or deleted at most once, a worker given the study's participation qualification once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field

from annotation_server.models import Base

SANDBOX, LIVE = "sandbox", "live"

#: Action kinds recorded in `mturk_action`.
APPROVE, REJECT, BONUS, EXPIRE, DELETE, QUALIFY = "approve", "reject", "bonus", "expire", "delete", "qualify"
#: Action states: written as pending before the MTurk call, done after it succeeded.
PENDING, DONE = "pending", "done"


def _time(nullable: bool = False):
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class MTurkHit(Base, table=True):
    """A HIT created for a study (one per batch index and environment)."""

    __tablename__ = "mturk_hit"
    __table_args__ = (
        UniqueConstraint("hit_id"),
        UniqueConstraint("request_token"),
        UniqueConstraint("study_id", "environment", "batch_index"),
        Index("ix_mturk_hit_study_id", "study_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    environment: str = Field(max_length=16)
    #: The MTurk API endpoint used (a URL; never credentials).
    endpoint: str = Field(max_length=300)
    batch_index: int
    request_token: str = Field(max_length=64)
    hit_id: str = Field(max_length=64)
    hit_type_id: Optional[str] = Field(default=None, max_length=64)
    hit_group_id: Optional[str] = Field(default=None, max_length=64)
    external_url: str = Field(max_length=500)
    title: str = Field(max_length=200)
    reward: str = Field(max_length=16)
    max_assignments: int
    duration_seconds: int
    lifetime_seconds: int
    auto_approval_seconds: int
    qualification_type_id: Optional[str] = Field(default=None, max_length=64)
    #: Last HITStatus seen from MTurk (Assignable, Unassignable, Reviewable, Reviewing, Disposed).
    status: Optional[str] = Field(default=None, max_length=32)
    created_at: datetime = _time()
    expires_at: Optional[datetime] = _time(nullable=True)


class MTurkQualification(Base, table=True):
    """The qualification type marking workers who already took part in a study (one per environment)."""

    __tablename__ = "mturk_qualification"
    __table_args__ = (UniqueConstraint("study_id", "environment"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    environment: str = Field(max_length=16)
    qualification_type_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = _time()


class MTurkAssignment(Base, table=True):
    """An MTurk assignment as seen by the entry page and by `review`.

    `answered_before` is the worker's answered count in the study when the assignment was accepted, so
    the units of this assignment are the answers beyond it. `mturk_status` is what MTurk last reported
    (Submitted, Approved, Rejected).
    """

    __tablename__ = "mturk_assignment"
    __table_args__ = (UniqueConstraint("assignment_id"), Index("ix_mturk_assignment_study_id", "study_id"))

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    assignment_id: str = Field(max_length=128)
    hit_id: str = Field(max_length=128)
    worker_id: str = Field(max_length=128)
    turk_submit_to: Optional[str] = Field(default=None, max_length=200)
    answered_before: int = 0
    accepted_at: Optional[datetime] = _time(nullable=True)
    submitted_units: Optional[int] = None
    submitted_at: Optional[datetime] = _time(nullable=True)
    mturk_status: Optional[str] = Field(default=None, max_length=32)
    mturk_submit_time: Optional[datetime] = _time(nullable=True)
    updated_at: Optional[datetime] = _time(nullable=True)


class MTurkAction(Base, table=True):
    """One recorded MTurk action (approve, reject, bonus, expire, delete, qualify) on one target.

    `target` is the assignment id (approve, reject, bonus), the HIT id (expire, delete) or
    "<qualification type id>:<worker id>" (qualify). Written `pending` before the call, `done` after.
    """

    __tablename__ = "mturk_action"
    __table_args__ = (UniqueConstraint("kind", "target"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    kind: str = Field(max_length=16)
    target: str = Field(max_length=200)
    worker_id: Optional[str] = Field(default=None, max_length=128)
    amount: Optional[str] = Field(default=None, max_length=16)
    message: Optional[str] = Field(default=None, max_length=1024)
    request_token: Optional[str] = Field(default=None, max_length=64)
    state: str = Field(default=PENDING, max_length=16)
    created_at: datetime = _time()
    done_at: Optional[datetime] = _time(nullable=True)


class ProlificStudy(Base, table=True):
    """Prolific settings of a study: where a finished participant is sent (the completion URL)."""

    __tablename__ = "prolific_study"
    __table_args__ = (UniqueConstraint("study_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    completion_url: str = Field(max_length=500)
    updated_at: datetime = _time()


class ProlificSession(Base, table=True):
    """A Prolific session (SESSION_ID) bound to one participant (PROLIFIC_PID) in one study."""

    __tablename__ = "prolific_session"
    __table_args__ = (UniqueConstraint("session_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    session_id: str = Field(max_length=128)
    prolific_pid: str = Field(max_length=128)
    prolific_study_id: str = Field(max_length=128)
    answered_before: int = 0
    started_at: datetime = _time()
    completed_at: Optional[datetime] = _time(nullable=True)


TABLES = [MTurkHit, MTurkQualification, MTurkAssignment, MTurkAction, ProlificStudy, ProlificSession]
