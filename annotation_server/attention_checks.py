"""Leasing an attention check (a new slot, one statement): labeling checks as texts of their own, pairwise
checks in their pair's place (`pair_checks`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import (
    String,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from annotation_server import pair_checks
from annotation_server.cache import StudyMeta
from annotation_server.sqlparts import (
    LEASE_EXPIRES,
    SQL_LEASED,
    NOW,
    SESSION_ID,
    STUDY_ID,
    WORKER_PK,
    const,
)
from annotation_server.models import LABELING, Assignment, GoldItem
from annotation_server.claims import Claimed, claimed_from_row, returning_columns, uses_lateral, window_for


SLOTS = Assignment.__table__.c

@lru_cache(maxsize=None)
def _gold_statement(kind: str, lateral: bool):
    """INSERT ... SELECT of a new slot for an unseen attention check, only while a regular unit is still free
    for the worker (checks come between real units). Parameters :sid, :q, :wpk, :sess, :now, :exp."""
    return gold_insert_for(kind, WORKER_PK, SESSION_ID, window_for(kind, 1, lateral, WORKER_PK).exists())


def gold_insert_for(kind: str, wpk, sess, guard=None):
    """`_gold_statement` for the worker and session given by SQL expressions, inserting only where SQL
    condition `guard` (if given) holds. A labeling check is a unit of its own ("g<id>"); a pairwise check
    takes its pair's place in the worker's sequence (`pair_checks`)."""
    G = GoldItem.__table__
    table = Assignment.__table__
    if kind != LABELING:
        return (insert(table).from_select(pair_checks.CHECK_COLUMNS, pair_checks.check_source(wpk, sess, guard))
                .returning(*returning_columns(table, kind, texts=False)))
    g2 = table.alias("g2")
    unseen = ~select(g2.c.id).where(g2.c.gold_id == G.c.id, g2.c.worker_id == wpk).exists()
    source = (select(STUDY_ID, const("g") + cast(G.c.id, String), wpk, G.c.id, G.c.left_task_id, G.c.right_task_id,
                     wpk, sess, SQL_LEASED, NOW, LEASE_EXPIRES)
              .where(G.c.study_id == STUDY_ID, unseen, *([guard] if guard is not None else []))
              .order_by(func.random()).limit(const(1)))
    return (insert(table).from_select(["study_id", "unit_key", "slot", "gold_id", "left_task_id", "right_task_id",
                                       "worker_id", "session_id", "status", "leased_at", "lease_expires"], source)
            .returning(*returning_columns(table, kind, texts=False)))


def take_gold(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
              lease_seconds: float) -> Claimed | None:
    """Lease an attention check the worker has not seen (a new slot, one statement); None if none is left, or
    no regular unit is left for the worker. A labeling check's text comes from the metadata cache (the
    view fills it in), so a check costs the statements a regular unit costs: no timing tells it apart."""
    params = {"sid": meta.id, "q": meta.quota, "wpk": worker_pk, "sess": session_id, "now": now,
              "exp": now + timedelta(seconds=lease_seconds)}
    try:
        row = conn.execute(_gold_statement(meta.kind, uses_lateral(conn)), params).first()
    except IntegrityError:  # the same check leased to this worker by a concurrent request of theirs
        return None
    if row is None:
        return None
    return claimed_from_row(tuple(row) + (None, None), meta.kind, new_gold=True)
