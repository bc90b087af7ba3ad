"""Leases on slots: take a free slot, keep or renew one's own, and tell when a lease is no longer valid.

Every state change is ONE conditional UPDATE whose WHERE clause states what must still be true, and the
caller checks the row count. Two workers racing for the same slot: the database serialises the two
UPDATEs (SQLite: one writer at a time, `BEGIN IMMEDIATE`; PostgreSQL: the row lock, and READ COMMITTED
re-evaluates the WHERE clause on the winner's new row), so exactly one sees rowcount 1. A worker racing
itself for two slots of one unit is stopped by UNIQUE(study_id, unit_key, worker_id).

A slot is free when it is `open`, or `leased` with `lease_expires` in the past: abandoned work returns
to the pool simply by expiring, with no sweeper process needed. `reclaim_expired` also resets such
slots explicitly (for reports and after a crash).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from annotation_server.models import SLOT_ANSWERED, SLOT_LEASED, SLOT_OPEN, Assignment

A = Assignment.__table__.c


def free_clause(now: datetime):
    """SQL condition: the slot can be handed out now (open, or its lease expired)."""
    return or_(A.status == SLOT_OPEN, and_(A.status == SLOT_LEASED, A.lease_expires < now))


@dataclass(frozen=True)
class Lease:
    """A slot leased to a worker until `expires`."""

    assignment_id: int
    expires: datetime


def write_engine(engine: Engine) -> Engine:
    """Return `engine` set to start transactions with BEGIN IMMEDIATE on SQLite (no-op elsewhere)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def try_take(engine: Engine, slot_id: int, worker_pk: int, now: datetime, lease_seconds: float) -> Lease | None:
    """Lease a free slot to a worker; return the Lease, or None when someone else got it first or the
    worker already holds a slot of the same unit."""
    expires = now + timedelta(seconds=lease_seconds)
    stmt = (
        update(Assignment.__table__)
        .where(A.id == slot_id, free_clause(now))
        .values(status=SLOT_LEASED, worker_id=worker_pk, leased_at=now, lease_expires=expires)
    )
    try:
        with write_engine(engine).begin() as conn:
            if conn.execute(stmt).rowcount != 1:
                return None
    except IntegrityError:
        return None
    return Lease(slot_id, expires)


def current_lease(engine: Engine, study_id: int, worker_pk: int, now: datetime, lease_seconds: float) -> Lease | None:
    """Return the worker's open lease in a study (renewed if it had expired and nobody took it), or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(A.id, A.lease_expires)
            .where(A.study_id == study_id, A.worker_id == worker_pk, A.status == SLOT_LEASED)
            .order_by(A.lease_expires.desc())
            .limit(1)
        ).first()
        conn.rollback()
    if row is None:
        return None
    slot_id, expires = row
    if expires is not None and expires >= now:
        return Lease(slot_id, expires)
    new_expires = now + timedelta(seconds=lease_seconds)
    with write_engine(engine).begin() as conn:
        renewed = conn.execute(
            update(Assignment.__table__)
            .where(A.id == slot_id, A.worker_id == worker_pk, A.status == SLOT_LEASED)
            .values(leased_at=now, lease_expires=new_expires)
        ).rowcount
    return Lease(slot_id, new_expires) if renewed == 1 else None


def mark_answered(conn: Connection, slot_id: int, worker_pk: int, now: datetime) -> bool:
    """Inside the answer's transaction: turn the worker's unexpired lease into `answered`; False if the
    lease is gone (expired, or the slot belongs to someone else, or it is already answered)."""
    result = conn.execute(
        update(Assignment.__table__)
        .where(A.id == slot_id, A.worker_id == worker_pk, A.status == SLOT_LEASED, A.lease_expires >= now)
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
            update(Assignment.__table__).where(cond).values(status=SLOT_OPEN, worker_id=None, leased_at=None, lease_expires=None)
        ).rowcount
