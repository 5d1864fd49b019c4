"""The schema: migrations build it from empty, match the models, and guard the record."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, IntegrityError

from adapters.errors import DatabaseBehindError
from adapters.migrations import check_schema_current, upgrade
from adapters.sql import make_engine
from api import create_app
from engine.record import Base


def test_the_migrations_build_exactly_the_schema_the_models_describe(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_app_refuses_a_database_that_is_behind_and_names_the_fix(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    with pytest.raises(DatabaseBehindError) as refused:
        create_app({"DATABASE_URL": url})
    assert "oms db upgrade" in str(refused.value)
    engine = make_engine(url)
    upgrade(engine)
    check_schema_current(engine)  # now current: no error
    engine.dispose()


def test_the_event_log_refuses_updates_and_deletes(client, admin, catalog, services):
    from tests.conftest import order_body

    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    before = client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
    for statement in ("UPDATE order_events SET type = 'forged'",
                      "DELETE FROM order_events"):
        with services.engine.connect() as connection, pytest.raises(DatabaseError):
            connection.execute(text(statement))
    assert client.get(f"/orders/{order_id}/events", headers=admin).json["items"] == before
    assert before[0]["type"] == "order.received"


def test_line_quantities_cannot_exceed_what_was_ordered(client, admin, catalog, services):
    from tests.conftest import order_body

    client.post("/orders", json=order_body(), headers=admin)
    with services.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(text("UPDATE order_lines SET quantity_shipped = quantity_ordered + 1"))
    with services.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(text("UPDATE order_lines SET quantity_allocated = -1"))
