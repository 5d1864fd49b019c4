"""holds are assigned to people and carry their comments (the exception inbox)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignee', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('assigned_by', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_holds_assignee', ['assignee'], unique=False)
    op.create_table(
        'hold_comments',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('body', sa.String(length=2000), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['hold_id'], ['holds.id'],
                                name=op.f('fk_hold_comments_hold_id_holds')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hold_comments')),
    )
    op.create_index('ix_hold_comments_hold_id', 'hold_comments', ['hold_id', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_hold_comments_hold_id', table_name='hold_comments')
    op.drop_table('hold_comments')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_assignee')
        batch_op.drop_column('assigned_by')
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('assignee')
