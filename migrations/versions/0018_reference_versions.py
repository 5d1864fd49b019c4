"""reference versions: one version per kind of reference data a process caches, added to
by every write to its tables

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

KINDS = ('rule_sets', 'carriers', 'webhooks', 'postal_areas')  # engine/reference_cache.py


def upgrade() -> None:
    table = op.create_table('reference_versions',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_reference_versions'))
    )
    op.bulk_insert(table, [{'name': name, 'version': 1} for name in KINDS])


def downgrade() -> None:
    op.drop_table('reference_versions')
