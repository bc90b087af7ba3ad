"""A session's current lease: read it back, or renew it if it expired and nobody took the slot."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from annotation_server.cache import StudyMeta
from annotation_server.db import FastStatement
from annotation_server.sqlparts import (
    LEASE_EXPIRES,
    SQL_LEASED,
    NOW,
    SESSION_ID,
    WORKER_PK,
)
from annotation_server.models import SLOT_LEASED, Assignment
from annotation_server.claims import Claimed, claimed_from_row, returning_columns


SLOTS = Assignment.__table__.c

@lru_cache(maxsize=None)
def _held_statements(kind: str) -> tuple[FastStatement, FastStatement]:
    """(SELECT a held slot by :lid, UPDATE renewing it for :wpk's session :sess until :exp) with the RETURNING
    columns."""
    table = Assignment.__table__
    lid = bindparam("lid")
    read = select(*returning_columns(table, kind)).where(table.c.id == lid)
    renew = (update(table).where(table.c.id == lid, table.c.worker_id == WORKER_PK, table.c.session_id == SESSION_ID,
                                 table.c.status == SQL_LEASED)
             .values(leased_at=NOW, lease_expires=LEASE_EXPIRES).returning(*returning_columns(table, kind)))
    return FastStatement(read), FastStatement(renew)


def held_lease(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, lease_id: int, expires: datetime,
               now: datetime, lease_seconds: float) -> Claimed | None:
    """Return the session's current lease `lease_id` (renewed if it expired and nobody took it), or None."""
    read, renew = _held_statements(meta.kind)
    if expires is not None and expires >= now:
        row = read.first(conn, {"lid": lease_id})
    else:
        row = renew.first(conn, {"lid": lease_id, "wpk": worker_pk, "sess": session_id, "now": now,
                                 "exp": now + timedelta(seconds=lease_seconds)})
    return claimed_from_row(row, meta.kind) if row is not None else None



def own_lease(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
               lease_seconds: float) -> Claimed | None:
    row = conn.execute(select(SLOTS.id, SLOTS.lease_expires).where(SLOTS.study_id == meta.id, SLOTS.worker_id == worker_pk,
                                                          SLOTS.session_id == session_id, SLOTS.status == SLOT_LEASED)
                       .order_by(SLOTS.lease_expires.desc(), SLOTS.id.desc()).limit(1)).first()  # rare: a worker racing itself
    if row is None:
        return None
    return held_lease(conn, meta, worker_pk, session_id, row.id, row.lease_expires, now, lease_seconds)
