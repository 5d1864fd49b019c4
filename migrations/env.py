"""Alembic environment: runs on the connection it is given, or on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from engine.record import Base, ExactDecimal, UtcDateTime

config = context.config
target_metadata = Base.metadata


def render_item(kind, item, autogen_context):  # type: ignore[no-untyped-def]
    """Write our column types as plain SQLAlchemy types, so revisions never import models."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, ExactDecimal):
        return (f"sa.Numeric({item.precision}, {item.scale})"
                f".with_variant(sa.String({item.precision + 2}), 'sqlite')")
    return False


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        run(connection)
    engine.dispose()
