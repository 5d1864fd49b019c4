"""OMS_STATEMENT_COUNTS: each process keeps the number of SQL statements it ran in a file."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text
from sqlalchemy.engine.interfaces import ExecuteStyle

from engine.record import OutboxMessage, utcnow
from tests.conftest import load_catalog, order_body


def _written(path: Path, expected: int | None = None) -> int:
    """What the file holds once it says `expected` (or after 5 s), or without `expected`
    once it has settled (it is rewritten at most once a second)."""
    deadline = time.monotonic() + (5 if expected is not None else 1.5)
    while True:
        found = int(path.read_text()) if path.exists() else 0
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _watch(engine: Any) -> list[tuple[str, int]]:
    """Record each statement the engine sends with the number of times the server runs it:
    an executemany once per parameter set, a multi-row INSERT once."""
    seen: list[tuple[str, int]] = []

    def record(_c: Any, _cu: Any, statement: str, parameters: Any, context: Any,
               many: bool) -> None:
        one = not many or context.execute_style is ExecuteStyle.INSERTMANYVALUES
        seen.append((statement, 1 if one else len(parameters)))

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_the_file_of_the_process_counts_every_statement_a_request_runs(make_app, admin,
                                                                        tmp_path):
    # given an app counting its statements into a directory, with a catalogue loaded
    app = make_app(STATEMENT_COUNTS=str(tmp_path))
    services = app.extensions["oms"]
    client = app.test_client()
    load_catalog(client, admin, services)
    counts = tmp_path / str(os.getpid())
    before = _written(counts)  # what loading the catalogue ran
    seen = _watch(services.engine)

    # when a channel captures an order (capture, validation, sourcing, carrier, jobs inline)
    response = client.post("/orders", json=order_body(), headers=admin)

    # then the process's file has grown by every statement the request ran
    assert response.status_code == 201, response.json
    ran = sum(times for _, times in seen)
    assert ran > 10
    assert _written(counts, before + ran) == before + ran


def test_an_executemany_counts_each_parameter_set_and_a_multi_row_insert_once(make_app,
                                                                              tmp_path):
    # given an app counting its statements
    app = make_app(STATEMENT_COUNTS=str(tmp_path))
    engine = app.extensions["oms"].engine
    counts = tmp_path / str(os.getpid())
    before = _written(counts)
    seen = _watch(engine)

    # when an UPDATE goes with three parameter sets (the server runs it three times), and
    # three rows are inserted in one INSERT ... RETURNING
    with engine.connect() as connection:
        connection.execute(text("UPDATE customers SET name = name WHERE id = :id"),
                           [{"id": "C-1"}, {"id": "C-2"}, {"id": "C-3"}])
        connection.execute(insert(OutboxMessage).returning(OutboxMessage.id), [
            {"job": "jobs.none", "args": [], "created_at": utcnow(), "attempts": 0}] * 3)
        connection.rollback()

    # then the UPDATE counts three, the INSERT one, beside whatever else was sent
    # (SQLite's BEGIN IMMEDIATE)
    others = [statement for statement, _ in seen if "customers" not in statement
              and "outbox_messages" not in statement]
    assert _written(counts, before + 3 + 1 + len(others)) == before + 3 + 1 + len(others)


# the reference data a process keeps (engine/reference_cache.py)
REFERENCE_READ = re.compile(
    r"^SELECT .* FROM (rule_set_versions|webhook_subscriptions|carriers|carrier_services"
    r"|carrier_rates|postal_areas)\b", re.DOTALL)


def test_an_order_in_a_warm_process_reads_the_reference_versions_once_and_no_reference_data(
        make_app, admin, redis_url):
    # given a process that has taken one order (jobs go to Redis: the request is counted)
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=f"oms-test-{uuid.uuid4().hex[:8]}")
    services = app.extensions["oms"]
    client = app.test_client()
    load_catalog(client, admin, services)
    assert client.post("/orders", json=order_body(), headers=admin).status_code == 201
    seen = _watch(services.engine)

    # when it takes another to the same address
    response = client.post("/orders", json=order_body(), headers=admin)

    # then the published rule sets, the webhook subscriptions, the rate cards and the
    # postal areas come from the process's caches: one read of their versions, no more
    assert response.status_code == 201, response.json
    statements = [" ".join(statement.split()) for statement, _ in seen]
    assert [s for s in statements if REFERENCE_READ.match(s)] == []
    assert [s for s in statements if "reference_versions" in s] == [
        "SELECT reference_versions.name, reference_versions.version FROM reference_versions"]
    # the request's transaction, then the outbox's dispatch (SQLite's BEGINs aside; it
    # also inserts some rows one by one): three fewer than before the caches (32 and 29)
    expected = {"sqlite": 29, "postgresql": 26}[services.engine.dialect.name]
    assert len([s for s in statements if s != "BEGIN IMMEDIATE"]) == expected
