"""A worker's state in a study, read by one statement that also checks their token (`read_state`).

The counts of their slots, their session's current lease, and the figures behind the progress bar (units
below quota, how many of them the worker has, pairs kept back for their attention checks); the cheaper
estimates the long path uses (`worker_counts`, `open_units_estimate`).

The state SELECT is hand-written SQLAlchemy Core, built once per study shape (`lru_cache`): everything a
request needs comes back in one round trip (the ORM would load the session, the worker, the study and
the counts one query each)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    and_,
    case,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.engine import Connection

from annotation_server import pair_checks
from annotation_server.cache import StudyMeta
from annotation_server.db import FastStatement
from annotation_server.sqlparts import (
    SQL_ANSWERED,
    SQL_LEASED,
    BELOW_LIMIT,
    STUDY_ID,
    WORKER_PK,
    TOKEN_HASH,
    QUOTA,
    const,
)
from annotation_server.tallies import full_units_sum
from annotation_server.models import (
    LABELING,
    SLOT_ANSWERED,
    SLOT_LEASED,
    Assignment,
    GoldItem,
    Item,
    Study,
    TaskPair,
    Worker,
    WorkerSession,
)


SLOTS = Assignment.__table__.c

# ------------------------------------------------------------------------------------------ state
@dataclass(frozen=True)
class WorkerCounts:
    """How many slots a worker holds or answered in a study (regular units and attention checks)."""

    regular_answered: int
    regular_leased: int
    gold_answered: int
    gold_leased: int

    @property
    def taken(self) -> int:
        """All units handed to the worker so far (answered or held)."""
        return self.regular_answered + self.regular_leased + self.gold_answered + self.gold_leased


@dataclass(frozen=True)
class WorkerState:
    """A worker's situation in a study, as read by `read_state` in one statement.

    `below`: units of the study below quota (counted up to `2 * max_per_worker` when there is a cap,
    which is all the progress arithmetic needs); `mine_below`: how many of them the worker already has;
    `lease_id`/`lease_expires`: this session's current lease, if any (a lease belongs to the session that
    received it); `n_gold`: attention checks in the study; `reserved_below`: pairs below quota kept back for
    the worker's attention checks still to come (pairwise, `pair_checks.reserved_pairs`).
    """

    session_id: int
    worker_pk: int
    worker_id: str
    study_id: int
    study_name: str
    study_status: str
    study_created_at: datetime
    counts: WorkerCounts
    lease_id: int | None
    lease_expires: datetime | None
    below: int
    mine_below: int
    n_gold: int
    reserved_below: int = 0


def unit_table(meta_kind: str):
    """(unit table, slot column naming the unit, unit-key prefix) of a study kind."""
    if meta_kind == LABELING:
        return Item.__table__, "item_id", "i"
    return TaskPair.__table__, "pair_id", "p"


def _count(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


@lru_cache(maxsize=None)
def _fast_state_statement(kind: str, capped: bool, with_gold: bool) -> FastStatement:
    """`_state_statement` ready for the hot path."""
    return FastStatement(state_statement(kind, capped, with_gold))


@lru_cache(maxsize=None)
def state_statement(kind: str, capped: bool, with_gold: bool):
    """The `read_state` SELECT for a study kind (built once; parameters :h, :sid, :q, and :lim if capped; a
    pairwise study with attention checks also :gold_every and, if capped, :cap)."""
    ws, w, s = WorkerSession.__table__, Worker.__table__, Study.__table__
    unit, col, _ = unit_table(kind)
    m = Assignment.__table__.alias("m")
    regular = m.c.gold_id.is_(None)
    worker_of_token = select(ws.c.worker_id).where(ws.c.token_hash == TOKEN_HASH).scalar_subquery()
    mine = (
        select(
            _count(and_(m.c.status == SQL_ANSWERED, regular)).label("ra"),
            _count(and_(m.c.status == SQL_LEASED, regular)).label("rl"),
            _count(and_(m.c.status == SQL_ANSWERED, m.c.gold_id.is_not(None))).label("ga"),
            _count(and_(m.c.status == SQL_LEASED, m.c.gold_id.is_not(None))).label("gl"),
        )
        .where(m.c.study_id == STUDY_ID, m.c.worker_id == worker_of_token)
        .subquery("mine")
    )
    lm = Assignment.__table__.alias("lm")
    held = (select(lm.c.id, lm.c.lease_expires)
            .where(lm.c.study_id == STUDY_ID, lm.c.worker_id == ws.c.worker_id, lm.c.session_id == ws.c.id,
                   lm.c.status == SQL_LEASED)
            .order_by(lm.c.lease_expires.desc(), lm.c.id.desc()).limit(const(1)))
    lease_id = held.with_only_columns(lm.c.id).scalar_subquery()
    lease_expires = held.with_only_columns(lm.c.lease_expires).scalar_subquery()
    if capped:
        # Counted up to :lim (all the progress arithmetic needs), in the (study_id, n_answers) index order:
        # the LIMIT then stops an index walk inside this study. Without it PostgreSQL's cached generic plan
        # may pick a sequential scan "until 50 rows match", which reads every earlier study's units first: a
        # cost that grew with the database.
        below_rows = (select(literal(1).label("one")).select_from(unit)
                      .where(unit.c.study_id == STUDY_ID, unit.c.n_answers < QUOTA)
                      .order_by(unit.c.n_answers).limit(BELOW_LIMIT))
        below = select(func.count()).select_from(below_rows.subquery("b")).scalar_subquery()
    else:  # all of them: the units counted when added, less those at quota (`tallies`), whatever the size
        below = s.c.n_units - full_units_sum(STUDY_ID)
    mb = Assignment.__table__.alias("mb")
    mine_below = (select(func.count()).select_from(mb.join(unit, unit.c.id == mb.c[col]))
                  .where(mb.c.study_id == STUDY_ID, mb.c.worker_id == ws.c.worker_id, unit.c.n_answers < QUOTA)
                  .scalar_subquery())
    G = GoldItem.__table__.c
    n_gold = (select(func.count()).select_from(GoldItem.__table__).where(G.study_id == STUDY_ID).scalar_subquery()
              if with_gold else literal(0))
    # (the worker by token again, not by the outer row: SQLAlchemy does not correlate that deep)
    reserved = pair_checks.reserved_below(worker_of_token, capped) if keeps_pairs(kind, with_gold) else literal(0)
    return (
        select(ws.c.id.label("session_id"), ws.c.worker_id.label("worker_pk"), w.c.external_id.label("worker_id"),
               ws.c.study_id, s.c.name.label("study_name"), s.c.status.label("study_status"),
               s.c.created_at.label("study_created_at"), mine.c.ra, mine.c.rl, mine.c.ga, mine.c.gl,
               lease_id.label("lease_id"), lease_expires.label("lease_expires"), below.label("below"),
               mine_below.label("mine_below"), n_gold.label("n_gold"), reserved.label("reserved_below"))
        .select_from(ws.join(w, w.c.id == ws.c.worker_id).join(s, s.c.id == ws.c.study_id).join(mine, true()))
        .where(ws.c.token_hash == TOKEN_HASH)
    )


def read_state(conn: Connection, meta: StudyMeta, token_hash: str) -> WorkerState | None:
    """Return the state of the worker behind a token (hash) in study `meta`, or None for an unknown token.

    One statement. The figures are about `meta`'s study; compare `.study_id` with `meta.id` (a token of
    another study must be refused by the caller).
    """
    capped = meta.max_per_worker is not None
    params = {"h": token_hash, "sid": meta.id, "q": meta.quota, **check_params(meta)}
    if capped:
        params["lim"] = 2 * meta.max_per_worker
    return state_from_row(_fast_state_statement(meta.kind, capped, bool(meta.gold_every)).first(conn, params))


#: Columns of `_state_statement` (the first ones of `_serve_statement`).
N_STATE_COLUMNS = 17


def state_from_row(row) -> WorkerState | None:
    """The WorkerState in the first `N_STATE_COLUMNS` columns of a row; None if they are NULL (unknown token)."""
    if row is None or row[0] is None:
        return None
    return WorkerState(
        session_id=row[0], worker_pk=row[1], worker_id=row[2], study_id=row[3], study_name=row[4],
        study_status=row[5], study_created_at=row[6],
        counts=WorkerCounts(int(row[7]), int(row[8]), int(row[9]), int(row[10])),
        lease_id=row[11], lease_expires=row[12], below=int(row[13] or 0),
        mine_below=int(row[14] or 0), n_gold=int(row[15] or 0), reserved_below=int(row[16] or 0),
    )


def worker_counts(conn: Connection, study_id: int, worker_pk: int) -> WorkerCounts:
    """Count the worker's slots by status and kind."""
    rows = conn.execute(
        select(SLOTS.status, SLOTS.gold_id.is_(None), func.count())
        .where(SLOTS.study_id == study_id, SLOTS.worker_id == worker_pk)
        .group_by(SLOTS.status, SLOTS.gold_id.is_(None))
    ).all()
    c = {(status, bool(regular)): n for status, regular, n in rows}
    return WorkerCounts(
        regular_answered=c.get((SLOT_ANSWERED, True), 0),
        regular_leased=c.get((SLOT_LEASED, True), 0),
        gold_answered=c.get((SLOT_ANSWERED, False), 0),
        gold_leased=c.get((SLOT_LEASED, False), 0),
    )


def open_units_estimate(conn: Connection, study: Study, quota: int, worker_pk: int) -> int:
    """Return how many regular units the worker may still get, from the answer counters (cheap; leases in
    flight are not subtracted): units below quota that the worker has not been given, less the pairs kept
    back for their attention checks still to come (`pair_checks`)."""
    unit, col, _ = unit_table(study.kind)
    S = Study.__table__.c
    below = conn.execute(select(S.n_units - full_units_sum(S.id)).where(S.id == study.id)).scalar() or 0
    mine_below = conn.execute(
        select(func.count()).select_from(Assignment.__table__.join(unit, unit.c.id == SLOTS[col])).where(
            SLOTS.study_id == study.id, SLOTS.worker_id == worker_pk, unit.c.n_answers < quota)
    ).scalar() or 0
    reserved = 0
    if keeps_pairs(study.kind, bool(study.gold_every)):
        reserved = conn.execute(select(pair_checks.reserved_below(WORKER_PK, study.max_per_worker is not None)),
                                {"sid": study.id, "q": quota, "wpk": worker_pk, **check_params(study)}).scalar()
    return int(below) - int(mine_below) - int(reserved or 0)



def keeps_pairs(kind: str, with_gold: bool) -> bool:
    """Whether the statements of a study keep pairs back for attention checks (pairwise, with checks: `pair_checks`)."""
    return kind != LABELING and with_gold


def check_params(meta: StudyMeta | Study) -> dict[str, Any]:
    """The parameters `pair_checks.reserved_pairs` adds to a study's statements (none where no pair is kept back)."""
    if not keeps_pairs(meta.kind, bool(meta.gold_every)):
        return {}
    return {"gold_every": meta.gold_every, **({"cap": meta.max_per_worker} if meta.max_per_worker is not None else {})}
