"""Claiming a free slot in one statement (`claim`), and the state read with the claim as one statement on
PostgreSQL (`serve_statement`): the window of candidate units, the conditional UPDATE, its RETURNING
columns (`scheduling` module doc: how it stays O(log n) in the slots of a study).

The statements are hand-written SQLAlchemy Core, built once per study kind (`lru_cache`) and run on the
driver's cursor (`db.FastStatement`): one statement per request is what keeps the hot path at a few
milliseconds (an ORM unit of work would be several statements and round trips)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection, Row

from annotation_server import pair_checks
from annotation_server.cache import StudyMeta
from annotation_server.db import FastStatement
from annotation_server.sqlparts import (
    LEASE_EXPIRES,
    SQL_LEASED,
    NOW,
    SQL_OPEN,
    SESSION_ID,
    STUDY_ID,
    WORKER_PK,
    QUOTA,
    const,
)
from annotation_server.models import (
    LABELING,
    Assignment,
    GoldItem,
    Item,
)
from annotation_server.worker_state import check_params, keeps_pairs, unit_table


SLOTS = Assignment.__table__.c

#: Units considered per claim (the least answered ones); one of the least answered among them is picked.
WINDOW = 16

# ------------------------------------------------------------------------------------------ candidates
def _free(t, now=NOW):
    """SQL condition on slot table (alias) `t`: the slot can be handed out at `now` (default: the :now parameter)."""
    return or_(t.c.status == SQL_OPEN, and_(t.c.status == SQL_LEASED, t.c.lease_expires < now))


@lru_cache(maxsize=None)
def _window(kind: str, size: int | None, lateral: bool = False):
    """SELECT (slot_id, n) of up to `size` units the worker may get, least answered first: one free slot
    per unit below quota that the worker has not seen (module doc). Parameters :sid, :q, :wpk, :now.

    `lateral` (PostgreSQL): find each unit's free slot with ONE probe of its slots, a LATERAL subquery
    that also drops units without a free slot; otherwise (SQLite has no LATERAL) an EXISTS probe filters
    the units and a scalar subquery picks the slot (two probes per unit)."""
    return window_for(kind, size, lateral, WORKER_PK)


def window_for(kind: str, size: int | None, lateral: bool, wpk, reserve=None):
    """`_window` for the worker given by SQL expression `wpk` (a bind parameter or a scalar subquery).

    `reserve` (a SELECT of unit ids: the pairs kept back for the worker's attention checks, `pair_checks`): each
    row also says in column `r` whether its unit is one of them (1) or not (0)."""
    unit, col, prefix = unit_table(kind)
    a = Assignment.__table__.alias("a")
    m = Assignment.__table__.alias("m")
    # a pairwise check's slot belongs to its pair's unit (`pair_checks`) but is never one of its free slots
    free_slot = select(a.c.id).where(a.c[col] == unit.c.id, _free(a), *([a.c.gold_id.is_(None)] if kind != LABELING else []))
    # which free slot of the unit: any (labeling slots are interchangeable); pairwise slots differ in the
    # left/right order shown, so pick one at random, as the order shown to each worker should be
    pick_slot = (free_slot if kind == LABELING else free_slot.order_by(func.random())).limit(const(1))
    seen = select(m.c.id).where(m.c.study_id == STUDY_ID, m.c.unit_key == const(prefix) + cast(unit.c.id, String),
                                m.c.worker_id == wpk).exists()
    if lateral:
        slot = pick_slot.lateral("s")
        stmt = (select(slot.c.id.label("slot_id"), unit.c.n_answers.label("n"))
                .select_from(unit.join(slot, true()))
                .where(unit.c.study_id == STUDY_ID, unit.c.n_answers < QUOTA, ~seen))
    else:
        stmt = (select(pick_slot.scalar_subquery().label("slot_id"), unit.c.n_answers.label("n"))
                .where(unit.c.study_id == STUDY_ID, unit.c.n_answers < QUOTA, free_slot.exists(), ~seen))
    if reserve is not None:
        stmt = stmt.add_columns(case((unit.c.id.in_(reserve), const(1)), else_=const(0)).label("r"))
    stmt = stmt.order_by(unit.c.n_answers)
    return stmt.limit(const(size)) if size is not None else stmt


@lru_cache(maxsize=None)
def _fast_window(kind: str, size: int | None, lateral: bool) -> FastStatement:
    """`_window` ready for the hot path."""
    return FastStatement(_window(kind, size, lateral))


def uses_lateral(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _window_params(study_id: int, quota: int, worker_pk: int, now: datetime) -> dict[str, Any]:
    return {"sid": study_id, "q": quota, "wpk": worker_pk, "now": now}


def has_free_unit(conn: Connection, kind: str, study_id: int, quota: int, worker_pk: int, now: datetime) -> bool:
    """Return True when some free slot of a unit the worker has not seen exists (what `next` could give)."""
    return _fast_window(kind, 1, uses_lateral(conn)).first(conn, _window_params(study_id, quota, worker_pk, now)) is not None


def candidate_slots(conn: Connection, study, worker_pk: int, now: datetime, limit: int = WINDOW) -> list[int]:
    """Return up to `limit` free slot ids (one per unit) the worker may take, least answered first, random
    among equals. `study` needs `.id`, `.kind` and the quota (`.quota`, or `.labels_per_item` /
    `.judgments_per_pair` of a Study row)."""
    quota = getattr(study, "quota", None) or (
        (study.labels_per_item if study.kind == LABELING else study.judgments_per_pair) or 1)
    rows = conn.execute(_window(study.kind, WINDOW, uses_lateral(conn)), _window_params(study.id, quota, worker_pk, now)).all()
    rng = random.Random()
    rows = sorted(rows, key=lambda r: (r.n, rng.random()))
    return [r.slot_id for r in rows[:limit]]


# ------------------------------------------------------------------------------------------ leasing
@dataclass(frozen=True)
class Claimed:
    """A slot leased to the worker, with what the assignment page needs from the database.

    `item_key`/`item_text`: the labeling item (or labeling attention check) shown; None for pairwise (and for
    a check whose text the view takes from the metadata cache: `gold_id`).
    `gold`: whether it is an attention check; `new_regular`/`new_gold`: whether this request leased it
    (for the progress figures; False when the worker's existing lease was handed back)."""

    assignment_id: int
    lease_expires: datetime
    left_task_id: int | None
    right_task_id: int | None
    gold: bool
    item_key: str | None
    item_text: str | None
    new_regular: bool = False
    new_gold: bool = False
    gold_id: int | None = None


def returning_columns(t, kind: str, texts: bool = True):
    """RETURNING columns of a leasing UPDATE (or SELECT) on slot table `t`; labeling (if `texts`): the shown
    item's id and text, by subqueries correlated to `t`. (SQLAlchemy renders SQLite's RETURNING clause with
    unqualified column names; by SQL's scoping rules `id` then names the subquery's own table, and
    `item_id`/`gold_id`, which items and checks do not have, name the slot: the same meaning as on
    PostgreSQL, where they are qualified.)"""
    cols = [t.c.id, t.c.lease_expires, t.c.left_task_id, t.c.right_task_id, t.c.gold_id]
    if kind == LABELING and texts:
        i, g = Item.__table__.alias("ri"), GoldItem.__table__.alias("rg")
        key = func.coalesce(select(i.c.external_id).where(i.c.id == t.c.item_id).scalar_subquery(),
                            select(g.c.key).where(g.c.id == t.c.gold_id).scalar_subquery())
        text = func.coalesce(select(i.c.text).where(i.c.id == t.c.item_id).scalar_subquery(),
                             select(g.c.text).where(g.c.id == t.c.gold_id).scalar_subquery())
        cols += [key.label("item_key"), text.label("item_text")]
    return cols


def claimed_from_row(row: Row | tuple, kind: str, **flags: bool) -> Claimed:
    """A Claimed from a row of `_returning`'s columns, by position (id, lease_expires, left_task_id,
    right_task_id, gold_id[, item_key, item_text])."""
    labeling = kind == LABELING
    return Claimed(assignment_id=row[0], lease_expires=row[1], left_task_id=row[2], right_task_id=row[3],
                   gold=row[4] is not None, item_key=row[5] if labeling else None,
                   item_text=row[6] if labeling else None, gold_id=row[4], **flags)


@lru_cache(maxsize=None)
def _fast_claim_statement(kind: str, lateral: bool, keeps_pairs: bool = False, capped: bool = False) -> FastStatement:
    """`_claim_statement` ready for the hot path."""
    return FastStatement(_claim_statement(kind, lateral, keeps_pairs, capped))


@lru_cache(maxsize=None)
def _claim_statement(kind: str, lateral: bool = False, keeps_pairs: bool = False, capped: bool = False):
    """The claiming UPDATE (module doc). Parameters :sid, :q, :wpk, :sess, :now, :exp; with `keeps_pairs` (a
    pairwise study with attention checks, `pair_checks`) also :gold_every and, if `capped`, :cap."""
    return claim_for(kind, lateral, WORKER_PK, SESSION_ID, reserve=pair_checks.reserved_pairs(WORKER_PK, capped) if keeps_pairs else None)


def claim_for(kind: str, lateral: bool, wpk, sess, guard=None, reserve=None):
    """`_claim_statement` for the worker and session given by SQL expressions `wpk` and `sess`, leasing only
    where SQL condition `guard` (if given) holds; units in `reserve` (pairs kept back for the worker's
    checks) only when no other unit of the window is free."""
    table = Assignment.__table__
    w = window_for(kind, WINDOW, lateral, wpk, reserve).subquery("w")
    c = table.alias("c")
    order = ([w.c.r] if reserve is not None else []) + [w.c.n, func.random()]
    pick = (select(c.c.id).join(w, w.c.slot_id == c.c.id).where(_free(c))
            .order_by(*order).limit(const(1))
            .with_for_update(of=c, skip_locked=True)
            .scalar_subquery())
    conditions = [table.c.id == pick, _free(table)] + ([guard] if guard is not None else [])
    return (update(table).where(*conditions)
            .values(status=SQL_LEASED, worker_id=wpk, session_id=sess, leased_at=NOW, lease_expires=LEASE_EXPIRES)
            .returning(*returning_columns(table, kind)))


def claim(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
          lease_seconds: float) -> Claimed | None:
    """Lease the best free slot to the worker in ONE statement (module doc); None if none could be taken
    right now (nothing left, or every candidate was being claimed by someone else: see `has_free_unit`).
    IntegrityError when the worker raced itself for a unit."""
    params = _window_params(meta.id, meta.quota, worker_pk, now)
    params["exp"] = now + timedelta(seconds=lease_seconds)
    params["sess"] = session_id
    params.update(check_params(meta))
    row = _fast_claim_statement(meta.kind, uses_lateral(conn), keeps_pairs(meta.kind, bool(meta.gold_every)),
                                meta.max_per_worker is not None).first(conn, params)
    return claimed_from_row(row, meta.kind, new_regular=True) if row is not None else None
