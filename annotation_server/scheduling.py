"""Which slot a worker gets next, and how it is leased: a few single statements per request.

Order of preference (`serve_next`): nothing if the study is closed; the worker's own current lease (a
reload never grabs a second unit; an expired one is renewed if nobody took it); nothing once the
worker's cap (`max_per_worker`) is reached; an attention check when one is due (`gold_every = n`: every
n-th unit, while unseen checks remain); else the best free slot.

Best free slot. Labeling: a free slot of an item the worker has not seen, items with the fewest answers
first, random among equals. Pairwise, `balanced`: the same over task pairs (each pair's slots are half in
each left/right order, see `study_units.add_tasks`, so both orders are shown evenly). Pairwise, `active`: the
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

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from annotation_server.cache import StudyMeta
from annotation_server.errors import ApiError
from annotation_server.models import (
    ACTIVE,
    LABELING,
    OPEN,
    Assignment,
)
from annotation_server.active_scheduler import claim_active
from annotation_server.attention_checks import take_gold
from annotation_server.claims import Claimed, claim, has_free_unit
from annotation_server.held_leases import held_lease, own_lease
from annotation_server.next_statement import claimed_in, fast_serve_statement, serve_params, uses_serve_statement
from annotation_server.worker_state import N_STATE_COLUMNS, WorkerState, read_state, state_from_row

SLOTS = Assignment.__table__.c
#: Claim attempts per request when every slot of the window was being claimed by someone else.
ROUNDS = 8


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
            row = fast_serve_statement(meta.kind, meta.max_per_worker is not None, bool(meta.gold_every)).first(
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
        return claim_active(conn, meta, wpk, sess, now, lease_seconds)
    for _ in range(ROUNDS):
        try:
            got = claim(conn, meta, wpk, sess, now, lease_seconds)
        except IntegrityError:  # a concurrent request of the same worker took a slot of that unit: hand it back
            return own_lease(conn, meta, wpk, sess, now, lease_seconds)
        if got is not None:
            return got
        if not has_free_unit(conn, meta.kind, meta.id, meta.quota, wpk, now):
            return None
    return None


