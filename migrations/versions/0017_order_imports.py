"""order imports: a CSV file's orders, captured by a job, with what became of each row

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('order_imports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=True),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=200), nullable=False),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('done_rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('failed_rows', sa.Integer(), nullable=False),
    sa.Column('next_seq', sa.Integer(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_imports'))
    )
    op.create_table('order_import_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('draft', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('problems', sa.JSON(none_as_null=True), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['order_imports.id'],
                            name=op.f('fk_order_import_entries_import_id_order_imports'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'],
                            name=op.f('fk_order_import_entries_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_import_entries')),
    sa.UniqueConstraint('import_id', 'seq', name='uq_order_import_entries_seq')
    )


def downgrade() -> None:
    op.drop_table('order_import_entries')
    op.drop_table('order_imports')
