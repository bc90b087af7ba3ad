"""Hot-path index: a worker's slots by (study_id, worker_id, unit_key).

Replaces `ix_assignment_study_id_worker_id` with `ix_assignment_study_id_worker_id_unit_key`: the same
prefix serves "all slots of this worker in this study" (the worker's counts and current lease), and the
third column makes "has this worker already had unit X?" (asked for every candidate unit when a slot is
claimed) an exact index lookup whichever join strategy the planner picks, also on tables whose
statistics are stale or missing.

Revision ID: 0002
Revises: mturk_0001
Create Date: 2026-11-22 05:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "mturk_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_study_id_worker_id_unit_key", ["study_id", "worker_id", "unit_key"], unique=False)
        batch_op.drop_index("ix_assignment_study_id_worker_id")


def downgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_study_id_worker_id", ["study_id", "worker_id"], unique=False)
        batch_op.drop_index("ix_assignment_study_id_worker_id_unit_key")
