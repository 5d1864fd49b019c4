"""orders are found by when they last changed (GET /orders?updated_from=, for syncing) and
by their channel reference alone (GET /orders?channel_order_ref=)

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-29
"""
from __future__ import annotations

from alembic import op


revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_orders_updated_at_id', 'orders', ['updated_at', 'id'], unique=False)
    op.create_index('ix_orders_channel_order_ref', 'orders', ['channel_order_ref'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_channel_order_ref', table_name='orders')
    op.drop_index('ix_orders_updated_at_id', table_name='orders')
