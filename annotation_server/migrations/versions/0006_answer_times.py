"""SQLite: a covering index over the answered regular slots' lease and answer times, per study and worker.

The worker table's median seconds per unit of a page of 1,000 workers read the lease and answer times of
their ~25,000 answers. Without this index SQLite found each answer through
`ix_assignment_study_id_worker_id_unit_key` and then looked its row up in the slot table (257 ms at a
million slots); with it the times come out of one index, a worker's answers side by side. An entry is
written once, when a slot is answered (partial index: `status = 'answered' AND gold_id IS NULL`). `status`
and `gold_id` are columns of the index too, although constant in it: SQLite before 3.45 treats an index as
covering only if it holds every column the statement names, those of the partial index's WHERE included.

PostgreSQL gets no such index: one whose predicate reads `status` would make answering a slot a non-HOT
update again (migration 0003), and there the database computes the medians itself within the target
(132 ms at a million slots).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ANSWERED = "status = 'answered' AND gold_id IS NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_answer_times",
                              ["study_id", "worker_id", "leased_at", "answered_at", "status", "gold_id"],
                              unique=False, sqlite_where=sa.text(ANSWERED))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_answer_times")
