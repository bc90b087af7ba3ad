"""An answer and the worker's next assignment in ONE statement (PostgreSQL; `POST /assignments/{id}?next=1`).

The statement (`_statement`) is the answer's data-modifying CTEs (`answers.answer_ctes`: mark the slot
answered, insert the answer row, bump the unit's counter) followed by `next_statement.serve_statement`: the
worker's state and, if the answer was recorded and a plain claim is what `next` would do, the lease of
the best free slot. One statement is one transaction: the answer and the new lease commit together, with
one WAL flush, or not at all.

All the sub-statements see the database as it was when the statement began, so the state read in it
still shows the answered slot as leased and the unit's old counter; `_after_answer` moves the counts on
by the one answer. Whenever the statement did not lease (an attention check due, the cap reached, no free
slot in the window, the lease of another slot held), the caller serves `next` the usual way; when it did
not record the answer (a repeat, an expired lease, someone else's assignment), nothing was written and the
caller answers the long way (`answers.submit_answer`).

Why hand-written SQL (SQLAlchemy Core, not the ORM): one statement is one round trip and one commit per
answer; the ORM's unit of work would send several statements and flush twice. It is the one-trip loop's
whole cost on PostgreSQL (`docs/server.md`, "Performance").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from annotation_server import answers, next_statement, worker_state
from annotation_server.answers import Answer
from annotation_server.cache import SessionRef, StudyMeta
from annotation_server.db import FastStatement
from annotation_server.models import LABELING
from annotation_server.scheduling import NextResult
from annotation_server.worker_state import WorkerCounts, WorkerState

#: Where the answered slot's columns (id, gold_id) and the leased slot's columns start in a row.
_ANSWERED = worker_state.N_STATE_COLUMNS
_CLAIMED = _ANSWERED + 2


def applies(conn: Connection, meta: StudyMeta) -> bool:
    """Whether an answer with `?next=1` in study `meta` runs as one statement (see `uses_serve_statement`)."""
    return next_statement.uses_serve_statement(conn, meta)


@lru_cache(maxsize=None)
def _statement(kind: str, capped: bool, with_gold: bool) -> FastStatement:
    slot, others = answers.answer_ctes(kind == LABELING)
    return FastStatement(next_statement.serve_statement(kind, capped, with_gold, answered=slot).add_cte(*others))


def answer_and_next(conn: Connection, meta: StudyMeta, ref: SessionRef, token_hash: str, assignment_id: int,
                    answer: Answer, choice_id: int | None, now: datetime,
                    lease_seconds: float) -> tuple[dict[str, Any] | None, NextResult | None]:
    """Record a validated answer and lease the worker's next slot in one statement (module doc).

    Returns (reply, next): reply is the 201 reply JSON, or None when the answer was not recorded (nothing
    was written; then next is None too); next is the NextResult when the statement leased the next slot,
    else None (serve `next` the usual way). `conn` must be in autocommit mode (`db.autocommit`)."""
    params = {**answers.answer_params(ref, token_hash, assignment_id, answer, choice_id, now),
              **next_statement.serve_params(meta, token_hash, now, lease_seconds)}
    try:
        row = _statement(meta.kind, meta.max_per_worker is not None, bool(meta.gold_every)).first(conn, params)
    except IntegrityError:
        # the worker raced itself for a unit, or a concurrent identical answer won: nothing was written;
        # record the answer on its own (which tells a repeat from a first answer), then serve `next`
        return answers.record_answer(conn, meta, ref, token_hash, assignment_id, answer, choice_id, now), None
    if row is None or row[_ANSWERED] is None:
        return None, None
    reply = answers.reply_json(assignment_id, meta, answer, now)
    claimed = next_statement.claimed_in(row, _CLAIMED, meta.kind)
    state = worker_state.state_from_row(row)
    if claimed is None or state is None:
        return reply, None
    return reply, NextResult(_after_answer(state, gold=row[_ANSWERED + 1] is not None), claimed)


def _after_answer(state: WorkerState, gold: bool) -> WorkerState:
    """The worker's state read before the answer, moved on by it: the answered slot counts as answered
    and no lease is held. (The units below quota need no change: the answered unit, if it just reached
    its quota, leaves both `below` and the worker's `mine_below`.)"""
    c = state.counts
    if gold:
        counts = WorkerCounts(c.regular_answered, c.regular_leased, c.gold_answered + 1, c.gold_leased - 1)
    else:
        counts = WorkerCounts(c.regular_answered + 1, c.regular_leased - 1, c.gold_answered, c.gold_leased)
    return replace(state, counts=counts, lease_id=None, lease_expires=None)
