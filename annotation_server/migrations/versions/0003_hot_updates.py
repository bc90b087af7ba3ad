"""HOT updates on the slot table: drop `ix_assignment_study_id_status`, leave room on its pages.

Answering a slot changes only its `status` and `answered_at`. With no index on `status`, PostgreSQL can
make that update HOT (heap-only: the new row version goes on the same page and no index gets a new
entry) whenever the page has room, which `fillfactor = 70` keeps for rows inserted from now on. Claiming a
slot changes `worker_id` (indexed), so it stays a regular update, but it too finds room on the same page.

The index served only admin counts by status, which the `(study_id, unit_key, slot)` and
`(study_id, worker_id, unit_key)` indexes serve by their `study_id` prefix; and it misled the planner: the
worker's current lease ("study S, worker W, status leased") was looked up through it, walking every
leased slot of the study, instead of through `(study_id, worker_id, unit_key)`, which finds W's slots
directly.

SQLite has neither HOT updates nor a fillfactor: there the migration only drops the index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Percent of each heap page filled by inserts; the rest is kept for updated row versions (HOT).
ASSIGNMENT_FILLFACTOR = 70


def upgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_study_id_status")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE assignment SET (fillfactor = {ASSIGNMENT_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE assignment RESET (fillfactor)")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_study_id_status", ["study_id", "status"], unique=False)
