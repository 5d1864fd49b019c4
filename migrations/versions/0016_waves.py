"""fulfilment groups wait for the next wave to their warehouse (ready_at), and groups and
shipments are claimed by the wave job sending them (release, labels, billing)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fulfilment_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('wave_claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_fulfilment_groups_location_code_ready_at',
                              ['location_code', 'ready_at'], unique=False)
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label_claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('billing_claimed_at', sa.DateTime(timezone=True), nullable=True))
    # groups a release job was asked for and has not sent yet go in the first wave
    op.execute("""
        UPDATE fulfilment_groups SET ready_at = created_at
        WHERE status = 'allocated' AND carrier_code IS NOT NULL AND wms_reference IS NULL
          AND order_id IN (SELECT id FROM orders
                           WHERE status IN ('allocated', 'released', 'partially_shipped'))
          AND NOT EXISTS (SELECT 1 FROM order_lines
                          WHERE order_lines.order_id = fulfilment_groups.order_id
                            AND order_lines.quantity_backordered > 0)""")


def downgrade() -> None:
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_column('billing_claimed_at')
        batch_op.drop_column('label_claimed_at')
    with op.batch_alter_table('fulfilment_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_fulfilment_groups_location_code_ready_at')
        batch_op.drop_column('wave_claimed_at')
        batch_op.drop_column('ready_at')
