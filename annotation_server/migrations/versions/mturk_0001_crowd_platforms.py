"""Crowd platforms: MTurk HITs, qualifications, assignments and actions; Prolific settings and sessions.

Revision ID: mturk_0001
Revises: 0001
Create Date: 2026-11-22 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'mturk_0001'
down_revision = '0001'
branch_labels = None
depends_on = None


def _tz():
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('mturk_hit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('endpoint', sa.String(length=300), nullable=False),
    sa.Column('batch_index', sa.Integer(), nullable=False),
    sa.Column('request_token', sa.String(length=64), nullable=False),
    sa.Column('hit_id', sa.String(length=64), nullable=False),
    sa.Column('hit_type_id', sa.String(length=64), nullable=True),
    sa.Column('hit_group_id', sa.String(length=64), nullable=True),
    sa.Column('external_url', sa.String(length=500), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('reward', sa.String(length=16), nullable=False),
    sa.Column('max_assignments', sa.Integer(), nullable=False),
    sa.Column('duration_seconds', sa.Integer(), nullable=False),
    sa.Column('lifetime_seconds', sa.Integer(), nullable=False),
    sa.Column('auto_approval_seconds', sa.Integer(), nullable=False),
    sa.Column('qualification_type_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('created_at', _tz(), nullable=False),
    sa.Column('expires_at', _tz(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_mturk_hit_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_hit')),
    sa.UniqueConstraint('hit_id', name=op.f('uq_mturk_hit_hit_id')),
    sa.UniqueConstraint('request_token', name=op.f('uq_mturk_hit_request_token')),
    sa.UniqueConstraint('study_id', 'environment', 'batch_index', name=op.f('uq_mturk_hit_study_id_environment_batch_index'))
    )
    op.create_index('ix_mturk_hit_study_id', 'mturk_hit', ['study_id'], unique=False)
    op.create_table('mturk_qualification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('qualification_type_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', _tz(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_mturk_qualification_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_qualification')),
    sa.UniqueConstraint('study_id', 'environment', name=op.f('uq_mturk_qualification_study_id_environment'))
    )
    op.create_table('mturk_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.String(length=128), nullable=False),
    sa.Column('hit_id', sa.String(length=128), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=False),
    sa.Column('turk_submit_to', sa.String(length=200), nullable=True),
    sa.Column('answered_before', sa.Integer(), nullable=False),
    sa.Column('accepted_at', _tz(), nullable=True),
    sa.Column('submitted_units', sa.Integer(), nullable=True),
    sa.Column('submitted_at', _tz(), nullable=True),
    sa.Column('mturk_status', sa.String(length=32), nullable=True),
    sa.Column('mturk_submit_time', _tz(), nullable=True),
    sa.Column('updated_at', _tz(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_mturk_assignment_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_assignment')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_mturk_assignment_assignment_id'))
    )
    op.create_index('ix_mturk_assignment_study_id', 'mturk_assignment', ['study_id'], unique=False)
    op.create_table('mturk_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('amount', sa.String(length=16), nullable=True),
    sa.Column('message', sa.String(length=1024), nullable=True),
    sa.Column('request_token', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', _tz(), nullable=False),
    sa.Column('done_at', _tz(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_mturk_action_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_action')),
    sa.UniqueConstraint('kind', 'target', name=op.f('uq_mturk_action_kind_target'))
    )
    op.create_table('prolific_study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('completion_url', sa.String(length=500), nullable=False),
    sa.Column('updated_at', _tz(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_prolific_study_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prolific_study')),
    sa.UniqueConstraint('study_id', name=op.f('uq_prolific_study_study_id'))
    )
    op.create_table('prolific_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=128), nullable=False),
    sa.Column('prolific_pid', sa.String(length=128), nullable=False),
    sa.Column('prolific_study_id', sa.String(length=128), nullable=False),
    sa.Column('answered_before', sa.Integer(), nullable=False),
    sa.Column('started_at', _tz(), nullable=False),
    sa.Column('completed_at', _tz(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_prolific_session_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prolific_session')),
    sa.UniqueConstraint('session_id', name=op.f('uq_prolific_session_session_id'))
    )


def downgrade() -> None:
    op.drop_table('prolific_session')
    op.drop_table('prolific_study')
    op.drop_table('mturk_action')
    op.drop_index('ix_mturk_assignment_study_id', table_name='mturk_assignment')
    op.drop_table('mturk_assignment')
    op.drop_table('mturk_qualification')
    op.drop_index('ix_mturk_hit_study_id', table_name='mturk_hit')
    op.drop_table('mturk_hit')
