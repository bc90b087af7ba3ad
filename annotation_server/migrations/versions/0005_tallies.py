"""Counters kept by the database, so that neither the hot path nor the admin views count every slot.

- `study.n_units`, `study.n_slots`: units and regular slots of a study, counted when they are added.
- `worker_stats` (one row per study and worker: answers, attention checks answered and right, left-side
  wins, first and last answer) and `study_tally` (units that reached their quota, in 32 shards per study
  by unit id): kept by triggers on the answer tables and the units' answer counters, so every path that
  writes an answer keeps them right, and the worker hot path still sends the statements it sent before.
- `ix_assignment_leased`: a partial index over the regular slots on lease, for the lease counts.
- `ix_worker_session_study_id_check_status`: a study's unconfirmed sessions (the agreement view takes
  their answers out) without walking every slot of the study.

Existing studies get their counters from their rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SHARDS = 32
LEASED = "status = 'leased' AND gold_id IS NULL"
STATS_COLUMNS = "study_id, worker_id, answered, gold_answered, gold_correct, left_wins, first_at, last_at"
#: first and last answer time: the earliest and the latest `created_at` (SQL of both databases)
TIMES = ("first_at = CASE WHEN {w}first_at IS NULL OR excluded.first_at < {w}first_at THEN excluded.first_at "
         "ELSE {w}first_at END, last_at = CASE WHEN {w}last_at IS NULL OR excluded.last_at > {w}last_at "
         "THEN excluded.last_at ELSE {w}last_at END")
#: (trigger, table, VALUES of a new worker_stats row, SET on conflict) for the three answer tables
ANSWER_TRIGGERS = (
    ("tally_label_record", "label_record", "NEW.study_id, NEW.worker_id, 1, 0, 0, 0, NEW.created_at, NEW.created_at",
     "answered = {w}answered + 1, " + TIMES),
    ("tally_judgment", "judgment",
     "NEW.study_id, NEW.worker_id, 1, 0, 0, CASE WHEN NEW.winner_task_id = NEW.left_task_id THEN 1 ELSE 0 END, "
     "NEW.created_at, NEW.created_at",
     "answered = {w}answered + 1, left_wins = {w}left_wins + excluded.left_wins, " + TIMES),
    ("tally_gold_answer", "gold_answer",
     "NEW.study_id, NEW.worker_id, 0, 1, CASE WHEN NEW.correct THEN 1 ELSE 0 END, 0, NULL, NULL",
     "gold_answered = {w}gold_answered + 1, gold_correct = {w}gold_correct + excluded.gold_correct"),
)
#: (trigger, unit table, the study's quota column)
UNIT_TRIGGERS = (("tally_item_full", "item", "labels_per_item"), ("tally_task_pair_full", "task_pair", "judgments_per_pair"))


def _upsert_stats(values: str, on_conflict: str, alias: str) -> str:
    return (f"INSERT INTO worker_stats {'AS w ' if alias else ''}({STATS_COLUMNS}) VALUES ({values}) "
            f"ON CONFLICT (study_id, worker_id) DO UPDATE SET {on_conflict.format(w=alias)}")


def _upsert_full(alias: str) -> str:
    return (f"INSERT INTO study_tally {'AS t ' if alias else ''}(study_id, shard, full_units) "
            f"VALUES (NEW.study_id, NEW.id % {SHARDS}, 1) "
            f"ON CONFLICT (study_id, shard) DO UPDATE SET full_units = {alias}full_units + 1")


def _create_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        for name, table, values, on_conflict in ANSWER_TRIGGERS:
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                       f"{_upsert_stats(values, on_conflict, 'w.')}; RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
        for name, table, quota in UNIT_TRIGGERS:
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE quota integer; BEGIN "
                       f"SELECT {quota} INTO quota FROM study WHERE id = NEW.study_id; "
                       f"IF NEW.n_answers >= quota AND OLD.n_answers < quota THEN {_upsert_full('t.')}; END IF; "
                       "RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER UPDATE OF n_answers ON {table} FOR EACH ROW "
                       f"WHEN (NEW.n_answers > OLD.n_answers) EXECUTE FUNCTION {name}()")
        return
    for name, table, values, on_conflict in ANSWER_TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} AFTER INSERT ON {table} BEGIN {_upsert_stats(values, on_conflict, '')}; END")
    for name, table, quota in UNIT_TRIGGERS:
        q = f"(SELECT {quota} FROM study WHERE id = NEW.study_id)"
        op.execute(f"CREATE TRIGGER {name} AFTER UPDATE OF n_answers ON {table} "
                   f"WHEN NEW.n_answers >= {q} AND OLD.n_answers < {q} BEGIN {_upsert_full('')}; END")


def _drop_triggers(dialect: str) -> None:
    for name, table, *_ in ANSWER_TRIGGERS + UNIT_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")


def _backfill() -> None:
    """Counters of the studies already in the database, from their rows."""
    op.execute("UPDATE study SET n_units = CASE WHEN kind = 'labeling' "
               "THEN (SELECT count(*) FROM item WHERE item.study_id = study.id) "
               "ELSE (SELECT count(*) FROM task_pair WHERE task_pair.study_id = study.id) END, "
               "n_slots = (SELECT count(*) FROM assignment a WHERE a.study_id = study.id AND a.gold_id IS NULL)")
    answers = ("SELECT study_id, worker_id, 1 AS answered, 0 AS gold_answered, 0 AS gold_correct, 0 AS left_wins, "
               "created_at FROM label_record UNION ALL "
               "SELECT study_id, worker_id, 1, 0, 0, CASE WHEN winner_task_id = left_task_id THEN 1 ELSE 0 END, "
               "created_at FROM judgment UNION ALL "
               "SELECT study_id, worker_id, 0, 1, CASE WHEN correct THEN 1 ELSE 0 END, 0, NULL FROM gold_answer")
    op.execute(f"INSERT INTO worker_stats ({STATS_COLUMNS}) SELECT study_id, worker_id, sum(answered), "
               f"sum(gold_answered), sum(gold_correct), sum(left_wins), min(created_at), max(created_at) "
               f"FROM ({answers}) AS a GROUP BY study_id, worker_id")
    for _, table, quota in UNIT_TRIGGERS:
        op.execute(f"INSERT INTO study_tally (study_id, shard, full_units) SELECT u.study_id, u.id % {SHARDS}, count(*) "
                   f"FROM {table} u JOIN study s ON s.id = u.study_id WHERE u.n_answers >= s.{quota} "
                   f"GROUP BY u.study_id, u.id % {SHARDS}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_units", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("n_slots", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_table(
        "worker_stats",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("gold_answered", sa.Integer(), nullable=False),
        sa.Column("gold_correct", sa.Integer(), nullable=False),
        sa.Column("left_wins", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_worker_stats_study_id_study")),
        sa.ForeignKeyConstraint(["worker_id"], ["worker.id"], name=op.f("fk_worker_stats_worker_id_worker")),
        sa.PrimaryKeyConstraint("study_id", "worker_id", name=op.f("pk_worker_stats")),
    )
    op.create_table(
        "study_tally",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("full_units", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_study_tally_study_id_study")),
        sa.PrimaryKeyConstraint("study_id", "shard", name=op.f("pk_study_tally")),
    )
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_leased", ["study_id", "lease_expires"], unique=False,
                              sqlite_where=sa.text(LEASED), postgresql_where=sa.text(LEASED))
    with op.batch_alter_table("worker_session", schema=None) as batch_op:
        batch_op.create_index("ix_worker_session_study_id_check_status", ["study_id", "check_status"], unique=False)
    _backfill()
    _create_triggers(dialect)


def downgrade() -> None:
    _drop_triggers(op.get_bind().dialect.name)
    with op.batch_alter_table("worker_session", schema=None) as batch_op:
        batch_op.drop_index("ix_worker_session_study_id_check_status")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_leased")
    op.drop_table("study_tally")
    op.drop_table("worker_stats")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("n_slots")
        batch_op.drop_column("n_units")
