"""fulfilment groups count their releases (a hold withdraws a group; its release is new)

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fulfilment_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('releases', sa.Integer(), server_default='0',
                                      nullable=False))
    # a group the warehouse has was released once
    op.execute("UPDATE fulfilment_groups SET releases = 1 WHERE wms_reference IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('fulfilment_groups', schema=None) as batch_op:
        batch_op.drop_column('releases')
