"""POST /orders/bulk: many orders in one call, each created or refused on its own, through
the same batch pipeline a single POST /orders takes."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select

from engine.record import Order, OrderLine
from tests.conftest import order_body, stock, stock_level

PRICES = {"LAMP-1": "89.90", "MUG-2": "24.50"}
ONE_MUG = [{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]


def test_a_bulk_of_1000_with_3_invalid_orders_creates_997_and_names_the_3(client, admin,
                                                                         catalog, services):
    # Ben has no credit limit: nothing but stock tells the orders apart
    rows = [order_body(customer_id="C-BEN", lines=[dict(ONE_MUG[0])],
                       channel_order_ref=f"BULK-{n:04d}") for n in range(1000)]
    rows[10]["lines"][0]["sku"] = "NO-SUCH-SKU"  # the record refuses it
    rows[500]["lines"][0]["quantity"] = -2  # the schema refuses it
    rows[999]["channel_order_ref"] = "BULK-0003"  # repeats an earlier order of the request
    answer = client.post("/orders/bulk", json={"rows": rows}, headers=admin)
    assert answer.status_code == 200, answer.json
    assert (answer.json["created"], answer.json["failed"]) == (997, 3)
    results = answer.json["results"]
    assert [result["index"] for result in results] == list(range(1000))
    failed = {result["index"]: result["problem"] for result in results
              if result["outcome"] == "error"}
    assert sorted(failed) == [10, 500, 999]
    assert (failed[10]["code"], failed[10]["errors"][0]["field"]) == (
        "unknown_references", "rows/10/lines/0/sku")
    assert failed[10]["unknown_skus"] == ["NO-SUCH-SKU"]
    assert (failed[500]["code"], failed[500]["errors"][0]["field"]) == (
        "validation_failed", "rows/500/lines/0/quantity")
    assert (failed[999]["code"], failed[999]["order_id"]) == ("duplicate_order",
                                                              results[3]["id"])
    created = [result for result in results if result["outcome"] == "created"]
    # the catalog has 100 mugs: the first 100 orders listed get them, the rest wait
    assert [result["status"] for result in created[:100]] == ["allocated"] * 100
    assert {result["status"] for result in created[100:]} == {"backordered"}
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count(Order.id))) == 997
    assert stock_level(services, "MUG-2") == (100, 100)
    order = client.get(f"/orders/{created[0]['id']}", headers=admin).json
    assert (order["channel_order_ref"], order["status"]) == ("BULK-0000", "released")


# PostgreSQL, the record in production (SQLite, the first-run default, is not tuned for it)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_makes_the_same_number_of_database_calls_whatever_its_size(
        make_app, redis_url, admin, catalog, services):
    # jobs go to Redis (as in production): what is counted is the request's transaction
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=f"oms-test-{uuid.uuid4().hex[:8]}")
    client, engine = app.test_client(), app.extensions["oms"].engine
    calls: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        calls.append(statement)

    def calls_for(orders: int) -> int:
        calls.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            answer = client.post("/orders/bulk", headers=admin, json={"rows": [
                order_body(customer_id="C-BEN", lines=ONE_MUG) for _ in range(orders)]})
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert answer.json["created"] == orders
        assert {row["status"] for row in answer.json["results"]} == {"allocated"}
        return len(calls)

    stock(services, {("MUG-2", "WH-SP"): 10_000})
    calls_for(5)  # the first call reads what later ones find cached (the API key)
    assert calls_for(20) == calls_for(200) < 40


def test_a_single_post_goes_through_the_same_batch_as_a_bulk_of_one(client, admin, catalog):
    body = order_body(lines=ONE_MUG)
    single = client.post("/orders", json=body, headers=admin)
    bulk = client.post("/orders/bulk", headers=admin, json={"rows": [body]})
    assert single.status_code == 201
    [refused] = bulk.json["results"]
    assert (refused["outcome"], refused["problem"]["code"], refused["problem"]["order_id"]) == (
        "error", "duplicate_order", single.json["id"])


def test_orders_of_a_batch_competing_for_the_last_units_reserve_exactly_what_is_on_hand(
        client, admin, catalog, services):
    # 7 lamps for six orders of two in one batch; 7 mugs for six such orders sent one by one
    stock(services, {("LAMP-1", "WH-SP"): 7, ("MUG-2", "WH-SP"): 7})

    def two(sku: str) -> dict[str, Any]:
        return order_body(customer_id="C-BEN", lines=[
            {"sku": sku, "quantity": 2, "unit_price": PRICES[sku]}])

    batch = client.post("/orders/bulk", headers=admin, json={"rows": [
        two("LAMP-1") for _ in range(6)]}).json["results"]
    single = [client.post("/orders", json=two("MUG-2"), headers=admin).json
              for _ in range(6)]
    # as single orders: whole orders while they fit, then a part of one, then waiting
    assert [r["status"] for r in batch] == [o["status"] for o in single] == (
        ["allocated"] * 3 + ["backordered"] * 3)
    for sku in ("LAMP-1", "MUG-2"):
        assert stock_level(services, sku) == (7, 7)
        with services.uow() as uow:
            allocated, waiting = uow.session.execute(select(
                func.sum(OrderLine.quantity_allocated),
                func.sum(OrderLine.quantity_backordered)).where(OrderLine.sku == sku)).one()
        assert (allocated, waiting) == (7, 5)


def test_two_concurrent_batches_never_overspend_one_customers_credit(live_server, client,
                                                                     admin, catalog, services):
    # Ana, a returning customer, has 5,000.00 of credit, 39.50 of it in use
    assert client.post("/orders", json=order_body(lines=ONE_MUG), headers=admin).json[
        "status"] == "allocated"
    stock(services, {("LAMP-1", "WH-SP"): 1000})
    ten_lamps = [{"sku": "LAMP-1", "quantity": 10, "unit_price": "89.90"}]  # 914.00 each
    answers: list[dict[str, Any]] = []

    def send() -> None:
        status, _, body = live_server.request("POST", "/orders/bulk", {"rows": [
            order_body(lines=ten_lamps) for _ in range(4)]}, admin)
        assert status == 200
        answers.append(json.loads(body))

    # two batches of four orders that each fit alone arrive at once
    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r["status"] for answer in answers for r in answer["results"])
    # 5 x 914.00 fit in the 4,960.50 left; the other three wait for credit review
    assert statuses == ["allocated"] * 5 + ["on_hold"] * 3
    assert {h["queue"] for h in client.get("/holds", headers=admin).json["items"]} == {"credit"}
    with services.uow() as uow:
        spent = uow.session.scalar(select(func.sum(Order.total)).where(
            Order.customer_id == "C-ANA", Order.status != "on_hold"))
    assert Decimal(spent) == Decimal("39.50") + 5 * Decimal("914.00")


def test_an_order_of_a_batch_weighs_only_the_locations_that_hold_its_skus(client, admin,
                                                                         catalog, services):
    # given Rio holding mugs only, beside Sao Paulo holding everything
    response = client.post("/locations/bulk", headers=admin, json={"rows": [
        {"code": "WH-RJ", "name": "Rio warehouse", "kind": "warehouse", "region": "RJ",
         "country": "BR", "latitude": -22.906847, "longitude": -43.172897}]})
    assert response.json["failed"] == 0, response.json
    stock(services, {("MUG-2", "WH-RJ"): 50})

    # when one batch holds a lamp order and a mug order
    lamp = order_body(customer_id="C-BEN", lines=[{"sku": "LAMP-1", "quantity": 1,
                                                   "unit_price": "89.90"}])
    mug = order_body(customer_id="C-BEN", lines=[dict(ONE_MUG[0])])
    answer = client.post("/orders/bulk", json={"rows": [lamp, mug]}, headers=admin)
    assert answer.status_code == 200, answer.json

    # then the lamp order's sourcing weighed Sao Paulo alone, as it would have alone; the
    # mug order weighed both
    weighed = {}
    for result in answer.json["results"]:
        decisions = client.get(f"/orders/{result['id']}/decisions", headers=admin).json
        sourcing = next(d for d in decisions["items"] if d["stage"] == "sourcing")
        weighed[result["index"]] = sorted(c["location"] for c in sourcing["trace"])
    assert weighed == {0: ["WH-SP"], 1: ["WH-RJ", "WH-SP"]}


def test_a_bulk_body_may_be_larger_than_a_single_commands(client, admin, catalog, services):
    # 1,000 orders of many lines: over the 1 MiB a single command takes, under the bulk limit
    many = [{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}] * 12
    rows = [order_body(customer_id="C-BEN", lines=many, channel_order_ref=f"BIG-{n:04d}",
                       shipping_address={**order_body()["shipping_address"],
                                         "line1": "Av. Paulista 1000 " + "x" * 150})
            for n in range(1000)]
    body = json.dumps({"rows": rows})
    assert len(body) > services.settings.max_content_length
    answer = client.post("/orders/bulk", data=body, content_type="application/json",
                         headers=admin)
    assert (answer.status_code, answer.json["created"]) == (200, 1000)
    too_big = client.post("/orders", data=body, content_type="application/json",
                          headers=admin)
    assert (too_big.status_code, too_big.json["code"]) == (413, "payload_too_large")
