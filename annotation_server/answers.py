"""Recording a worker's answer to an assignment: exactly once, only while their lease holds.

The answer and the slot's move to `answered` are one transaction: the conditional UPDATE (slot leased
to this worker, lease unexpired, and the worker's token checked against `worker_session` in the same
statement) proves the lease is the worker's and still valid at this moment, and the UNIQUE constraints on
the answer tables make a second row impossible even for two identical requests racing each other.
Posting the same answer again returns the stored answer (same reply, no new row); a different answer to
an answered assignment is a 409.

A lease belongs to the session that received it (`assignment.session_id`): another session, even one of
the same worker, cannot answer it. Any assignment that is not the caller's own (another session's, an
unknown id, a handle that names nothing) gets one and the same reply (`NOT_YOURS`, a 409), so replies
are no oracle of which assignments exist or what they are; only the caller's own lease that expired
says so.

`record_answer` is the common case in as few statements as possible: the answer is validated first from
the study's cached metadata, then PostgreSQL runs ONE statement (data-modifying CTEs: mark the slot
answered, insert the answer row, bump the unit's answer counter; atomic as any single statement) and
SQLite three in one `BEGIN IMMEDIATE` transaction. When that conditional UPDATE matches nothing (a
repeat, an expired lease, someone else's assignment, a bad id), `submit_answer` works out the right reply
the long way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from annotation_server import validation as v
from annotation_server.cache import MetadataCache, SessionRef, StudyMeta
from annotation_server.clock import iso
from annotation_server.db import FastStatement
from annotation_server.errors import ApiError
from annotation_server.leases import mark_answered, write_engine
from annotation_server.models import (
    LABELING,
    GoldAnswer,
    GoldItem,
    Item,
    Judgment,
    LabelRecord,
    Study,
    StudyTask,
    TaskPair,
    WorkerSession,
)
from annotation_server.models import Assignment as AssignmentRow
from annotation_server.scheduling import ANSWERED_, LEASED_

A = AssignmentRow.__table__.c

NOT_YOURS = "this assignment is not leased to you (it may have expired and gone to someone else); ask for the next assignment"


def not_yours() -> ApiError:
    """The one reply to an answer for an assignment that is not the caller's (or does not exist)."""
    return ApiError(409, NOT_YOURS, "assignment")


@dataclass(frozen=True)
class Answer:
    """A validated answer: which field it came in ("winner" or "label") and its value."""

    field: str
    value: str


def parse_answer(body: Any) -> Answer:
    """Return the Answer in a request body `{"winner": key}` or `{"label": label}`; ApiError 400 otherwise."""
    body = v.obj(body)
    v.no_unknown_keys(body, {"winner", "label"})
    given = [k for k in ("winner", "label") if k in body]
    if len(given) != 1:
        raise ApiError(400, "send exactly one of 'winner' (pairwise) or 'label' (labeling)", "body")
    field = given[0]
    value = body[field]
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{field} must be a non-empty string", field)
    if len(value) > 200:
        raise ApiError(422, f"{field} is not a valid answer (too long)", field)
    return Answer(field, value)


def _reply(assignment_id: int, kind: str, field: str, value: str, created_at: datetime) -> dict[str, Any]:
    return {"assignment": assignment_id, "kind": kind, field: value, "recorded_at": iso(created_at)}


def _stored_answer(conn: Connection, row, kind: str) -> tuple[int, str, datetime] | None:
    """Return (worker_pk, answer value, created_at) of the answer already stored for a slot, or None."""
    if row.gold_id is not None:
        G = GoldAnswer.__table__.c
        found = conn.execute(select(G.worker_id, G.answer, G.created_at).where(G.assignment_id == row.id)).first()
        return tuple(found) if found else None
    if kind == LABELING:
        L = LabelRecord.__table__.c
        found = conn.execute(select(L.worker_id, L.label, L.created_at).where(L.assignment_id == row.id)).first()
        return tuple(found) if found else None
    J = Judgment.__table__.c
    T = StudyTask.__table__.c
    found = conn.execute(
        select(J.worker_id, T.key, J.created_at).join(StudyTask.__table__, T.id == J.winner_task_id).where(J.assignment_id == row.id)
    ).first()
    return tuple(found) if found else None


def _load(conn: Connection, assignment_id: int):
    S = Study.__table__.c
    return conn.execute(
        select(A.id, A.study_id, A.worker_id, A.session_id, A.status, A.lease_expires, A.leased_at, A.item_id, A.pair_id, A.gold_id,
               A.left_task_id, A.right_task_id, S.kind, S.task_spec)
        .join(Study.__table__, S.id == A.study_id)
        .where(A.id == assignment_id)
    ).first()


def submit_answer(engine: Engine, assignment_id: int | None, worker_pk: int, session_id: int, study_id: int, body: Any,
                  now: datetime) -> dict[str, Any]:
    """Record the answer in `body` for an assignment the session holds; return the 201 reply JSON.

    `assignment_id` None: the handle named no slot. ApiError: 400 malformed/wrong field, 409 `NOT_YOURS`
    (another session's or an unknown assignment), 409 own lease expired / answered differently before,
    422 a label or winner that is not one of the choices.
    """
    answer = parse_answer(body)
    if assignment_id is None:
        raise not_yours()
    try:
        with write_engine(engine).begin() as conn:
            return _submit(conn, assignment_id, worker_pk, session_id, study_id, answer, now)
    except IntegrityError:
        # A concurrent identical request won the race: answer like it did (or 409 if it differs).
        with engine.connect() as conn:
            row = _load(conn, assignment_id)
            stored = _stored_answer(conn, row, row.kind) if row is not None else None
            conn.rollback()
        if row is not None and stored is not None and row.session_id == session_id:
            return _same_or_conflict(row, answer, stored)
        raise ApiError(409, "this unit was already answered by you in another assignment", answer.field) from None


def _same_or_conflict(row, answer: Answer, stored: tuple[int, str, datetime]) -> dict[str, Any]:
    _, value, created_at = stored
    if value != answer.value:
        raise ApiError(409, f"this assignment was already answered with {value!r}; answers cannot be changed", answer.field)
    return _reply(row.id, row.kind, answer.field, value, created_at)


def _submit(conn: Connection, assignment_id: int, worker_pk: int, session_id: int, study_id: int, answer: Answer,
            now: datetime) -> dict[str, Any]:
    row = _load(conn, assignment_id)
    if row is None or row.session_id != session_id or row.study_id != study_id or row.worker_id != worker_pk:
        raise not_yours()  # the same reply whether it exists or not, and whatever it is
    expected = "label" if row.kind == LABELING else "winner"
    if answer.field != expected:
        raise ApiError(400, f"this is a {row.kind} assignment: send {{\"{expected}\": ...}}", answer.field)
    stored = _stored_answer(conn, row, row.kind)
    if stored is not None:
        return _same_or_conflict(row, answer, stored)
    T = StudyTask.__table__.c
    if row.kind == LABELING:
        labels = row.task_spec["labels"]
        if answer.value not in labels:
            raise ApiError(422, f"unknown label {answer.value[:80]!r}; choose one of {labels}", "label")
        choice_id = None
    else:
        keys = dict(conn.execute(select(T.id, T.key).where(T.id.in_([row.left_task_id, row.right_task_id]))).all())
        by_key = {k: i for i, k in keys.items()}
        if answer.value not in by_key:
            raise ApiError(422, f"winner must be {keys[row.left_task_id]!r} or {keys[row.right_task_id]!r}, got {answer.value[:80]!r}", "winner")
        choice_id = by_key[answer.value]
    if not mark_answered(conn, row.id, session_id, now):
        # A concurrent request may have answered it a moment ago (PostgreSQL READ COMMITTED: this new
        # statement sees its commit): then this is a repeat, answered like the first.
        stored = _stored_answer(conn, row, row.kind)
        if stored is not None:
            return _same_or_conflict(row, answer, stored)
        raise ApiError(409, "your lease on this assignment expired; ask for the next assignment", "assignment")
    if row.gold_id is not None:
        G = GoldItem.__table__.c
        gold_answer = conn.execute(select(G.answer).where(G.id == row.gold_id)).scalar_one()
        conn.execute(GoldAnswer.__table__.insert().values(
            assignment_id=row.id, study_id=row.study_id, gold_id=row.gold_id, worker_id=worker_pk,
            answer=answer.value, correct=answer.value == gold_answer, leased_at=row.leased_at, created_at=now))
    elif row.kind == LABELING:
        conn.execute(LabelRecord.__table__.insert().values(
            assignment_id=row.id, study_id=row.study_id, item_id=row.item_id, worker_id=worker_pk,
            label=answer.value, leased_at=row.leased_at, created_at=now))
        I = Item.__table__.c
        conn.execute(update(Item.__table__).where(I.id == row.item_id).values(n_answers=I.n_answers + 1))
    else:
        conn.execute(Judgment.__table__.insert().values(
            assignment_id=row.id, study_id=row.study_id, worker_id=worker_pk, pair_id=row.pair_id,
            left_task_id=row.left_task_id, right_task_id=row.right_task_id, winner_task_id=choice_id,
            leased_at=row.leased_at, created_at=now))
        P = TaskPair.__table__.c
        conn.execute(update(TaskPair.__table__).where(P.id == row.pair_id).values(n_answers=P.n_answers + 1))
    return _reply(row.id, row.kind, answer.field, answer.value, now)


# ------------------------------------------------------------------------------------------ fast path
def fast_choice(conn: Connection, cache: MetadataCache, meta: StudyMeta, answer: Answer) -> int | None | bool:
    """Validate an answer against the study's fixed choices (no database read unless the cache is cold).

    Returns the winner's task id (pairwise), None (labeling: a valid label), or False when the answer is
    not valid for the study: then `submit_answer` must produce the error in its usual order (404 before
    400 before 422)."""
    if meta.labeling:
        return None if answer.field == "label" and answer.value in meta.labels else False
    if answer.field != "winner":
        return False
    task = cache.task_by_key(conn, meta.id, answer.value)
    return task.id if task is not None else False


_AID, _SID, _WPK, _H, _VAL, _CHOICE = (bindparam("aid"), bindparam("sid"), bindparam("wpk"), bindparam("h"),
                                       bindparam("val", type_=String), bindparam("choice", type_=Integer))
_SESS = bindparam("sess")
_NOW = bindparam("now", type_=DateTime(timezone=True))


@lru_cache(maxsize=None)
def _mark_statement(labeling: bool):
    """UPDATE the slot :aid to answered if it is leased to session :sess (worker :wpk, token :h, study :sid)
    and unexpired at :now (pairwise: and :choice is one of its two tasks); RETURNING what the answer row
    needs."""
    table = AssignmentRow.__table__
    WS = WorkerSession.__table__.c
    token_ok = select(WS.id).where(WS.token_hash == _H, WS.id == _SESS, WS.worker_id == _WPK, WS.study_id == _SID).exists()
    cond = [table.c.id == _AID, table.c.study_id == _SID, table.c.worker_id == _WPK, table.c.session_id == _SESS,
            table.c.status == LEASED_, table.c.lease_expires >= _NOW, token_ok]
    if not labeling:
        cond.append(or_(table.c.left_task_id == _CHOICE, table.c.right_task_id == _CHOICE))
    return (update(table).where(*cond).values(status=ANSWERED_, answered_at=_NOW)
            .returning(table.c.id, table.c.item_id, table.c.pair_id, table.c.gold_id, table.c.left_task_id,
                       table.c.right_task_id, table.c.leased_at))


@lru_cache(maxsize=None)
def _one_statement(labeling: bool):
    """PostgreSQL: the whole answer as one statement of data-modifying CTEs (mark the slot, insert the
    answer row or the attention-check answer, bump the unit's counter); returns the slot id or no row."""
    slot, others = answer_ctes(labeling)
    return select(slot.c.id).select_from(slot).add_cte(*others)


def answer_ctes(labeling: bool):
    """(slot, others): the data-modifying CTEs of an answer (PostgreSQL). `slot` marks the slot answered
    and returns its columns (no row when the slot is not leased to the worker); `others` insert the answer
    row or the attention-check answer and bump the unit's counter: add them to the statement with
    `add_cte`. Parameters :aid, :sid, :wpk, :sess, :h, :now, :val, :choice."""
    slot = _mark_statement(labeling).cte("slot")
    G = GoldItem.__table__
    gold = GoldAnswer.__table__.insert().from_select(
        ["assignment_id", "study_id", "gold_id", "worker_id", "answer", "correct", "leased_at", "created_at"],
        select(slot.c.id, _SID, slot.c.gold_id, _WPK, _VAL, G.c.answer == _VAL, slot.c.leased_at, _NOW)
        .select_from(slot.join(G, G.c.id == slot.c.gold_id))).cte("gold_ins")
    if labeling:
        regular = LabelRecord.__table__.insert().from_select(
            ["assignment_id", "study_id", "item_id", "worker_id", "label", "leased_at", "created_at"],
            select(slot.c.id, _SID, slot.c.item_id, _WPK, _VAL, slot.c.leased_at, _NOW).where(slot.c.gold_id.is_(None)))
        unit, col = Item.__table__, "item_id"
    else:
        regular = Judgment.__table__.insert().from_select(
            ["assignment_id", "study_id", "worker_id", "pair_id", "left_task_id", "right_task_id", "winner_task_id",
             "leased_at", "created_at"],
            select(slot.c.id, _SID, _WPK, slot.c.pair_id, slot.c.left_task_id, slot.c.right_task_id, _CHOICE,
                   slot.c.leased_at, _NOW).where(slot.c.gold_id.is_(None)))
        unit, col = TaskPair.__table__, "pair_id"
    ins = regular.returning(regular.table.c[col]).cte("ins")
    bump = update(unit).where(unit.c.id.in_(select(ins.c[col]))).values(n_answers=unit.c.n_answers + 1).cte("bump")
    return slot, (ins, gold, bump)


@lru_cache(maxsize=None)
def _fast_one_statement(labeling: bool) -> FastStatement:
    """`_one_statement` ready for the hot path."""
    return FastStatement(_one_statement(labeling))


def answer_params(ref: SessionRef, token_hash: str, assignment_id: int, answer: Answer, choice_id: int | None,
                  now: datetime) -> dict[str, Any]:
    """The parameters of the answer statements (`answer_ctes`, `_mark_statement`)."""
    return {"aid": assignment_id, "sid": ref.study_id, "wpk": ref.worker_pk, "sess": ref.session_id, "h": token_hash,
            "now": now,
            "val": answer.value, "choice": choice_id}


def reply_json(assignment_id: int, meta: StudyMeta, answer: Answer, now: datetime) -> dict[str, Any]:
    """The 201 reply to an answer recorded at `now`."""
    return _reply(assignment_id, meta.kind, answer.field, answer.value, now)


def record_answer(conn: Connection, meta: StudyMeta, ref: SessionRef, token_hash: str, assignment_id: int,
                  answer: Answer, choice_id: int | None, now: datetime) -> dict[str, Any] | None:
    """Record a validated answer to a slot the worker holds; return the 201 reply JSON, or None when the
    slot is not (or no longer) leased to the worker behind `token_hash` (then nothing was written).

    `conn` must be in autocommit mode (`db.autocommit`): the answer is committed when this returns."""
    params = answer_params(ref, token_hash, assignment_id, answer, choice_id, now)
    try:
        if conn.dialect.name == "postgresql":
            done = _fast_one_statement(meta.labeling).first(conn, params) is not None
        else:
            done = _record_in_steps(conn, meta, ref, params, answer, choice_id, now)
    except IntegrityError:
        return None  # a concurrent identical request won: `submit_answer` answers like it did
    return reply_json(assignment_id, meta, answer, now) if done else None


def _record_in_steps(conn: Connection, meta: StudyMeta, ref: SessionRef, params: dict[str, Any], answer: Answer,
                     choice_id: int | None, now: datetime) -> bool:
    """SQLite: the same as `_one_statement` in three statements inside one BEGIN IMMEDIATE transaction
    (issued here: `conn` is in autocommit mode)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        done = _steps(conn, meta, ref, params, answer, choice_id, now)
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT" if done else "ROLLBACK")
    return done


def _steps(conn: Connection, meta: StudyMeta, ref: SessionRef, params: dict[str, Any], answer: Answer,
       choice_id: int | None, now: datetime) -> bool:
    row = conn.execute(_mark_statement(meta.labeling), params).first()
    if row is None:
        return False
    if row.gold_id is not None:
        G = GoldItem.__table__.c
        conn.execute(GoldAnswer.__table__.insert().from_select(
            ["assignment_id", "study_id", "gold_id", "worker_id", "answer", "correct", "leased_at", "created_at"],
            select(literal(row.id), literal(ref.study_id), G.id, literal(ref.worker_pk), literal(answer.value),
                   G.answer == literal(answer.value), literal(row.leased_at, DateTime(timezone=True)),
                   literal(now, DateTime(timezone=True))).where(G.id == row.gold_id)))
    elif meta.labeling:
        conn.execute(LabelRecord.__table__.insert().values(
            assignment_id=row.id, study_id=ref.study_id, item_id=row.item_id, worker_id=ref.worker_pk,
            label=answer.value, leased_at=row.leased_at, created_at=now))
        I = Item.__table__.c
        conn.execute(update(Item.__table__).where(I.id == row.item_id).values(n_answers=I.n_answers + 1))
    else:
        conn.execute(Judgment.__table__.insert().values(
            assignment_id=row.id, study_id=ref.study_id, worker_id=ref.worker_pk, pair_id=row.pair_id,
            left_task_id=row.left_task_id, right_task_id=row.right_task_id, winner_task_id=choice_id,
            leased_at=row.leased_at, created_at=now))
        P = TaskPair.__table__.c
        conn.execute(update(TaskPair.__table__).where(P.id == row.pair_id).values(n_answers=P.n_answers + 1))
    return True
