"""The annotation server's tables (SQLModel), with the constraints that keep the data honest.

Work is handed out in *slots*: an `Assignment` row is one unit of work (one labeling of one item, or
one judgment of one task pair in a fixed left/right order) that exists before anyone takes it.
Labeling items get `labels_per_item` slots, task pairs get `judgments_per_pair` slots (half with each
task on the left), so a quota can never be over-filled: there is nothing beyond the slots to hand out.
Taking a slot is one atomic conditional UPDATE (see `leases.py`).

Database-level guarantees (UNIQUE constraints, on SQLite and PostgreSQL alike):
- a worker holds at most one slot of a unit (`uq_assignment_study_id_unit_key_worker_id`): never the
  same item or pair twice;
- one answer per slot (`judgment.assignment_id`, `label_record.assignment_id`, `gold_answer.assignment_id`);
- one judgment per (study, worker, pair); one label per (item, worker); one gold answer per (gold, worker).

Times are aware UTC datetimes (`annotation_server.clock.utcnow`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, UniqueConstraint, false, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

#: Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_registry = registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))


class Base(SQLModel, registry=_registry):
    """Base class of the server's tables; `Base.metadata` holds exactly these tables."""


#: Study kinds and statuses, slot statuses, schedulers.
PAIRWISE, LABELING = "pairwise", "labeling"
OPEN, CLOSED = "open", "closed"
SLOT_OPEN, SLOT_LEASED, SLOT_ANSWERED = "open", "leased", "answered"
BALANCED, ACTIVE = "balanced", "active"


class Study(Base, table=True):
    """A crowd study: pairwise task comparisons or instance labeling."""

    __tablename__ = "study"
    __table_args__ = (UniqueConstraint("name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    status: str = Field(default=OPEN, max_length=16)
    title: str = Field(default="", max_length=200)
    instructions: str = Field(default="")
    scheduler: str = Field(default=BALANCED, max_length=16)
    #: labeling: the TaskSpec (as a dict) whose labels workers choose from.
    task_spec: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON))
    labels_per_item: Optional[int] = None
    judgments_per_pair: Optional[int] = None
    examples_per_task: Optional[int] = None
    max_per_worker: Optional[int] = None
    gold_every: Optional[int] = None
    completion_secret: str = Field(max_length=64)
    #: Web entry only through links signed with `signing_secret` (`subjlab study link`; migration 0004).
    require_signed_entry: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    #: The study's own key (never shown): signed entry links and opaque assignment handles (`handles.py`).
    signing_secret: Optional[str] = Field(default=None, max_length=64)
    created_at: datetime
    closed_at: Optional[datetime] = None
    #: Units (items or task pairs) and their regular slots, counted when they are added (migration 0005).
    n_units: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    n_slots: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))


class StudyTask(Base, table=True):
    """A task compared in a pairwise study: its spec and the example texts shown to workers."""

    __tablename__ = "study_task"
    __table_args__ = (UniqueConstraint("study_id", "key"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    key: str = Field(max_length=100)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    examples: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime


class TaskPair(Base, table=True):
    """An unordered pair of tasks of a pairwise study (first.key < second.key), with its judgment count."""

    __tablename__ = "task_pair"
    __table_args__ = (
        UniqueConstraint("study_id", "first_task_id", "second_task_id"),
        Index("ix_task_pair_study_id_n_answers", "study_id", "n_answers"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    first_task_id: int = Field(foreign_key="study_task.id")
    second_task_id: int = Field(foreign_key="study_task.id")
    n_answers: int = 0


class Item(Base, table=True):
    """An instance to label in a labeling study; `extra` keeps the input's other fields."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("study_id", "external_id"),
        Index("ix_item_study_id_n_answers", "study_id", "n_answers"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    external_id: str = Field(max_length=200)
    text: str
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    n_answers: int = 0
    created_at: datetime


class GoldItem(Base, table=True):
    """An attention check with a known answer: a labeling item (`text`) or a task pair (`left/right`)."""

    __tablename__ = "gold_item"
    __table_args__ = (UniqueConstraint("study_id", "key"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    key: str = Field(max_length=200)
    text: Optional[str] = None
    left_task_id: Optional[int] = Field(default=None, foreign_key="study_task.id")
    right_task_id: Optional[int] = Field(default=None, foreign_key="study_task.id")
    answer: str = Field(max_length=200)
    created_at: datetime


class Worker(Base, table=True):
    """A crowd worker, by the id the crowd platform gives (e.g. an MTurk worker id)."""

    __tablename__ = "worker"
    __table_args__ = (UniqueConstraint("external_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128)
    created_at: datetime


#: How a session came in (`WorkerSession.entry`) and what the last identity check said (`check_status`).
ENTRY_API, ENTRY_WEB, ENTRY_SIGNED, ENTRY_MTURK, ENTRY_PROLIFIC = "api", "web", "signed", "mturk", "prolific"
CONFIRMED, UNCONFIRMED = "confirmed", "unconfirmed"


class WorkerSession(Base, table=True):
    """A worker's session in one study; only the SHA-256 of the bearer token is stored.

    `entry`: how it started (api, web, signed, mturk, prolific); `entry_ref`: what the platform gave
    (MTurk "HIT/ASSIGNMENT", Prolific "STUDY/SESSION"); `check_status`: None (never checked), "confirmed"
    or "unconfirmed" (the platform does not confirm the session: its answers are left out of exports and
    analyses by default), with `check_reason` and `checked_at`."""

    __tablename__ = "worker_session"
    # (study_id, check_status): the agreement view takes out the answers of a study's unconfirmed sessions
    # from there, instead of walking every slot of the study (migration 0005)
    __table_args__ = (UniqueConstraint("token_hash"),
                      Index("ix_worker_session_study_id_check_status", "study_id", "check_status"))

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    worker_id: int = Field(foreign_key="worker.id")
    token_hash: str = Field(max_length=64)
    created_at: datetime
    entry: str = Field(default=ENTRY_API, max_length=16)
    entry_ref: Optional[str] = Field(default=None, max_length=300)
    check_status: Optional[str] = Field(default=None, max_length=16)
    check_reason: Optional[str] = Field(default=None, max_length=300)
    checked_at: Optional[datetime] = None


class AdminSession(Base, table=True):
    """A logged-in admin browser (dashboard): the SHA-256 of the token its cookie holds, until it expires or
    logs out (`revoked_at`): a copy of the cookie stops working then."""

    __tablename__ = "admin_session"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64)
    created_at: datetime
    expires_at: datetime
    revoked_at: Optional[datetime] = None


class Assignment(Base, table=True):
    """One slot of work. `unit_key` names the unit ("i<item id>", "p<pair id>", "g<gold id>").

    status: open (free) -> leased (worker_id and session_id set, until lease_expires) -> answered. A lease
    past its expiry counts as free and is handed to the next worker who asks. Only the session that
    leased a slot (`session_id`, migration 0004) may answer it.
    Pairwise slots record the order shown: `left_task_id`, `right_task_id`.
    """

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("study_id", "unit_key", "slot"),
        UniqueConstraint("study_id", "unit_key", "worker_id"),
        # No index on `status` (migration 0003): answering a slot then is a HOT update on PostgreSQL.
        # (study_id, worker_id) lookups (a worker's slots) and "has this worker seen unit X" probes both use
        # it as an exact index lookup, whatever plan the database picks (migration 0002).
        Index("ix_assignment_study_id_worker_id_unit_key", "study_id", "worker_id", "unit_key"),
        Index("ix_assignment_item_id", "item_id"),
        Index("ix_assignment_pair_id", "pair_id"),
        Index("ix_assignment_gold_id_worker_id", "gold_id", "worker_id"),
        # The regular slots on lease (migration 0005): the admin's lease counts read this small index
        # instead of every slot of the study.
        Index("ix_assignment_leased", "study_id", "lease_expires",
              sqlite_where=text("status = 'leased' AND gold_id IS NULL"),
              postgresql_where=text("status = 'leased' AND gold_id IS NULL")),
        # SQLite only (migration 0006): the answered regular slots' times by worker, so the worker table's
        # medians read one index instead of a row per answer. Not on PostgreSQL, where an index whose
        # predicate reads `status` would make answering a non-HOT update. `info["dialects"]` is read by
        # `schema.include_object` (autogenerate comparisons) and the DDL condition by `create_all`.
        Index("ix_assignment_answer_times",
              "study_id", "worker_id", "leased_at", "answered_at", "status", "gold_id",
              sqlite_where=text("status = 'answered' AND gold_id IS NULL"),
              info={"dialects": ("sqlite",)}).ddl_if(dialect="sqlite"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    unit_key: str = Field(max_length=40)
    slot: int
    item_id: Optional[int] = Field(default=None, foreign_key="item.id")
    pair_id: Optional[int] = Field(default=None, foreign_key="task_pair.id")
    gold_id: Optional[int] = Field(default=None, foreign_key="gold_item.id")
    left_task_id: Optional[int] = Field(default=None, foreign_key="study_task.id")
    right_task_id: Optional[int] = Field(default=None, foreign_key="study_task.id")
    worker_id: Optional[int] = Field(default=None, foreign_key="worker.id")
    #: the `worker_session.id` that holds or answered the slot. No foreign key on purpose: every claim sets
    #: it, and on PostgreSQL a foreign key would add a referential check (a trigger and a row lock on the
    #: session) to each lease; sessions are never deleted, and only the server writes this column.
    session_id: Optional[int] = None
    status: str = Field(default=SLOT_OPEN, max_length=16)
    leased_at: Optional[datetime] = None
    lease_expires: Optional[datetime] = None
    answered_at: Optional[datetime] = None


class Judgment(Base, table=True):
    """A pairwise answer: `winner_task_id` is the task judged MORE objective; left/right as shown."""

    __tablename__ = "judgment"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("study_id", "worker_id", "pair_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id")
    study_id: int = Field(foreign_key="study.id")
    worker_id: int = Field(foreign_key="worker.id")
    pair_id: int = Field(foreign_key="task_pair.id")
    left_task_id: int = Field(foreign_key="study_task.id")
    right_task_id: int = Field(foreign_key="study_task.id")
    winner_task_id: int = Field(foreign_key="study_task.id")
    leased_at: Optional[datetime] = None
    created_at: datetime


class LabelRecord(Base, table=True):
    """A labeling answer: one worker's label for one item."""

    __tablename__ = "label_record"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("item_id", "worker_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id")
    study_id: int = Field(foreign_key="study.id")
    item_id: int = Field(foreign_key="item.id")
    worker_id: int = Field(foreign_key="worker.id")
    label: str = Field(max_length=200)
    leased_at: Optional[datetime] = None
    created_at: datetime


class GoldAnswer(Base, table=True):
    """A worker's answer to an attention check, and whether it was right."""

    __tablename__ = "gold_answer"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("gold_id", "worker_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id")
    study_id: int = Field(foreign_key="study.id")
    gold_id: int = Field(foreign_key="gold_item.id")
    worker_id: int = Field(foreign_key="worker.id")
    answer: str = Field(max_length=200)
    correct: bool
    leased_at: Optional[datetime] = None
    created_at: datetime


class WorkerStats(Base, table=True):
    """One worker's answers in one study, kept by the database itself (triggers of migration 0005 on the
    answer tables): regular answers, attention checks answered and right, pairwise answers won by the task
    shown on the left, time of the first and last regular answer. The admin views read these instead of
    every answer; `tallies.recount` rebuilds them from the rows."""

    __tablename__ = "worker_stats"

    study_id: int = Field(foreign_key="study.id", primary_key=True)
    worker_id: int = Field(foreign_key="worker.id", primary_key=True)
    answered: int = 0
    gold_answered: int = 0
    gold_correct: int = 0
    left_wins: int = 0
    first_at: Optional[datetime] = None
    last_at: Optional[datetime] = None


class StudyTally(Base, table=True):
    """Units of a study that reached their quota, in `tallies.SHARDS` rows per study (shard = unit id modulo
    that), kept by the database itself (a trigger on the units' answer counters, migration 0005). Split in
    shards so that two answers completing different units rarely wait for the same row; the hot path
    reads the sum of a study's few rows."""

    __tablename__ = "study_tally"

    study_id: int = Field(foreign_key="study.id", primary_key=True)
    shard: int = Field(primary_key=True)
    full_units: int = 0


#: The core's tables, for row-count checks.
TABLES = [Study, StudyTask, TaskPair, Item, GoldItem, Worker, WorkerSession, Assignment, Judgment, LabelRecord, GoldAnswer,
          AdminSession, WorkerStats, StudyTally]
metadata = Base.metadata

#: Modules of other parts of the server that add tables to `Base.metadata` (imported when present).
EXTENSION_MODELS = ("annotation_server.mturk.models",)


def load_extension_models() -> None:
    """Import the extension model modules that exist, so `metadata` holds every table of the schema."""
    import importlib
    import importlib.util

    for name in EXTENSION_MODELS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(name)
