"""Attention checks of a pairwise study: which check a worker gets, and the pairs kept back for them.

A pairwise check shows a pair of the study's tasks, and a worker never sees a pair twice: a pair shown
once as a regular unit and once as a check would give the check away. So:

- A check's slot takes its pair's place in the worker's sequence: it is a slot of the pair's unit (unit
  key "p<pair id>", the pair's id, slot number -worker, the check's id in `gold_id`, the check's own
  left/right order). UNIQUE(study_id, unit_key, worker_id) and the claim's "seen" probe then keep every
  regular slot of the pair from that worker, and the pair counts as one of their units in the progress
  figures. A check whose pair the worker has already had (as a regular unit, or as another check on
  the same pair) is never served to them.
- Each worker meets the checks in an order of their own (`check_order`, a hash of check and worker), and
  the pairs of the checks still to come to them are kept back (`reserved_pairs`): the claim gives such a
  pair as a regular unit only when no other unit in its window is free for the worker. The checks still
  to come are all the worker's unseen checks, or, under a cap of `max_per_worker` units, as many as the
  cap leaves room for ((cap - 1) // (gold_every - 1) in all). So which checks a worker gets does not depend
  on which pairs they happened to be given first, and a pair kept back for one worker's check is judged
  by the workers who will not get that check.

Labeling checks are texts of their own (unit key "g<id>"), never an item of the study: nothing to keep back.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String, and_, case, cast, func, or_, select

from annotation_server.models import Assignment, GoldItem, TaskPair
from annotation_server.sqlparts import MAX_PER_WORKER, LEASE_EXPIRES, GOLD_EVERY, SQL_LEASED, NOW, QUOTA, STUDY_ID, const

#: Columns of the slot a pairwise check's lease inserts (`check_source` gives their values).
CHECK_COLUMNS = ["study_id", "unit_key", "slot", "gold_id", "pair_id", "left_task_id", "right_task_id", "worker_id",
                 "session_id", "status", "leased_at", "lease_expires"]


def check_order(gold_id, wpk):
    """SQL: the position of check `gold_id` in worker `wpk`'s own order: x = (check, worker) mapped linearly
    modulo a prime, then squared modulo it, so that each worker's order is a different shuffle (ties by id)."""
    x = (cast(gold_id, BigInteger) * const(7919) + cast(wpk, BigInteger) * const(104729)) % const(PRIME)
    return (x * x) % const(PRIME)  # 64-bit: x < PRIME


PRIME = 1000003


def _checks_and_pairs(wpk):
    """(FROM clause, WHERE conditions) of the study's checks with their pairs, neither had by worker `wpk`."""
    G, P = GoldItem.__table__.alias("cg"), TaskPair.__table__.alias("cp")
    same = or_(and_(P.c.first_task_id == G.c.left_task_id, P.c.second_task_id == G.c.right_task_id),
               and_(P.c.first_task_id == G.c.right_task_id, P.c.second_task_id == G.c.left_task_id))
    had_check, had_pair = Assignment.__table__.alias("ch"), Assignment.__table__.alias("cu")
    check_seen = select(had_check.c.id).where(had_check.c.gold_id == G.c.id, had_check.c.worker_id == wpk).exists()
    pair_seen = select(had_pair.c.id).where(had_pair.c.study_id == STUDY_ID, had_pair.c.worker_id == wpk,
                                            had_pair.c.unit_key == const("p") + cast(P.c.id, String)).exists()
    return G, P, G.join(P, and_(P.c.study_id == G.c.study_id, same)), [G.c.study_id == STUDY_ID, ~check_seen, ~pair_seen]


def reserved_pairs(wpk, capped: bool):
    """SELECT the ids of the pairs kept back for worker `wpk`'s checks still to come (module doc).
    Parameters :sid, and :cap and :gold_every when `capped`."""
    G, P, source, unseen = _checks_and_pairs(wpk)
    pairs = select(P.c.id).select_from(source).where(*unseen).order_by(check_order(G.c.id, wpk), G.c.id)
    if not capped:
        return pairs
    mine = Assignment.__table__.alias("cm")
    given = select(func.count()).where(mine.c.study_id == STUDY_ID, mine.c.worker_id == wpk,
                                       mine.c.gold_id.is_not(None)).scalar_subquery()
    room = (MAX_PER_WORKER - const(1)) // (GOLD_EVERY - const(1)) - given
    return pairs.limit(case((room > const(0), room), else_=const(0)))


def reserved_below(wpk, capped: bool):
    """SQL: how many of the pairs kept back for worker `wpk` are below quota (:q): units the progress figures
    count as checks to come, not as regular units."""
    P = TaskPair.__table__.alias("rb")
    return (select(func.count()).select_from(P)
            .where(P.c.id.in_(reserved_pairs(wpk, capped)), P.c.n_answers < QUOTA).scalar_subquery())


def check_source(wpk, sess, guard=None):
    """SELECT the values (`CHECK_COLUMNS`) of a lease of worker `wpk`'s (session `sess`) next check: the first in
    their order whose check and pair they have not had; only where SQL condition `guard` (if given) holds.
    Parameters :sid, :now, :exp."""
    G, P, source, unseen = _checks_and_pairs(wpk)
    return (select(STUDY_ID, const("p") + cast(P.c.id, String), const(0) - wpk, G.c.id, P.c.id, G.c.left_task_id,
                   G.c.right_task_id, wpk, sess, SQL_LEASED, NOW, LEASE_EXPIRES)
            .select_from(source).where(*unseen, *([guard] if guard is not None else []))
            .order_by(check_order(G.c.id, wpk), G.c.id).limit(const(1)))
