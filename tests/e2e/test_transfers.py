"""Orders in and out as files: a CSV import checked row by row and captured by a job, with
a result file for the rows it refused; a streamed CSV and NDJSON export by filter."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import uuid
from decimal import Decimal

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import event, func, select

from adapters.bootstrap import using
from bench.export import write_orders
from engine import pipeline
from engine.orders import transfers
from engine.record import Order
from jobs.transfers import run_order_import
from tests.conftest import BACKENDS, load_catalog, order_body

POSTGRESQL = [backend for backend in BACKENDS if backend == "postgresql"]

HEADER = ("channel_order_ref,customer_id,currency,service_level,ship_to_name,ship_to_line1,"
          "ship_to_city,ship_to_postal_code,ship_to_country,shipping_amount,sku,quantity,"
          "unit_price")
ADDRESS = "Ana Lima,Av. Paulista 1000,Sao Paulo,01310-100,BR"


def row(reference: str, sku: str, quantity: str, customer: str = "C-ANA",
        first: bool = True) -> str:
    """One line of an order: the order's columns on its first row, blank after it."""
    if not first:
        return f"{reference},,,,,,,,,,{sku},{quantity},89.90"
    return f"{reference},{customer},BRL,standard,{ADDRESS},15.00,{sku},{quantity},89.90"


def upload(client, headers, lines: list[str], **extra):
    return client.post("/orders/imports", data="\r\n".join([HEADER, *lines]) + "\r\n",
                       headers={**headers, "Content-Type": "text/csv", **extra})


def result_file(client, headers, import_id: int) -> list[dict[str, str]]:
    response = client.get(f"/orders/imports/{import_id}/errors", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_an_import_reports_each_bad_row_with_its_reason_and_captures_the_rest(
        client, admin, catalog, make_key):
    # given a web channel's key, and an order it sent before
    web = make_key("channel", channel="web")
    sent = client.post("/orders", json=order_body(channel_order_ref="DUP-1"), headers=web)
    assert sent.status_code == 201
    # when it imports a file with good orders and bad rows
    response = upload(client, web, [
        row("GOOD-1", "LAMP-1", "2"),                   # 2
        row("GOOD-1", "MUG-2", "1", first=False),       # 3: the same order, columns blank
        row("BAD-SKU", "NOPE-9", "1"),                  # 4: unknown SKU (found by capture)
        row("BAD-QTY", "LAMP-1", "two"),                # 5: not a quantity
        row("BAD-QTY", "MUG-2", "1", first=False),      # 6: its order fails with row 5
        row("NO-CUSTOMER", "MUG-2", "1", customer=""),  # 7: a required value missing
        row("DUP-1", "MUG-2", "1"),                     # 8: a reference sent before
        row("GOOD-2", "MUG-2", "3"),                    # 9
    ])
    # then it is queued, and (jobs run inline here) done: every row settled
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    location = response.headers["Location"]
    progress = client.get(location, headers=web).json
    assert progress["status"] == "done"
    assert (progress["done"], progress["total"]) == (8, 8)
    assert (progress["created"], progress["failed"], progress["orders"]) == (2, 5, 6)
    # and the result file names each refused row, its column and why
    problems = result_file(client, web, progress["id"])
    assert [(p["row"], p["field"], p["code"]) for p in problems] == [
        ("4", "sku", "unknown_references"),
        ("5", "quantity", "validation_failed"),
        ("6", "", "order_not_imported"),
        ("7", "customer_id", "validation_failed"),
        ("8", "channel_order_ref", "duplicate_order"),
    ]
    reasons = [p["reason"] for p in problems]
    assert "NOPE-9" in reasons[0] and "integer" in reasons[1] and "row 5" in reasons[2]
    assert "Missing data" in reasons[3] and f"order {sent.json['id']}" in reasons[4]
    # and the good orders were captured in the key's channel, with all their lines
    [good] = client.get("/orders?channel_order_ref=GOOD-1", headers=web).json["items"]
    assert good["channel"] == "web" and good["created_by"].startswith("api_key:")
    assert [(line["sku"], line["quantities"]["ordered"]) for line in good["lines"]] == [
        ("LAMP-1", 2), ("MUG-2", 1)]
    assert good["status"] not in ("received", "rejected")  # taken through the pipeline
    assert client.get("/orders?channel_order_ref=GOOD-2", headers=web).json["items"]
    assert client.get("/orders?channel_order_ref=BAD-QTY", headers=web).json["items"] == []


def test_the_upload_is_refused_whole_when_the_file_does_not_fit_the_layout(
        make_app, admin):
    client = make_app(IMPORT_MAX_CONTENT_LENGTH=2000).test_client()
    # JSON is not a file
    refused = client.post("/orders/imports", json={"rows": []}, headers=admin)
    assert refused.status_code == 415
    assert refused.headers["Accept-Post"] == "text/csv, multipart/form-data"
    # a header without the required columns, naming an unknown one
    wrong = client.post("/orders/imports", data="channel_order_ref,colour\nA,red\n",
                        headers={**admin, "Content-Type": "text/csv"})
    assert wrong.status_code == 422 and wrong.mimetype == "application/problem+json"
    fields = {error["field"] for error in wrong.json["errors"]}
    assert {"colour", "customer_id", "sku", "quantity", "unit_price"} <= fields
    # no rows, and not UTF-8
    for body, message in ((HEADER + "\n", "no rows"), (b"\xff\xfe" + b"\x00a" * 10, "UTF-8")):
        answer = client.post("/orders/imports", data=body,
                             headers={**admin, "Content-Type": "text/csv"})
        assert answer.status_code == 422 and message in answer.json["detail"]
    # larger than this route's own limit (which may exceed the JSON bodies' limit)
    big = client.post("/orders/imports", data=HEADER + "\n" + "x" * 3000,
                      headers={**admin, "Content-Type": "text/csv"})
    assert big.status_code == 413 and big.json["code"] == "payload_too_large"


def test_a_file_can_be_sent_as_a_form_part_and_only_its_channel_and_people_see_the_import(
        client, admin, catalog, make_key):
    # given an ops person who uploads a form with the file, for the erp channel
    ops = make_key("ops")
    text = "channel," + HEADER + "\r\n" + "erp," + row("ERP-1", "LAMP-1", "1") + "\r\n"
    response = client.post("/orders/imports", headers=ops, data={
        "file": (io.BytesIO(text.encode()), "orders.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 202, response.json
    # then the order is the erp channel's
    [order] = client.get("/orders?channel_order_ref=ERP-1", headers=admin).json["items"]
    assert order["channel"] == "erp"
    # and the import is the person's to read, not another channel's
    location = response.headers["Location"]
    assert client.get(location, headers=make_key("analyst")).status_code == 200
    assert client.get(location, headers=make_key("channel", channel="web")).status_code == 404
    assert client.get(location + "/errors",
                      headers=make_key("channel", channel="web")).status_code == 404
    assert result_file(client, ops, response.json["id"]) == []


def test_an_import_run_twice_or_resumed_after_a_crash_captures_no_order_twice(
        make_app, admin, redis_url, monkeypatch):
    # given jobs on an RQ queue no worker serves, and batches of two orders
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    client, services = app.test_client(), app.extensions["oms"]
    load_catalog(client, admin, services)
    monkeypatch.setattr(transfers, "IMPORT_BATCH", 2)
    try:
        response = upload(client, admin, [row(f"R-{n}", "MUG-2", "1") for n in range(5)])
        assert response.status_code == 202
        import_id = response.json["id"]
        assert client.get(f"/orders/imports/{import_id}", headers=admin).json["status"] == \
            "queued"
        # when a worker commits the first batch and dies
        with services.uow() as uow:
            assert transfers.capture_next_batch(uow, import_id, pipeline.receive_orders)
            uow.commit()
        progress = client.get(f"/orders/imports/{import_id}", headers=admin).json
        assert (progress["status"], progress["done"], progress["created"]) == ("running", 2, 2)
        # and the job runs (the retry), and then runs once more
        with using(services):
            run_order_import(import_id)
            run_order_import(import_id)
    finally:
        redis = Redis.from_url(redis_url)
        Queue(queue_name, connection=redis).empty()
        redis.close()
    # then every order is captured once, and the import says so
    progress = client.get(f"/orders/imports/{import_id}", headers=admin).json
    assert (progress["status"], progress["done"], progress["total"]) == ("done", 5, 5)
    assert (progress["created"], progress["failed"]) == (5, 0)
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Order)) == 5


# Two runs race only on PostgreSQL: on SQLite a transaction takes the write lock at BEGIN.
@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
def test_a_second_run_racing_for_the_same_batch_undoes_its_own(make_app, admin, redis_url):
    # given an import waiting on a queue
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    client, services = app.test_client(), app.extensions["oms"]
    load_catalog(client, admin, services)
    try:
        import_id = upload(client, admin, [row("RACE-1", "MUG-2", "1")]).json["id"]
    finally:
        redis = Redis.from_url(redis_url)
        Queue(queue_name, connection=redis).empty()
        redis.close()

    # when a run's capture finds that another run settled the batch meanwhile
    def capture_while_another_run_settles(uow, actor, drafts):
        with services.uow() as other:
            assert transfers.capture_next_batch(other, import_id, pipeline.receive_orders)
            other.commit()
        return pipeline.receive_orders(uow, actor, drafts)

    with services.uow() as uow:
        assert not transfers.capture_next_batch(uow, import_id,
                                                capture_while_another_run_settles)
        uow.commit()
    # then the order exists once, created by the run that settled the batch first
    progress = client.get(f"/orders/imports/{import_id}", headers=admin).json
    assert (progress["done"], progress["created"], progress["failed"]) == (1, 1, 0)
    assert len(client.get("/orders?channel_order_ref=RACE-1", headers=admin).json["items"]) == 1


# ----- export -----

def _export(client, headers, query: str = ""):
    response = client.get(f"/orders/export{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def test_the_export_parses_back_to_the_orders_in_csv_and_ndjson(client, admin, catalog):
    # given orders of two channels, one cancelled
    ids = [client.post("/orders", json=order_body(channel=channel), headers=admin).json["id"]
           for channel in ("web", "erp", "web")]
    client.post(f"/orders/{ids[0]}/cancel", json={"reason": "test"}, headers=admin)
    orders = [client.get(f"/orders/{order_id}", headers=admin).json for order_id in ids]
    # when they are exported as NDJSON, each line is the order as GET /orders/{id} shows it
    ndjson = _export(client, admin, "?format=ndjson")
    assert ndjson.mimetype == "application/x-ndjson"
    assert ndjson.headers["Content-Disposition"].endswith('.ndjson"')
    assert [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()] == orders
    # and as CSV, one row per order line, the order's columns repeated
    exported = _export(client, admin)
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert tuple(rows[0]) == transfers.EXPORT_COLUMNS
    assert [(int(r["id"]), int(r["line_no"])) for r in rows] == [
        (order["id"], line["line_no"]) for order in orders for line in order["lines"]]
    for r in rows:
        order = next(o for o in orders if o["id"] == int(r["id"]))
        line = order["lines"][int(r["line_no"]) - 1]
        assert (r["status"], r["channel"], r["channel_order_ref"], r["total"]) == (
            order["status"], order["channel"], order["channel_order_ref"], order["total"])
        assert (r["ship_to_city"], r["ship_to_line2"]) == ("Sao Paulo", "")
        assert (r["sku"], int(r["quantity"]), r["unit_price"], r["line_total"]) == (
            line["sku"], line["quantities"]["ordered"], line["unit_price"], line["line_total"])
        assert int(r["quantity_cancelled"]) == line["quantities"]["cancelled"]
        assert r["created_at"] == order["created_at"]


def test_the_export_applies_the_filters_of_the_list_and_the_keys_channel(
        client, admin, catalog, make_key):
    # given web and erp orders
    web_ids = [client.post("/orders", json=order_body(channel="web"), headers=admin).json["id"]
               for _ in range(2)]
    erp = client.post("/orders", json=order_body(
        channel="erp", customer_id="C-BEN",
        lines=[{"sku": "BATT-3", "quantity": 1, "unit_price": "59.00"}]), headers=admin).json
    client.post(f"/orders/{web_ids[1]}/cancel", json={"reason": "test"}, headers=admin)

    def exported(headers, query=""):
        text = _export(client, headers, "?format=ndjson" + query).get_data(as_text=True)
        return [json.loads(line)["id"] for line in text.splitlines()]

    # then the filters of GET /orders apply, oldest first
    assert exported(admin) == [*web_ids, erp["id"]]
    assert exported(admin, "&channel=erp") == [erp["id"]]
    assert exported(admin, "&status=cancelled") == [web_ids[1]]
    assert exported(admin, "&sku=BATT-3&sku=MUG-2") == [*web_ids, erp["id"]]
    # (an order found by one of its SKUs comes with all its lines)
    by_sku = _export(client, admin, "?sku=MUG-2").get_data(as_text=True)
    assert [(r["id"], r["sku"]) for r in csv.DictReader(io.StringIO(by_sku))] == [
        (str(order_id), sku) for order_id in web_ids for sku in ("LAMP-1", "MUG-2")]
    assert exported(admin, "&customer_name=ben") == [erp["id"]]
    # and an integration key exports only its channel's orders, whatever it asks for
    assert exported(make_key("channel", channel="web")) == web_ids
    assert exported(make_key("channel", channel="web"), "&channel=erp") == []
    assert exported(make_key("channel", channel="marketplace")) == []
    # and a bad filter, a format we do not write, or a list's page, are refused
    for query in ("?format=xml", "?status=lost", "?limit=10", "?colour=red"):
        answer = client.get(f"/orders/export{query}", headers=admin)
        assert answer.status_code == 422, query
        assert answer.mimetype == "application/problem+json"


def test_the_export_reads_two_statements_a_page_whatever_the_orders_lines(
        client, admin, catalog, services, monkeypatch):
    # given 5 orders of 2 lines, and pages of 2 orders
    for _ in range(5):
        client.post("/orders", json=order_body(), headers=admin)
    monkeypatch.setattr(transfers, "EXPORT_PAGE", 2)
    selects: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    # when they are exported
    event.listen(services.engine, "before_cursor_execute", count)
    try:
        text = _export(client, admin, "?format=ndjson&sku=MUG-2").get_data(as_text=True)
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    # then each of the 3 pages took an orders and a lines statement, and the end one more
    assert len(text.splitlines()) == 5
    assert len([s for s in selects if "api_keys" not in s]) == 3 * 2 + 1


def test_an_exported_file_imports_as_it_is_and_its_orders_are_known_duplicates(
        client, admin, catalog):
    # given an exported order
    order = client.post("/orders", json=order_body(channel="web"), headers=admin).json
    exported = _export(client, admin).get_data()
    # when the export is imported again
    response = client.post("/orders/imports", data=exported,
                           headers={**admin, "Content-Type": "text/csv"})
    assert response.status_code == 202, response.json
    # then its columns were understood, and the order is recognised as sent before
    problems = result_file(client, admin, response.json["id"])
    assert [(p["row"], p["field"], p["code"]) for p in problems] == [
        ("2", "channel_order_ref", "duplicate_order"), ("3", "", "order_not_imported")]
    assert f"order {order['id']}" in problems[0]["reason"]


@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
def test_an_export_of_100000_orders_streams_in_flat_memory(client, admin, catalog, services):
    # given 100,000 orders of two channels, written straight into the record
    address = {"name": "Ana Lima", "line1": "Av. Paulista 1000", "city": "Sao Paulo",
               "postal_code": "01310-100", "country": "BR"}
    with services.engine.begin() as connection:
        lines = write_orders(connection, 100_000, [("C-ANA", address), ("C-BEN", address)],
                             [("LAMP-1", Decimal("89.90")), ("MUG-2", Decimal("24.50"))],
                             ["web", "erp"], first_id=1_000_001)
    for form, records in (("csv", lines), ("ndjson", 100_000)):
        # when the export is read chunk by chunk, every allocation traced
        tracemalloc.start()
        response = client.get(f"/orders/export?format={form}", headers=admin, buffered=False)
        size = count = 0
        for chunk in response.response:
            size += len(chunk)
            count += chunk.count(b"\r\n" if form == "csv" else b"\n")
        response.close()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # then every order (or line) is in it, and memory never held more than a few pages
        assert count - (form == "csv") == records
        assert size > 20 * 2**20
        assert peak < 16 * 2**20, f"{form}: peak {peak / 2**20:.1f} MiB for {size / 2**20:.0f} MiB"
