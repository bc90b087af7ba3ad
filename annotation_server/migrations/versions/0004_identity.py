"""Crowd identity: leases owned by sessions, signed entry, how sessions came in, revocable admin sessions.

- `assignment.session_id`: the session that holds (or answered) a slot; only it may answer.
- `study.require_signed_entry`, `study.signing_secret`: web entry through signed per-worker links; existing
  studies get a fresh random secret and keep open entry.
- `worker_session.entry`, `entry_ref`, `check_status`, `check_reason`, `checked_at`: how a session came in
  and what the crowd platform said about it (`subjlab mturk review`).
- `admin_session`: dashboard logins, revoked at logout, expiring.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        # no foreign key: each claim sets it, and a key would add a referential check to every lease
        batch_op.add_column(sa.Column("session_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_signed_entry", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("signing_secret", sa.String(length=64), nullable=True))
    with op.batch_alter_table("worker_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry", sa.String(length=16), server_default="api", nullable=False))
        batch_op.add_column(sa.Column("entry_ref", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("check_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("check_reason", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "admin_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_session_token_hash")),
    )
    bind = op.get_bind()
    study = sa.table("study", sa.column("id", sa.Integer), sa.column("signing_secret", sa.String))
    for (study_id,) in bind.execute(sa.select(study.c.id)).all():
        bind.execute(study.update().where(study.c.id == study_id).values(signing_secret=secrets.token_hex(16)))


def downgrade() -> None:
    op.drop_table("admin_session")
    with op.batch_alter_table("worker_session", schema=None) as batch_op:
        for column in ("checked_at", "check_reason", "check_status", "entry_ref", "entry"):
            batch_op.drop_column(column)
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("signing_secret")
        batch_op.drop_column("require_signed_entry")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_column("session_id")
