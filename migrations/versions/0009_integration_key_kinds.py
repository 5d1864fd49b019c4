"""integration key kinds: channel, warehouse and carrier keys, each bound

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

The role `system` meant both "a sales channel's integration" and "the warehouse's
integration". Each existing system key becomes the kind it behaved as:
- bound to a channel that is a location's code: a warehouse integration for that location;
- bound to a channel that is a carrier's code: a carrier integration for that carrier;
- bound to the channel `wms` (how the warehouse's integration was set up so far): a
  warehouse integration for every location;
- otherwise: a channel integration for its channel.
Key hashes are untouched: every key keeps working, within its new scope.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

WAREHOUSE_CHANNEL = 'wms'

_keys = sa.table('api_keys', sa.column('id', sa.Integer()), sa.column('role', sa.String()),
                 sa.column('channel', sa.String()), sa.column('scope', sa.JSON()))


def upgrade() -> None:
    op.add_column('api_keys', sa.Column('scope', sa.JSON(), nullable=True))
    bind = op.get_bind()
    locations = set(bind.scalars(sa.text('SELECT code FROM locations')))
    carriers = set(bind.scalars(sa.text('SELECT code FROM carriers')))
    rows = bind.execute(sa.select(_keys.c.id, _keys.c.channel)
                        .where(_keys.c.role == 'system')).all()
    for key_id, channel in rows:
        if channel in locations:
            role, scope = 'warehouse', [channel]
        elif channel in carriers:
            role, scope = 'carrier', [channel]
        elif channel == WAREHOUSE_CHANNEL:
            role, scope = 'warehouse', ['*']
        else:
            role, scope = 'channel', None
        bind.execute(_keys.update().where(_keys.c.id == key_id).values(
            role=role, scope=scope, channel=channel if role == 'channel' else None))


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_keys.c.id, _keys.c.role, _keys.c.channel, _keys.c.scope)
                        .where(_keys.c.role.in_(['channel', 'warehouse', 'carrier']))).all()
    for key_id, role, channel, scope in rows:
        if role != 'channel':
            channel = WAREHOUSE_CHANNEL if not scope or scope == ['*'] else scope[0]
        bind.execute(_keys.update().where(_keys.c.id == key_id).values(
            role='system', channel=channel))
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('scope')
