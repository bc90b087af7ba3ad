"""The `active` pairwise scheduler: free pairs ordered by `analysis.pair_selection.suggest_pairs` on the
judgments so far (small studies: it reads every free slot and judgment of the study per request)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from annotation_server import pair_checks
from annotation_server.cache import StudyMeta
from annotation_server.leases import free_clause
from annotation_server.sqlparts import WORKER_PK
from annotation_server.models import (
    SLOT_LEASED,
    Assignment,
    Judgment,
    StudyTask,
    TaskPair,
)
from annotation_server.claims import Claimed, claimed_from_row, returning_columns
from annotation_server.held_leases import own_lease
from annotation_server.worker_state import check_params, keeps_pairs


SLOTS = Assignment.__table__.c

def claim_active(conn: Connection, meta: StudyMeta, worker_pk: int, session_id: int, now: datetime,
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
    kept = set()  # pairs kept back for the worker's attention checks: last (`pair_checks`)
    if keeps_pairs(meta.kind, bool(meta.gold_every)):
        kept = set(conn.execute(pair_checks.reserved_pairs(WORKER_PK, meta.max_per_worker is not None),
                                {"sid": meta.id, "wpk": worker_pk, **check_params(meta)}).scalars())
    slot_pair = dict(rows)
    candidates = order + rest
    candidates.sort(key=lambda slot_id: slot_pair[slot_id] in kept)  # stable: the suggested order otherwise
    table = Assignment.__table__
    for slot_id in candidates:
        try:
            row = conn.execute(
                update(table).where(table.c.id == slot_id, free_clause(now))
                .values(status=SLOT_LEASED, worker_id=worker_pk, session_id=session_id, leased_at=now,
                        lease_expires=now + timedelta(seconds=lease_seconds))
                .returning(*returning_columns(table, meta.kind))).first()
        except IntegrityError:
            return own_lease(conn, meta, worker_pk, session_id, now, lease_seconds)
        if row is not None:
            return claimed_from_row(row, meta.kind, new_regular=True)
    return None


def _active_candidates(meta: StudyMeta, worker_pk: int, now: datetime):
    """Every free slot of a pair below quota that the worker has not judged: (slot_id, pair_id)."""
    P = TaskPair.__table__
    m = Assignment.__table__.alias("m")
    seen = select(m.c.id).where(m.c.study_id == meta.id, m.c.unit_key == SLOTS.unit_key, m.c.worker_id == worker_pk).exists()
    return (select(SLOTS.id, SLOTS.pair_id).select_from(Assignment.__table__.join(P, P.c.id == SLOTS.pair_id))
            .where(P.c.study_id == meta.id, P.c.n_answers < meta.quota, free_clause(now), SLOTS.gold_id.is_(None),
                   ~seen))  # active: small studies


def _pair_tuple(pair: Any) -> tuple[str, str]:
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        return str(pair[0]), str(pair[1])
    return str(pair.left), str(pair.right)  # a record-like suggestion
