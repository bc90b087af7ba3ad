"""Leases on slots: what "free" means, ending a lease with an answer, and returning expired leases.

Every state change is ONE conditional UPDATE whose WHERE clause states what must still be true, and the
caller checks the row count (taking a slot: `scheduling.claim`; renewing one's own lease:
`scheduling.held_lease`). Two workers racing for the same slot: the database serialises the two
UPDATEs (SQLite: one writer at a time; PostgreSQL: the row lock, and READ COMMITTED re-evaluates the
WHERE clause on the winner's new row), so exactly one sees rowcount 1. A worker racing itself for two
slots of one unit is stopped by UNIQUE(study_id, unit_key, worker_id).

A slot is free when it is `open`, or `leased` with `lease_expires` in the past: abandoned work returns
to the pool simply by expiring, with no sweeper process needed. `reclaim_expired` also resets such
slots explicitly (for reports and after a crash).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Connection, Engine

from annotation_server.models import SLOT_ANSWERED, SLOT_LEASED, SLOT_OPEN, Assignment

A = Assignment.__table__.c


def free_clause(now: datetime):
    """SQL condition: the slot can be handed out now (open, or its lease expired)."""
    return or_(A.status == SLOT_OPEN, and_(A.status == SLOT_LEASED, A.lease_expires < now))


def write_engine(engine: Engine) -> Engine:
    """Return `engine` set to start transactions with BEGIN IMMEDIATE on SQLite (no-op elsewhere)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def mark_answered(conn: Connection, slot_id: int, session_id: int, now: datetime) -> bool:
    """Inside the answer's transaction: turn the session's unexpired lease into `answered`; False if the
    lease is gone (expired, or the slot belongs to another session, or it is already answered)."""
    result = conn.execute(
        update(Assignment.__table__)
        .where(A.id == slot_id, A.session_id == session_id, A.status == SLOT_LEASED, A.lease_expires >= now)
        .values(status=SLOT_ANSWERED, answered_at=now)
    )
    return result.rowcount == 1


def reclaim_expired(engine: Engine, now: datetime, study_id: int | None = None) -> int:
    """Return expired leases to the pool explicitly (status open, no worker); return how many.

    Gold (attention-check) slots belong to one worker; an expired one is left for that worker to renew.
    """
    cond = and_(A.status == SLOT_LEASED, A.lease_expires < now, A.gold_id.is_(None))
    if study_id is not None:
        cond = and_(cond, A.study_id == study_id)
    with write_engine(engine).begin() as conn:
        return conn.execute(
            update(Assignment.__table__).where(cond).values(status=SLOT_OPEN, worker_id=None, session_id=None, leased_at=None,
                                                           lease_expires=None)
        ).rowcount
