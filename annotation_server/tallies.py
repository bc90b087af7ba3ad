"""A study's counters, kept as it goes, so that no view of it has to count every slot or every answer.

What is kept where (migration 0005):
- `study.n_units`, `study.n_slots`: units and regular slots, counted when they are added (`studies.py`);
- `worker_stats`, one row per study and worker: regular answers, attention checks answered and right,
  pairwise answers won by the left-hand task, first and last answer time;
- `study_tally`: units that reached their quota, in `SHARDS` rows per study;
- leases: `ix_assignment_leased`, a partial index over the regular slots on lease (a handful of rows:
  at most one per live session, plus abandoned leases not yet taken over).
`worker_stats` and `study_tally` are kept by triggers on the answer tables and the units' answer
counters: every path that writes an answer (the hot path's single statements, the long path, a bulk
load) keeps them right in the same transaction, and no request sends a statement more for them.

Reading them costs a few rows per study (`study_tally`, leases) plus one row per worker (`worker_stats`).
`recounted` computes the same figures from the rows themselves (every slot and answer of the study);
`recount` rewrites the stored counters from it (after a bulk load that bypassed the triggers).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Connection

from annotation_server.sqlparts import SQL_LEASED
from annotation_server.models import (
    LABELING,
    SLOT_LEASED,
    Assignment,
    GoldAnswer,
    Item,
    Judgment,
    LabelRecord,
    Study,
    StudyTally,
    TaskPair,
    WorkerStats,
)

#: Rows of `study_tally` per study (the migration's triggers use the same number).
SHARDS = 32

SLOTS, STUDIES, TALLY, STATS = Assignment.__table__.c, Study.__table__.c, StudyTally.__table__.c, WorkerStats.__table__.c


@dataclass(frozen=True)
class Tallies:
    """A study's counters: units and slots, answers, leases, answers per worker, gold and left-side wins.

    `answer_counts`: ((regular answers, workers who gave that many), ...) for every count above 0, by count:
    the answers-per-worker figures follow from it in a few rows, whatever the number of workers."""

    units: int
    slots: int
    full_units: int
    answered: int
    active_leases: int
    expired_leases: int
    gold_answered: int
    gold_correct: int
    left_wins: int
    answer_counts: tuple[tuple[int, int], ...] = ()

    @property
    def open_slots(self) -> int:
        """Regular slots neither answered nor on lease."""
        return self.slots - self.answered - self.active_leases - self.expired_leases

    @property
    def workers(self) -> int:
        """Workers who gave at least one regular answer."""
        return sum(n for _, n in self.answer_counts)

    def _answers_of(self, position: int) -> int:
        """Answers of the worker at `position` (0-based) when workers are sorted by answers."""
        for answers, n in self.answer_counts:
            if position < n:
                return answers
            position -= n
        raise IndexError(position)

    def to_json(self) -> dict[str, Any]:
        """The counters as the Progress JSON has them (see `progress.study_progress`)."""
        n = self.workers
        # as `statistics.median` gives it: the middle count, or the mean of the two middle ones
        median = (0 if not n else self._answers_of(n // 2) if n % 2
                  else (self._answers_of(n // 2 - 1) + self._answers_of(n // 2)) / 2)
        return {"units": self.units, "slots": self.slots, "answered": self.answered,
                "active_leases": self.active_leases, "expired_leases": self.expired_leases,
                "open_slots": self.open_slots, "complete_units": self.full_units, "workers": n,
                "answers_per_worker": {"min": self.answer_counts[0][0] if n else 0, "median": median,
                                       "max": self.answer_counts[-1][0] if n else 0}}


def full_units_sum(study_id):
    """SQL: the study's units at quota (the sum of its `study_tally` rows); `study_id` a value or SQL expression."""
    return select(func.coalesce(func.sum(TALLY.full_units), 0)).where(TALLY.study_id == study_id).scalar_subquery()


def lease_counts(conn: Connection, study_id: int, now: datetime) -> tuple[int, int]:
    """(active, expired) regular leases of the study at `now`, from `ix_assignment_leased`."""
    # the status as a literal, not a bind parameter: PostgreSQL's generic plan of a prepared statement (psycopg
    # prepares a statement from its 5th execution) can only use the partial index when it sees 'leased'
    leased = and_(SLOTS.study_id == study_id, SLOTS.status == SQL_LEASED, SLOTS.gold_id.is_(None))
    active, total = conn.execute(select(func.coalesce(func.sum(case((SLOTS.lease_expires >= now, 1), else_=0)), 0),
                                        func.count()).where(leased)).one()
    return int(active), int(total) - int(active)


def counted(conn: Connection, study_id: int, now: datetime) -> Tallies:
    """The study's Tallies from the kept counters: a few rows (sums and counts of `worker_stats` computed by
    the database, never one row per worker read into Python)."""
    units, slots, full = conn.execute(select(STUDIES.n_units, STUDIES.n_slots, full_units_sum(STUDIES.id))
                                      .where(STUDIES.id == study_id)).one()
    mine = STATS.study_id == study_id
    sums = conn.execute(select(*(func.coalesce(func.sum(c), 0) for c in (
        STATS.answered, STATS.gold_answered, STATS.gold_correct, STATS.left_wins))).where(mine)).one()
    counts = conn.execute(select(STATS.answered, func.count()).where(mine, STATS.answered > 0)
                          .group_by(STATS.answered).order_by(STATS.answered)).all()
    active, expired = lease_counts(conn, study_id, now)
    return Tallies(units=int(units), slots=int(slots), full_units=int(full), answered=int(sums[0]),
                   active_leases=active, expired_leases=expired, gold_answered=int(sums[1]),
                   gold_correct=int(sums[2]), left_wins=int(sums[3]),
                   answer_counts=tuple((int(a), int(n)) for a, n in counts))


def _tallies(units: int, slots: int, full: int, active: int, expired: int,
             per_worker: dict[int, tuple[int, int, int, int]]) -> Tallies:
    """Tallies from per-worker rows {worker pk: (answered, gold_answered, gold_correct, left_wins)}."""
    sums = [sum(row[i] for row in per_worker.values()) for i in range(4)]
    counts = Counter(row[0] for row in per_worker.values() if row[0] > 0)
    return Tallies(units=units, slots=slots, full_units=full, answered=sums[0], active_leases=active,
                   expired_leases=expired, gold_answered=sums[1], gold_correct=sums[2], left_wins=sums[3],
                   answer_counts=tuple(sorted(counts.items())))


# ------------------------------------------------------------------------------------------ recount
def _unit_table(kind: str):
    return Item.__table__ if kind == LABELING else TaskPair.__table__


def _answer_rows(study_id: int):
    """SELECT (worker_id, answered, gold_answered, gold_correct, left_wins, created_at) of every answer."""
    L, J, G = LabelRecord.__table__.c, Judgment.__table__.c, GoldAnswer.__table__.c
    names = ("worker_id", "answered", "gold_answered", "gold_correct", "left_wins", "created_at")

    def row(*values):  # labelled, so that a repeated constant stays a column of its own
        return [(v if hasattr(v, "label") else literal(v)).label(n) for n, v in zip(names, values)]

    return union_all(
        select(*row(L.worker_id, 1, 0, 0, 0, L.created_at)).where(L.study_id == study_id),
        select(*row(J.worker_id, 1, 0, 0, case((J.winner_task_id == J.left_task_id, 1), else_=0), J.created_at))
        .where(J.study_id == study_id),
        select(*row(G.worker_id, 0, 1, case((G.correct, 1), else_=0), 0, literal(None, G.created_at.type)))
        .where(G.study_id == study_id),
    ).subquery("answers")


def _recounted_workers(conn: Connection, study_id: int) -> list[tuple]:
    """(worker pk, answered, gold_answered, gold_correct, left_wins, first_at, last_at) from the answer rows."""
    a = _answer_rows(study_id).c
    return [tuple(r) for r in conn.execute(
        select(a.worker_id, func.sum(a.answered), func.sum(a.gold_answered), func.sum(a.gold_correct),
               func.sum(a.left_wins), func.min(a.created_at), func.max(a.created_at)).group_by(a.worker_id))]


def recounted(conn: Connection, study_id: int, now: datetime) -> Tallies:
    """The study's Tallies counted from its rows (every slot and every answer): what `counted` must equal."""
    kind, quota = conn.execute(select(STUDIES.kind, func.coalesce(STUDIES.labels_per_item, STUDIES.judgments_per_pair))
                               .where(STUDIES.id == study_id)).one()
    unit = _unit_table(kind)
    units = conn.execute(select(func.count()).select_from(unit).where(unit.c.study_id == study_id)).scalar()
    full = conn.execute(select(func.count()).select_from(unit).where(unit.c.study_id == study_id,
                                                                       unit.c.n_answers >= quota)).scalar()
    regular = and_(SLOTS.study_id == study_id, SLOTS.gold_id.is_(None))
    slots, active, expired = conn.execute(select(
        func.count(),
        func.coalesce(func.sum(case((and_(SLOTS.status == SLOT_LEASED, SLOTS.lease_expires >= now), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(SLOTS.status == SLOT_LEASED, SLOTS.lease_expires < now), 1), else_=0)), 0),
    ).where(regular)).one()
    per_worker = {r[0]: tuple(int(x) for x in r[1:5]) for r in _recounted_workers(conn, study_id)}
    return _tallies(int(units), int(slots), int(full), int(active), int(expired), per_worker)


def stored_worker_rows(conn: Connection, study_id: int) -> list[tuple]:
    """The study's `worker_stats` rows as `_recounted_workers` gives them, sorted by worker."""
    return sorted(tuple(r) for r in conn.execute(
        select(STATS.worker_id, STATS.answered, STATS.gold_answered, STATS.gold_correct, STATS.left_wins, STATS.first_at, STATS.last_at)
        .where(STATS.study_id == study_id)))


def recounted_worker_rows(conn: Connection, study_id: int) -> list[tuple]:
    """`stored_worker_rows` as counted from the answer rows."""
    return sorted(_recounted_workers(conn, study_id))


def recount(conn: Connection, study_id: int) -> None:
    """Rewrite the study's stored counters (units, slots, `worker_stats`, `study_tally`) from its rows, in
    the caller's transaction (after rows were loaded with the triggers off, or to repair)."""
    kind, quota = conn.execute(select(STUDIES.kind, func.coalesce(STUDIES.labels_per_item, STUDIES.judgments_per_pair))
                               .where(STUDIES.id == study_id)).one()
    unit = _unit_table(kind)
    units = select(func.count()).select_from(unit).where(unit.c.study_id == study_id).scalar_subquery()
    slots = select(func.count()).select_from(Assignment.__table__).where(
        SLOTS.study_id == study_id, SLOTS.gold_id.is_(None)).scalar_subquery()
    conn.execute(update(Study.__table__).where(STUDIES.id == study_id).values(n_units=units, n_slots=slots))
    conn.execute(delete(WorkerStats.__table__).where(STATS.study_id == study_id))
    rows = _recounted_workers(conn, study_id)
    if rows:
        conn.execute(insert(WorkerStats.__table__), [
            {"study_id": study_id, "worker_id": r[0], "answered": r[1], "gold_answered": r[2], "gold_correct": r[3],
             "left_wins": r[4], "first_at": r[5], "last_at": r[6]} for r in rows])
    conn.execute(delete(StudyTally.__table__).where(TALLY.study_id == study_id))
    shard = unit.c.id % SHARDS
    conn.execute(insert(StudyTally.__table__).from_select(
        ["study_id", "shard", "full_units"],
        select(literal(study_id), shard, func.count()).where(unit.c.study_id == study_id, unit.c.n_answers >= quota)
        .group_by(shard)))
