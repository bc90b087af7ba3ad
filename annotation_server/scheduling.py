"""Which slot a worker gets next, and how it is leased: a few single statements per request.

Order of preference (`serve_next`): nothing if the study is closed; the worker's own current lease (a
reload never grabs a second unit; an expired one is renewed if nobody took it); nothing once the
worker's cap (`max_per_worker`) is reached; an attention check when one is due (`gold_every = n`: every
n-th unit, while unseen checks remain); else the best free slot.

Best free slot. Labeling: a free slot of an item the worker has not seen, items with the fewest answers
first, random among equals. Pairwise, `balanced`: the same over task pairs (each pair's slots are half in
each left/right order, see `studies.add_tasks`, so both orders are shown evenly). Pairwise, `active`: the
same candidates ordered by `analysis.pair_selection.suggest_pairs` on the judgments so far.

How (balanced schedulers): ONE statement claims the slot (`claim`). Its subquery walks the unit table's
`(study_id, n_answers)` index upwards from the least answered units, keeps units that are below quota, not
seen by the worker (an exact lookup in the `(study_id, worker_id, unit_key)` or the UNIQUE
`(study_id, unit_key, worker_id)` index) and that have a free slot (a lookup in the unit's slots: on
PostgreSQL one LATERAL probe that also returns the slot, on SQLite an EXISTS probe), stops
after `WINDOW` such units, picks one of the least answered of them at random, and the outer conditional
UPDATE leases it. Every step is an index lookup driven by a LIMIT on an index-ordered scan, so the plan
does not depend on fresh table statistics and its cost does not grow with the size of the study.
On PostgreSQL the pick is `FOR UPDATE ... SKIP LOCKED`: concurrent workers skip a slot another one is
claiming instead of queueing behind it; the conditional UPDATE re-checks that the slot is free on its
newest version, so a slot is never leased twice. On SQLite the single statement holds the write lock
throughout. A worker racing itself for two slots of one unit is stopped by UNIQUE(study_id, unit_key,
worker_id).

The worker's state (counts, current lease, the numbers behind the progress bar) is read by one statement
too (`read_state`), which also checks the worker's token. On PostgreSQL the two are usually ONE statement
(`serve_statement`: the state SELECT with the claim as a data-modifying CTE, guarded so that it leases
only when the state says a plain claim is due); the other cases go on from the state it read.

The statements are built once per study kind with bind parameters (`lru_cache`), internal constants
(statuses, limits) written into the SQL text (see `const`), run in autocommit mode (`db.autocommit`): each
is its own transaction, and on PostgreSQL straight on the driver's cursor (`db.FastStatement`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from annotation_server.cache import StudyMeta
from annotation_server.db import FastStatement
from annotation_server.errors import ApiError
from annotation_server.leases import free_clause
from annotation_server.models import (
    ACTIVE,
    LABELING,
    OPEN,
    SLOT_ANSWERED,
    SLOT_LEASED,
    SLOT_OPEN,
    Assignment,
    GoldItem,
    Item,
    Judgment,
    Study,
    StudyTask,
    TaskPair,
    Worker,
    WorkerSession,
)

A = Assignment.__table__.c
#: Units considered per claim (the least answered ones); one of the least answered among them is picked.
WINDOW = 16
#: Claim attempts per request when every slot of the window was being claimed by someone else.
ROUNDS = 8


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
    received it); `n_gold`: attention checks in the study.
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


def _unit(meta_kind: str):
    """(unit table, slot column naming the unit, unit-key prefix) of a study kind."""
    if meta_kind == LABELING:
        return Item.__table__, "item_id", "i"
    return TaskPair.__table__, "pair_id", "p"


def _count(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def const(value: str | int):
    """A constant rendered into the SQL text (internal values only: statuses, limits, key prefixes).

    Bind parameters would hide them from PostgreSQL's planner in the prepared statements psycopg uses
    after a few executions; with them visible, the cached generic plan is as good as a fresh one, so the
    hot statements are planned once per connection instead of on every execution."""
    if isinstance(value, int):
        return literal_column(str(int(value)), Integer)
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not an internal constant: {value!r}")
    return literal_column(f"'{value}'", String)


OPEN_, LEASED_, ANSWERED_ = const(SLOT_OPEN), const(SLOT_LEASED), const(SLOT_ANSWERED)

#: Bind parameters of the prebuilt statements (each built once per shape, with `lru_cache`).
_SID, _Q, _WPK, _H, _SESS = bindparam("sid"), bindparam("q"), bindparam("wpk"), bindparam("h"), bindparam("sess")
_NOW = bindparam("now", type_=DateTime(timezone=True))
_EXP = bindparam("exp", type_=DateTime(timezone=True))
_CREATED = bindparam("created", type_=DateTime(timezone=True))


@lru_cache(maxsize=None)
def _fast_state_statement(kind: str, capped: bool, with_gold: bool) -> FastStatement:
    """`_state_statement` ready for the hot path."""
    return FastStatement(_state_statement(kind, capped, with_gold))


@lru_cache(maxsize=None)
def _state_statement(kind: str, capped: bool, with_gold: bool):
    """The `read_state` SELECT for a study kind (built once; parameters :h, :sid, :q and :lim if capped)."""
    ws, w, s = WorkerSession.__table__, Worker.__table__, Study.__table__
    unit, col, _ = _unit(kind)
    m = Assignment.__table__.alias("m")
    regular = m.c.gold_id.is_(None)
    worker_of_token = select(ws.c.worker_id).where(ws.c.token_hash == _H).scalar_subquery()
    mine = (
        select(
            _count(and_(m.c.status == ANSWERED_, regular)).label("ra"),
            _count(and_(m.c.status == LEASED_, regular)).label("rl"),
            _count(and_(m.c.status == ANSWERED_, m.c.gold_id.is_not(None))).label("ga"),
            _count(and_(m.c.status == LEASED_, m.c.gold_id.is_not(None))).label("gl"),
        )
        .where(m.c.study_id == _SID, m.c.worker_id == worker_of_token)
        .subquery("mine")
    )
    lm = Assignment.__table__.alias("lm")
    held = (select(lm.c.id, lm.c.lease_expires)
            .where(lm.c.study_id == _SID, lm.c.worker_id == ws.c.worker_id, lm.c.session_id == ws.c.id,
                   lm.c.status == LEASED_)
            .order_by(lm.c.lease_expires.desc(), lm.c.id.desc()).limit(const(1)))
    lease_id = held.with_only_columns(lm.c.id).scalar_subquery()
    lease_expires = held.with_only_columns(lm.c.lease_expires).scalar_subquery()
    below_rows = select(literal(1).label("one")).select_from(unit).where(unit.c.study_id == _SID, unit.c.n_answers < _Q)
    if capped:
        # ORDER BY the (study_id, n_answers) index order: the LIMIT then stops an index walk inside this
        # study. Without it PostgreSQL's cached generic plan may pick a sequential scan "until 50 rows
        # match", which reads every earlier study's units first: a cost that grew with the database.
        below_rows = below_rows.order_by(unit.c.n_answers).limit(bindparam("lim", type_=Integer))
    below = select(func.count()).select_from(below_rows.subquery("b")).scalar_subquery()
    mb = Assignment.__table__.alias("mb")
    mine_below = (select(func.count()).select_from(mb.join(unit, unit.c.id == mb.c[col]))
                  .where(mb.c.study_id == _SID, mb.c.worker_id == ws.c.worker_id, unit.c.n_answers < _Q)
                  .scalar_subquery())
    G = GoldItem.__table__.c
    n_gold = (select(func.count()).select_from(GoldItem.__table__).where(G.study_id == _SID).scalar_subquery()
              if with_gold else literal(0))
    return (
        select(ws.c.id.label("session_id"), ws.c.worker_id.label("worker_pk"), w.c.external_id.label("worker_id"),
               ws.c.study_id, s.c.name.label("study_name"), s.c.status.label("study_status"),
               s.c.created_at.label("study_created_at"), mine.c.ra, mine.c.rl, mine.c.ga, mine.c.gl,
               lease_id.label("lease_id"), lease_expires.label("lease_expires"), below.label("below"),
               mine_below.label("mine_below"), n_gold.label("n_gold"))
        .select_from(ws.join(w, w.c.id == ws.c.worker_id).join(s, s.c.id == ws.c.study_id).join(mine, true()))
        .where(ws.c.token_hash == _H)
    )


def read_state(conn: Connection, meta: StudyMeta, token_hash: str) -> WorkerState | None:
    """Return the state of the worker behind a token (hash) in study `meta`, or None for an unknown token.

    One statement. The figures are about `meta`'s study; compare `.study_id` with `meta.id` (a token of
    another study must be refused by the caller).
    """
    capped = meta.max_per_worker is not None
    params = {"h": token_hash, "sid": meta.id, "q": meta.quota}
    if capped:
        params["lim"] = 2 * meta.max_per_worker
    return state_from_row(_fast_state_statement(meta.kind, capped, bool(meta.gold_every)).first(conn, params))


#: Columns of `_state_statement` (the first ones of `_serve_statement`).
N_STATE_COLUMNS = 16


def state_from_row(row) -> WorkerState | None:
    """The WorkerState in the first `N_STATE_COLUMNS` columns of a row; None if they are NULL (unknown token)."""
    if row is None or row[0] is None:
        return None
    return WorkerState(
        session_id=row[0], worker_pk=row[1], worker_id=row[2], study_id=row[3], study_name=row[4],
        study_status=row[5], study_created_at=row[6],
        counts=WorkerCounts(int(row[7]), int(row[8]), int(row[9]), int(row[10])),
        lease_id=row[11], lease_expires=row[12], below=int(row[13] or 0),
        mine_below=int(row[14] or 0), n_gold=int(row[15] or 0),
    )


def worker_counts(conn: Connection, study_id: int, worker_pk: int) -> WorkerCounts:
    """Count the worker's slots by status and kind."""
    rows = conn.execute(
        select(A.status, A.gold_id.is_(None), func.count())
        .where(A.study_id == study_id, A.worker_id == worker_pk)
        .group_by(A.status, A.gold_id.is_(None))
    ).all()
    c = {(status, bool(regular)): n for status, regular, n in rows}
    return WorkerCounts(
        regular_answered=c.get((SLOT_ANSWERED, True), 0),
        regular_leased=c.get((SLOT_LEASED, True), 0),
        gold_answered=c.get((SLOT_ANSWERED, False), 0),
        gold_leased=c.get((SLOT_LEASED, False), 0),
    )


def open_units_estimate(conn: Connection, study_id: int, kind: str, quota: int, worker_pk: int) -> int:
    """Return how many units the worker may still get, from the answer counters (cheap; leases in flight
    are not subtracted): units below quota that the worker has not been given."""
    unit, col, _ = _unit(kind)
    below = conn.execute(
        select(func.count()).select_from(unit).where(unit.c.study_id == study_id, unit.c.n_answers < quota)
    ).scalar() or 0
    mine_below = conn.execute(
        select(func.count()).select_from(Assignment.__table__.join(unit, unit.c.id == A[col])).where(
            A.study_id == study_id, A.worker_id == worker_pk, unit.c.n_answers < quota)
    ).scalar() or 0
    return int(below) - int(mine_below)


# ------------------------------------------------------------------------------------------ candidates
def _free(t, now=_NOW):
    """SQL condition on slot table (alias) `t`: the slot can be handed out at `now` (default: the :now parameter)."""
    return or_(t.c.status == OPEN_, and_(t.c.status == LEASED_, t.c.lease_expires < now))


@lru_cache(maxsize=None)
def _window(kind: str, size: int | None, lateral: bool = False):
    """SELECT (slot_id, n) of up to `size` units the worker may get, least answered first: one free slot
    per unit below quota that the worker has not seen (module doc). Parameters :sid, :q, :wpk, :now.

    `lateral` (PostgreSQL): find each unit's free slot with ONE probe of its slots, a LATERAL subquery
    that also drops units without a free slot; otherwise (SQLite has no LATERAL) an EXISTS probe filters
    the units and a scalar subquery picks the slot (two probes per unit)."""
    return _window_for(kind, size, lateral, _WPK)


def _window_for(kind: str, size: int | None, lateral: bool, wpk):
    """`_window` for the worker given by SQL expression `wpk` (a bind parameter or a scalar subquery)."""
    unit, col, prefix = _unit(kind)
    a = Assignment.__table__.alias("a")
    m = Assignment.__table__.alias("m")
    free_slot = select(a.c.id).where(a.c[col] == unit.c.id, _free(a))
    # which free slot of the unit: any (labeling slots are interchangeable); pairwise slots differ in the
    # left/right order shown, so pick one at random, as the order shown to each worker should be
    pick_slot = (free_slot if kind == LABELING else free_slot.order_by(func.random())).limit(const(1))
    seen = select(m.c.id).where(m.c.study_id == _SID, m.c.unit_key == const(prefix) + cast(unit.c.id, String),
                                m.c.worker_id == wpk).exists()
    if lateral:
        slot = pick_slot.lateral("s")
        stmt = (select(slot.c.id.label("slot_id"), unit.c.n_answers.label("n"))
                .select_from(unit.join(slot, true()))
                .where(unit.c.study_id == _SID, unit.c.n_answers < _Q, ~seen))
    else:
        stmt = (select(pick_slot.scalar_subquery().label("slot_id"), unit.c.n_answers.label("n"))
                .where(unit.c.study_id == _SID, unit.c.n_answers < _Q, free_slot.exists(), ~seen))
    stmt = stmt.order_by(unit.c.n_answers)
    return stmt.limit(const(size)) if size is not None else stmt


@lru_cache(maxsize=None)
def _fast_window(kind: str, size: int | None, lateral: bool) -> FastStatement:
    """`_window` ready for the hot path."""
    return FastStatement(_window(kind, size, lateral))


def _lateral(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _window_params(study_id: int, quota: int, worker_pk: int, now: datetime) -> dict[str, Any]:
    return {"sid": study_id, "q": quota, "wpk": worker_pk, "now": now}


def has_free_unit(conn: Connection, kind: str, study_id: int, quota: int, worker_pk: int, now: datetime) -> bool:
    """Return True when some free slot of a unit the worker has not seen exists (what `next` could give)."""
    return _fast_window(kind, 1, _lateral(conn)).first(conn, _window_params(study_id, quota, worker_pk, now)) is not None


def candidate_slots(conn: Connection, study, worker_pk: int, now: datetime, limit: int = WINDOW) -> list[int]:
    """Return up to `limit` free slot ids (one per unit) the worker may take, least answered first, random
    among equals. `study` needs `.id`, `.kind` and the quota (`.quota`, or `.labels_per_item` /
    `.judgments_per_pair` of a Study row)."""
    quota = getattr(study, "quota", None) or (
        (study.labels_per_item if study.kind == LABELING else study.judgments_per_pair) or 1)
    rows = conn.execute(_window(study.kind, WINDOW, _lateral(conn)), _window_params(study.id, quota, worker_pk, now)).all()
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


def _returning(t, kind: str, texts: bool = True):
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


def _claimed(row: Row | tuple, kind: str, **flags: bool) -> Claimed:
    """A Claimed from a row of `_returning`'s columns, by position (id, lease_expires, left_task_id,
    right_task_id, gold_id[, item_key, item_text])."""
    labeling = kind == LABELING
    return Claimed(assignment_id=row[0], lease_expires=row[1], left_task_id=row[2], right_task_id=row[3],
                   gold=row[4] is not None, item_key=row[5] if labeling else None,
                   item_text=row[6] if labeling else None, gold_id=row[4], **flags)


@lru_cache(maxsize=None)
def _fast_claim_statement(kind: str, lateral: bool) -> FastStatement:
    """`_claim_statement` ready for the hot path."""
    return FastStatement(_claim_statement(kind, lateral))


@lru_cache(maxsize=None)
def _claim_statement(kind: str, lateral: bool = False):
    """The claiming UPDATE (module doc). Parameters :sid, :q, :wpk, :sess, :now, :exp."""
    return _claim_for(kind, lateral, _WPK, _SESS)


def _claim_for(kind: str, lateral: bool, wpk, sess, guard=None):
    """`_claim_statement` for the worker and session given by SQL expressions `wpk` and `sess`, leasing only
    where SQL condition `guard` (if given) holds."""
    table = Assignment.__table__
    w = _window_for(kind, WINDOW, lateral, wpk).subquery("w")
    c = table.alias("c")
    pick = (select(c.c.id).join(w, w.c.slot_id == c.c.id).where(_free(c))
            .order_by(w.c.n, func.random()).limit(const(1))
            .with_for_update(of=c, skip_locked=True)
            .scalar_subquery())
    conditions = [table.c.id == pick, _free(table)] + ([guard] if guard is not None else [])
    return (update(table).where(*conditions)
            .values(status=LEASED_, worker_id=wpk, session_id=sess, leased_at=_NOW, lease_expires=_EXP)
            .returning(*_returning(table, kind)))


def serve_statement(kind: str, capped: bool, with_gold: bool, answered=None):
    """PostgreSQL, balanced schedulers: `read_state` and `claim` as ONE statement (the usual `next`).

    SELECT the worker's state (`_state_statement`, as CTE `st`) and, in a data-modifying CTE, lease the
    best free slot when the state says a plain claim is what `serve_next` would do: the token's study is
    `meta`'s (:sid, created at :created), it is open, this session holds no lease, the worker is below the cap
    (:cap) and no attention check is due (every :gold_every-th unit while unseen checks remain). When a
    check is due (`with_gold`), a second data-modifying CTE leases one instead (a new slot for an unseen
    check, only while a regular unit is still free for the worker, as `_next_slot` does): a check is then
    served by the same single statement as a regular unit, so its reply takes no longer. Otherwise
    nothing is leased and the caller goes on from the state the long way. Always one row: the state
    columns (NULL for an unknown token), then `answered`'s id and gold_id if given, then `_returning`'s
    columns of the claim (NULL when nothing was claimed), then (`with_gold`) those of the check.

    `answered` (the slot CTE of an answer in the same statement, see `one_trip`): lease only if that
    answer was recorded, and count that slot, which the state (read from the statement's snapshot) still
    shows as leased, as the one lease allowed. Parameters: :h, :sid, :q, :now, :exp, :created, [:lim,
    :cap], [:gold_every]."""
    st = _state_statement(kind, capped, with_gold).cte("st")
    wpk = select(st.c.worker_pk).scalar_subquery()
    sess = select(st.c.session_id).scalar_subquery()
    # this session holds no lease; next to an answer (whose slot the statement's snapshot still shows as
    # leased), that slot is the one it holds
    held = st.c.lease_id.is_(None) if answered is None else st.c.lease_id == select(answered.c.id).scalar_subquery()
    common = [st.c.study_id == _SID, st.c.study_status == const(OPEN), st.c.study_created_at == _CREATED, held]
    if capped:
        common.append(st.c.ra + st.c.rl < bindparam("cap", type_=Integer))
    due = None
    cond = list(common)
    if with_gold:
        taken = st.c.ra + st.c.rl + st.c.ga + st.c.gl
        due = and_((taken + const(1)) % bindparam("gold_every", type_=Integer) == const(0), st.c.ga + st.c.gl < st.c.n_gold)
        cond.append(~due)
    recorded = [select(answered.c.id).exists()] if answered is not None else []
    guard = and_(select(st.c.session_id).where(*cond).exists(), *recorded)
    claimed = _claim_for(kind, True, wpk, sess, guard).cte("claimed")
    one = select(const(1).label("one")).subquery("one")
    joined = one.outerjoin(st, true())
    columns = list(st.c)
    if answered is not None:
        joined = joined.outerjoin(answered, true())
        columns += [answered.c.id.label("answered_id"), answered.c.gold_id.label("answered_gold_id")]
    joined = joined.outerjoin(claimed, true())
    columns += [claimed.c[col.key].label(f"claimed_{i}") for i, col in enumerate(claimed.c)]
    if with_gold:
        regular_left = _window_for(kind, 1, True, wpk).exists()  # checks only come between real units
        gold_guard = and_(select(st.c.session_id).where(*common, due).exists(), regular_left, *recorded)
        gold = _gold_insert_for(kind, wpk, sess, gold_guard).cte("gold_lease")
        joined = joined.outerjoin(gold, true())
        columns += [gold.c[col.key].label(f"gold_{i}") for i, col in enumerate(gold.c)]
        if kind == LABELING:
            G = GoldItem.__table__.alias("gt")
            joined = joined.outerjoin(G, G.c.id == gold.c.gold_id)
            columns += [G.c.key.label("gold_key"), G.c.text.label("gold_text")]
    return select(*columns).select_from(joined)


@lru_cache(maxsize=None)
def _fast_serve_statement(kind: str, capped: bool, with_gold: bool) -> FastStatement:
    """`serve_statement` (without an answer) ready for the hot path."""
    return FastStatement(serve_statement(kind, capped, with_gold))


def serve_params(meta: StudyMeta, token_hash: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The parameters of `serve_statement` for study `meta`."""
    params = {"h": token_hash, "sid": meta.id, "q": meta.quota, "now": now, "created": meta.created_at,
              "exp": now + timedelta(seconds=lease_seconds)}
    if meta.max_per_worker is not None:
        params["lim"] = 2 * meta.max_per_worker
        params["cap"] = meta.max_per_worker
    if meta.gold_every:
        params["gold_every"] = meta.gold_every
    return params


def uses_serve_statement(conn: Connection, meta: StudyMeta) -> bool:
    """Whether `next` in study `meta` runs as one statement (`serve_statement`): PostgreSQL, and a
    balanced scheduler (labeling, or pairwise `balanced`)."""
    return _lateral(conn) and (meta.kind == LABELING or meta.scheduler != ACTIVE)


def claimed_in(row, offset: int, kind: str) -> Claimed | None:
    """The Claimed in a `serve_statement` row from column `offset` on (the claim's columns, then those of
    the attention check, if the statement has them), or None if nothing was leased."""
    if row[offset] is None:
        gold_at = offset + (7 if kind == LABELING else 5)
        if len(row) <= gold_at or row[gold_at] is None:
            return None
        return _claimed(row[gold_at:], kind, new_gold=True)
    return _claimed(row[offset:], kind, new_regular=True)


def claim(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
          lease_seconds: float) -> Claimed | None:
    """Lease the best free slot to the worker in ONE statement (module doc); None if none could be taken
    right now (nothing left, or every candidate was being claimed by someone else: see `has_free_unit`).
    IntegrityError when the worker raced itself for a unit."""
    params = _window_params(meta.id, meta.quota, worker_pk, now)
    params["exp"] = now + timedelta(seconds=lease_seconds)
    params["sess"] = session_id
    row = _fast_claim_statement(meta.kind, _lateral(conn)).first(conn, params)
    return _claimed(row, meta.kind, new_regular=True) if row is not None else None


@lru_cache(maxsize=None)
def _gold_statement(kind: str, lateral: bool):
    """INSERT ... SELECT of a new slot for an unseen attention check, only while a regular unit is still free
    for the worker (checks come between real units). Parameters :sid, :q, :wpk, :sess, :now, :exp."""
    return _gold_insert_for(kind, _WPK, _SESS, _window_for(kind, 1, lateral, _WPK).exists())


def _gold_insert_for(kind: str, wpk, sess, guard=None):
    """`_gold_statement` for the worker and session given by SQL expressions, inserting only where SQL
    condition `guard` (if given) holds."""
    G = GoldItem.__table__
    table = Assignment.__table__
    g2 = table.alias("g2")
    unseen = ~select(g2.c.id).where(g2.c.gold_id == G.c.id, g2.c.worker_id == wpk).exists()
    source = (select(_SID, const("g") + cast(G.c.id, String), wpk, G.c.id, G.c.left_task_id, G.c.right_task_id,
                     wpk, sess, LEASED_, _NOW, _EXP)
              .where(G.c.study_id == _SID, unseen, *([guard] if guard is not None else []))
              .order_by(func.random()).limit(const(1)))
    return (insert(table).from_select(["study_id", "unit_key", "slot", "gold_id", "left_task_id", "right_task_id",
                                       "worker_id", "session_id", "status", "leased_at", "lease_expires"], source)
            .returning(*_returning(table, kind, texts=False)))


def take_gold(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
              lease_seconds: float) -> Claimed | None:
    """Lease an attention check the worker has not seen (a new slot, one statement); None if none is left, or
    no regular unit is left for the worker. A labeling check's text comes from the metadata cache (the
    view fills it in), so a check costs the statements a regular unit costs: no timing tells it apart."""
    params = {"sid": meta.id, "q": meta.quota, "wpk": worker_pk, "sess": session_id, "now": now,
              "exp": now + timedelta(seconds=lease_seconds)}
    try:
        row = conn.execute(_gold_statement(meta.kind, _lateral(conn)), params).first()
    except IntegrityError:  # the same check leased to this worker by a concurrent request of theirs
        return None
    if row is None:
        return None
    return _claimed(tuple(row) + (None, None), meta.kind, new_gold=True)


@lru_cache(maxsize=None)
def _held_statements(kind: str) -> tuple[FastStatement, FastStatement]:
    """(SELECT a held slot by :lid, UPDATE renewing it for :wpk's session :sess until :exp) with the RETURNING
    columns."""
    table = Assignment.__table__
    lid = bindparam("lid")
    read = select(*_returning(table, kind)).where(table.c.id == lid)
    renew = (update(table).where(table.c.id == lid, table.c.worker_id == _WPK, table.c.session_id == _SESS,
                                 table.c.status == LEASED_)
             .values(leased_at=_NOW, lease_expires=_EXP).returning(*_returning(table, kind)))
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
    return _claimed(row, meta.kind) if row is not None else None


@dataclass(frozen=True)
class NextResult:
    """What `serve_next` decided: the worker's state (as read before) and the slot, or None (nothing left).

    `stale`: the study row is not the one `meta` was made from (its `created_at` differs: the database was
    rebuilt under the running server); nothing was leased, reload the metadata and ask again."""

    state: WorkerState
    claimed: Claimed | None
    stale: bool = False


def serve_next(conn: Connection, meta: StudyMeta, token_hash: str, now: datetime, lease_seconds: float) -> NextResult:
    """Find (and lease) the next assignment of the worker behind `token_hash` in study `meta` (module doc).

    `conn` should be in autocommit mode (`db.autocommit`): every statement is its own transaction.
    ApiError 401 for an unknown token, 403 for a token of another study. Usually one statement on
    PostgreSQL (`serve_statement`), two elsewhere (`read_state`, then `claim`).
    """
    if uses_serve_statement(conn, meta):
        try:
            row = _fast_serve_statement(meta.kind, meta.max_per_worker is not None, bool(meta.gold_every)).first(
                conn, serve_params(meta, token_hash, now, lease_seconds))
        except IntegrityError:  # the worker raced itself for a unit or a check: nothing was written
            return serve_from_state(conn, meta, token_hash, read_state(conn, meta, token_hash), now, lease_seconds)
        state = state_from_row(row)
        claimed = claimed_in(row, N_STATE_COLUMNS, meta.kind) if state is not None else None
        if claimed is not None:
            return NextResult(state, claimed)
        return serve_from_state(conn, meta, token_hash, state, now, lease_seconds)
    return serve_from_state(conn, meta, token_hash, read_state(conn, meta, token_hash), now, lease_seconds)


def serve_from_state(conn: Connection, meta: StudyMeta, token_hash: str, state: WorkerState | None, now: datetime,
                     lease_seconds: float) -> NextResult:
    """`serve_next` from the worker's state as just read (None: unknown token)."""
    if state is None:
        raise ApiError(401, "unknown or revoked worker token")
    if state.study_id != meta.id:
        raise ApiError(403, f"this worker token belongs to study {state.study_name!r}, not {meta.name!r}", "study")
    if not _same_instant(state.study_created_at, meta.created_at):
        return NextResult(state, None, stale=True)
    if state.study_status == OPEN and state.lease_id is not None:
        held = held_lease(conn, meta, state.worker_pk, state.session_id, state.lease_id, state.lease_expires, now,
                          lease_seconds)
        if held is not None:
            return NextResult(state, held)
        # the lease had expired and someone else took the slot: the counts changed, read them again
        state = read_state(conn, meta, token_hash)
        if state is None:
            raise ApiError(401, "unknown or revoked worker token")
    return NextResult(state, _next_slot(conn, meta, state, now, lease_seconds))


def _same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a == b


def _next_slot(conn: Connection, meta: StudyMeta, state: WorkerState, now: datetime, lease_seconds: float) -> Claimed | None:
    if state.study_status != OPEN:
        return None
    wpk, sess = state.worker_pk, state.session_id
    if state.lease_id is not None:
        held = held_lease(conn, meta, wpk, sess, state.lease_id, state.lease_expires, now, lease_seconds)
        if held is not None:
            return held
    counts = state.counts
    if meta.max_per_worker is not None and counts.regular_answered + counts.regular_leased >= meta.max_per_worker:
        return None
    if meta.gold_every and (counts.taken + 1) % meta.gold_every == 0 and counts.gold_answered + counts.gold_leased < state.n_gold:
        gold = take_gold(conn, meta, wpk, sess, now, lease_seconds)  # only while a regular unit is left
        if gold is not None:
            return gold
    if meta.kind != LABELING and meta.scheduler == ACTIVE:
        return _claim_active(conn, meta, wpk, sess, now, lease_seconds)
    for _ in range(ROUNDS):
        try:
            got = claim(conn, meta, wpk, sess, now, lease_seconds)
        except IntegrityError:  # a concurrent request of the same worker took a slot of that unit: hand it back
            return _own_lease(conn, meta, wpk, sess, now, lease_seconds)
        if got is not None:
            return got
        if not has_free_unit(conn, meta.kind, meta.id, meta.quota, wpk, now):
            return None
    return None


def _own_lease(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
               lease_seconds: float) -> Claimed | None:
    row = conn.execute(select(A.id, A.lease_expires).where(A.study_id == meta.id, A.worker_id == worker_pk,
                                                          A.session_id == session_id, A.status == SLOT_LEASED)
                       .order_by(A.lease_expires.desc(), A.id.desc()).limit(1)).first()  # rare: a worker racing itself
    if row is None:
        return None
    return held_lease(conn, meta, worker_pk, session_id, row.id, row.lease_expires, now, lease_seconds)


def _claim_active(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
                  lease_seconds: float) -> Claimed | None:
    """The `active` scheduler: order the free pairs with the analysis package, lease the first that is free."""
    from analysis.pair_selection import suggest_pairs
    from subjlab.records import Judgment as JudgmentRecord

    rows = conn.execute(_active_candidates(meta, worker_pk, now)).all()
    if not rows:
        return None
    T = StudyTask.__table__.c
    keys = dict(conn.execute(select(T.id, T.key).where(T.study_id == meta.id)).all())
    P = TaskPair.__table__.c
    pair_keys = {pid: (keys[a], keys[b]) for pid, a, b in conn.execute(
        select(P.id, P.first_task_id, P.second_task_id).where(P.study_id == meta.id)).all()}
    J = Judgment.__table__.c
    judgments = [
        JudgmentRecord(left=keys[lt], right=keys[rt], winner=keys[wt], study=meta.name)
        for lt, rt, wt in conn.execute(select(J.left_task_id, J.right_task_id, J.winner_task_id).where(J.study_id == meta.id)).all()
    ]
    slots_by_pair: dict[frozenset[str], list[int]] = {}
    for slot_id, pair_id in rows:
        slots_by_pair.setdefault(frozenset(pair_keys[pair_id]), []).append(slot_id)
    rng = random.Random()
    suggested = suggest_pairs(judgments, sorted(keys.values()), k=len(slots_by_pair), seed=rng.randrange(2**31))
    order: list[int] = []
    for pair in suggested:
        slots = slots_by_pair.pop(frozenset(_pair_tuple(pair)), None)
        if slots:
            order.append(rng.choice(slots))
    rest = [rng.choice(slots) for slots in slots_by_pair.values()]
    rng.shuffle(rest)
    table = Assignment.__table__
    for slot_id in order + rest:
        try:
            row = conn.execute(
                update(table).where(table.c.id == slot_id, free_clause(now))
                .values(status=SLOT_LEASED, worker_id=worker_pk, session_id=session_id, leased_at=now,
                        lease_expires=now + timedelta(seconds=lease_seconds))
                .returning(*_returning(table, meta.kind))).first()
        except IntegrityError:
            return _own_lease(conn, meta, worker_pk, session_id, now, lease_seconds)
        if row is not None:
            return _claimed(row, meta.kind, new_regular=True)
    return None


def _active_candidates(meta: StudyMeta, worker_pk: int, now: datetime):
    """Every free slot of a pair below quota that the worker has not judged: (slot_id, pair_id)."""
    P = TaskPair.__table__
    m = Assignment.__table__.alias("m")
    seen = select(m.c.id).where(m.c.study_id == meta.id, m.c.unit_key == A.unit_key, m.c.worker_id == worker_pk).exists()
    return (select(A.id, A.pair_id).select_from(Assignment.__table__.join(P, P.c.id == A.pair_id))
            .where(P.c.study_id == meta.id, P.c.n_answers < meta.quota, free_clause(now), ~seen))  # active: small studies


def _pair_tuple(pair: Any) -> tuple[str, str]:
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        return str(pair[0]), str(pair[1])
    return str(pair.left), str(pair.right)  # a record-like suggestion
