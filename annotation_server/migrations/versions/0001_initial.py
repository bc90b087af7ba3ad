"""Initial schema: studies, tasks, pairs, items, gold items, workers, sessions, assignments, answers.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 03:07:29.552393
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('instructions', sa.String(), nullable=False),
    sa.Column('scheduler', sa.String(length=16), nullable=False),
    sa.Column('task_spec', sa.JSON(), nullable=True),
    sa.Column('labels_per_item', sa.Integer(), nullable=True),
    sa.Column('judgments_per_pair', sa.Integer(), nullable=True),
    sa.Column('examples_per_task', sa.Integer(), nullable=True),
    sa.Column('max_per_worker', sa.Integer(), nullable=True),
    sa.Column('gold_every', sa.Integer(), nullable=True),
    sa.Column('completion_secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('name', name=op.f('uq_study_name'))
    )
    op.create_table('worker',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker')),
    sa.UniqueConstraint('external_id', name=op.f('uq_worker_external_id'))
    )
    op.create_table('item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('text', sa.String(), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('n_answers', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_item_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item')),
    sa.UniqueConstraint('study_id', 'external_id', name=op.f('uq_item_study_id_external_id'))
    )
    op.create_index('ix_item_study_id_n_answers', 'item', ['study_id', 'n_answers'], unique=False)
    op.create_table('study_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('examples', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_study_task_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_task')),
    sa.UniqueConstraint('study_id', 'key', name=op.f('uq_study_task_study_id_key'))
    )
    op.create_table('worker_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_worker_session_study_id_study')),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], name=op.f('fk_worker_session_worker_id_worker')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_worker_session_token_hash'))
    )
    op.create_table('gold_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('text', sa.String(), nullable=True),
    sa.Column('left_task_id', sa.Integer(), nullable=True),
    sa.Column('right_task_id', sa.Integer(), nullable=True),
    sa.Column('answer', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['left_task_id'], ['study_task.id'], name=op.f('fk_gold_item_left_task_id_study_task')),
    sa.ForeignKeyConstraint(['right_task_id'], ['study_task.id'], name=op.f('fk_gold_item_right_task_id_study_task')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_gold_item_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gold_item')),
    sa.UniqueConstraint('study_id', 'key', name=op.f('uq_gold_item_study_id_key'))
    )
    op.create_table('task_pair',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('first_task_id', sa.Integer(), nullable=False),
    sa.Column('second_task_id', sa.Integer(), nullable=False),
    sa.Column('n_answers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['first_task_id'], ['study_task.id'], name=op.f('fk_task_pair_first_task_id_study_task')),
    sa.ForeignKeyConstraint(['second_task_id'], ['study_task.id'], name=op.f('fk_task_pair_second_task_id_study_task')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_task_pair_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_pair')),
    sa.UniqueConstraint('study_id', 'first_task_id', 'second_task_id', name=op.f('uq_task_pair_study_id_first_task_id_second_task_id'))
    )
    op.create_index('ix_task_pair_study_id_n_answers', 'task_pair', ['study_id', 'n_answers'], unique=False)
    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('unit_key', sa.String(length=40), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('pair_id', sa.Integer(), nullable=True),
    sa.Column('gold_id', sa.Integer(), nullable=True),
    sa.Column('left_task_id', sa.Integer(), nullable=True),
    sa.Column('right_task_id', sa.Integer(), nullable=True),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_expires', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['gold_id'], ['gold_item.id'], name=op.f('fk_assignment_gold_id_gold_item')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_assignment_item_id_item')),
    sa.ForeignKeyConstraint(['left_task_id'], ['study_task.id'], name=op.f('fk_assignment_left_task_id_study_task')),
    sa.ForeignKeyConstraint(['pair_id'], ['task_pair.id'], name=op.f('fk_assignment_pair_id_task_pair')),
    sa.ForeignKeyConstraint(['right_task_id'], ['study_task.id'], name=op.f('fk_assignment_right_task_id_study_task')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_assignment_study_id_study')),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], name=op.f('fk_assignment_worker_id_worker')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment')),
    sa.UniqueConstraint('study_id', 'unit_key', 'slot', name=op.f('uq_assignment_study_id_unit_key_slot')),
    sa.UniqueConstraint('study_id', 'unit_key', 'worker_id', name=op.f('uq_assignment_study_id_unit_key_worker_id'))
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index('ix_assignment_study_id_status', ['study_id', 'status'], unique=False)
        batch_op.create_index('ix_assignment_study_id_worker_id', ['study_id', 'worker_id'], unique=False)
        batch_op.create_index('ix_assignment_item_id', ['item_id'], unique=False)
        batch_op.create_index('ix_assignment_pair_id', ['pair_id'], unique=False)
        batch_op.create_index('ix_assignment_gold_id_worker_id', ['gold_id', 'worker_id'], unique=False)

    op.create_table('gold_answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('gold_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('answer', sa.String(length=200), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=False),
    sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_gold_answer_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['gold_id'], ['gold_item.id'], name=op.f('fk_gold_answer_gold_id_gold_item')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_gold_answer_study_id_study')),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], name=op.f('fk_gold_answer_worker_id_worker')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gold_answer')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_gold_answer_assignment_id')),
    sa.UniqueConstraint('gold_id', 'worker_id', name=op.f('uq_gold_answer_gold_id_worker_id'))
    )
    op.create_table('judgment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('left_task_id', sa.Integer(), nullable=False),
    sa.Column('right_task_id', sa.Integer(), nullable=False),
    sa.Column('winner_task_id', sa.Integer(), nullable=False),
    sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_judgment_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['left_task_id'], ['study_task.id'], name=op.f('fk_judgment_left_task_id_study_task')),
    sa.ForeignKeyConstraint(['pair_id'], ['task_pair.id'], name=op.f('fk_judgment_pair_id_task_pair')),
    sa.ForeignKeyConstraint(['right_task_id'], ['study_task.id'], name=op.f('fk_judgment_right_task_id_study_task')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_judgment_study_id_study')),
    sa.ForeignKeyConstraint(['winner_task_id'], ['study_task.id'], name=op.f('fk_judgment_winner_task_id_study_task')),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], name=op.f('fk_judgment_worker_id_worker')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgment')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_judgment_assignment_id')),
    sa.UniqueConstraint('study_id', 'worker_id', 'pair_id', name=op.f('uq_judgment_study_id_worker_id_pair_id'))
    )
    op.create_table('label_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_label_record_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_label_record_item_id_item')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_label_record_study_id_study')),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], name=op.f('fk_label_record_worker_id_worker')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_record')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_label_record_assignment_id')),
    sa.UniqueConstraint('item_id', 'worker_id', name=op.f('uq_label_record_item_id_worker_id'))
    )


def downgrade() -> None:
    op.drop_table('label_record')
    op.drop_table('judgment')
    op.drop_table('gold_answer')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_gold_id_worker_id')
        batch_op.drop_index('ix_assignment_pair_id')
        batch_op.drop_index('ix_assignment_item_id')
        batch_op.drop_index('ix_assignment_study_id_worker_id')
        batch_op.drop_index('ix_assignment_study_id_status')

    op.drop_table('assignment')
    op.drop_index('ix_task_pair_study_id_n_answers', table_name='task_pair')
    op.drop_table('task_pair')
    op.drop_table('gold_item')
    op.drop_table('worker_session')
    op.drop_table('study_task')
    op.drop_index('ix_item_study_id_n_answers', table_name='item')
    op.drop_table('item')
    op.drop_table('worker')
    op.drop_table('study')
