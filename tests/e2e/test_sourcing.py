"""Sourcing: orders are split or shipped whole by the rules, reserved, backordered, explained."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from redis import Redis
from sqlalchemy import func, select

from adapters.bootstrap import using
from adapters.queue import run_worker
from engine.record import OrderLine, StockLevel, StockMovement
from tests.conftest import order_body, stock

RIO = {"code": "WH-RJ", "name": "Rio warehouse", "kind": "warehouse", "region": "RJ",
       "country": "BR", "latitude": -22.906847, "longitude": -43.172897}
CAMPINAS_STORE = {"code": "ST-CAMPINAS", "name": "Campinas store", "kind": "store",
                  "region": "SP", "country": "BR", "latitude": -22.905560,
                  "longitude": -47.060830}
LAMPS = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"}]


def add_locations(client, admin, *rows):
    response = client.post("/locations/bulk", json={"rows": list(rows)}, headers=admin)
    assert response.json["failed"] == 0, response.json


def level(services, sku, code):
    with services.uow() as uow:
        found = uow.session.get(StockLevel, (sku, code))
        return (found.on_hand, found.reserved) if found else None


def groups_of(client, admin, order_id):
    return [(g["location"], [(line["sku"], line["quantity"]) for line in g["lines"]])
            for g in client.get(f"/orders/{order_id}/fulfilment", headers=admin).json["items"]]


def test_an_order_one_location_can_fill_ships_whole_from_there(client, admin, catalog,
                                                               services):
    # Rio has one lamp; Sao Paulo has plenty
    add_locations(client, admin, RIO)
    stock(services, {("LAMP-1", "WH-RJ"): 1})
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    assert order["status"] == "allocated"
    assert groups_of(client, admin, order["id"]) == [("WH-SP", [("LAMP-1", 2)])]
    assert level(services, "LAMP-1", "WH-SP") == (100, 2)
    assert level(services, "LAMP-1", "WH-RJ") == (1, 0)
    # the trace says why each candidate won or lost
    decision = client.get(f"/orders/{order['id']}/decisions", headers=admin).json["items"][-2]
    assert decision["stage"] == "sourcing"
    assert {c["location"]: c["result"] for c in decision["trace"]} == {
        "WH-RJ": "lost", "WH-SP": "won"}
    rio = next(c for c in decision["trace"] if c["location"] == "WH-RJ")
    assert rio["why"] == "WH-SP ships the whole order"
    assert rio["facts"]["can_ship_complete"] is False
    assert any(rule["rule"] == "avoid-splits" and not rule["fired"] for rule in rio["rules"])


def test_an_order_no_single_location_can_fill_is_split_over_two(client, admin, catalog,
                                                                services):
    add_locations(client, admin, RIO)
    stock(services, {("LAMP-1", "WH-SP"): 1, ("LAMP-1", "WH-RJ"): 1})
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    assert order["status"] == "allocated"
    assert sorted(groups_of(client, admin, order["id"])) == [
        ("WH-RJ", [("LAMP-1", 1)]), ("WH-SP", [("LAMP-1", 1)])]
    assert order["lines"][0]["quantities"]["allocated"] == 2
    assert level(services, "LAMP-1", "WH-SP") == (1, 1)
    assert level(services, "LAMP-1", "WH-RJ") == (1, 1)


def test_business_orders_never_ship_from_a_store_and_ship_complete(client, admin, catalog,
                                                                   services):
    # C-ANA buys on net 30 terms: a business order. Only a store has the lamps.
    add_locations(client, admin, CAMPINAS_STORE)
    stock(services, {("LAMP-1", "WH-SP"): 1, ("LAMP-1", "ST-CAMPINAS"): 5})
    order = client.post("/orders", json=order_body(lines=LAMPS), headers=admin).json
    assert order["status"] == "backordered"
    assert order["lines"][0]["quantities"]["backordered"] == 2
    assert groups_of(client, admin, order["id"]) == []
    decision = client.get(f"/orders/{order['id']}/decisions", headers=admin).json["items"][-1]
    store = next(c for c in decision["trace"] if c["location"] == "ST-CAMPINAS")
    assert store["excluded_because"] == ["Business orders ship from warehouses only."]
    assert decision["decision"]["policy"]["ship_complete"] is True
    # the warehouse's single lamp was not taken: ship-complete, and it cannot ship both
    assert level(services, "LAMP-1", "WH-SP") == (1, 0)
    # a consumer's order may use the store: 2 of its 5 lamps are held back for the
    # business order waiting for them, and 3 are left
    consumer = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                           headers=admin).json
    assert consumer["status"] == "allocated"
    assert groups_of(client, admin, consumer["id"]) == [("ST-CAMPINAS", [("LAMP-1", 2)])]


def test_a_backorder_is_allocated_when_stock_arrives_before_a_newer_order(make_app, redis_url,
                                                                          admin, catalog,
                                                                          services):
    # jobs go to Redis; nothing runs them until the worker below
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    client = app.test_client()
    stock(services, {("LAMP-1", "WH-SP"): 0})
    older = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    assert older["status"] == "backordered"
    # two lamps arrive; the backorder job is queued but has not run yet
    with app.extensions["oms"].uow() as uow:
        from engine.actors import system_actor
        from engine.inventory import stock as inventory

        inventory.apply_change(uow, system_actor("test-wms"), inventory.StockChange(
            "receipt", "LAMP-1", "WH-SP", 2, reference="PO-1"))
        uow.commit()
    # a newer order cannot take the units the older one waits for
    newer = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    assert newer["status"] == "backordered"
    # the worker allocates the older order; the newer one keeps waiting
    redis = Redis.from_url(redis_url)
    with using(app.extensions["oms"]):
        run_worker(redis, queue_name, burst=True, fork=False)
    redis.close()
    # allocated, then released to the warehouse by the same worker
    assert client.get(f"/orders/{older['id']}", headers=admin).json["status"] == "released"
    assert client.get(f"/orders/{newer['id']}", headers=admin).json["status"] == "backordered"
    assert level(services, "LAMP-1", "WH-SP") == (2, 2)
    events = client.get(f"/orders/{older['id']}/events", headers=admin).json["items"]
    assert [e["type"] for e in events][-5:] == [
        "order.allocated", "order.carrier_selected", "group.released", "order.released",
        "customer.notified"]
    assert events[-5]["actor"] == {"type": "system", "id": "backorder-allocator"}


def test_backorders_fill_best_customers_first_then_oldest(client, admin, catalog, services):
    stock(services, {("MUG-2", "WH-SP"): 0})
    mug = [{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]
    standard = client.post("/orders", json=order_body(customer_id="C-BEN", lines=mug),
                           headers=admin).json
    gold = client.post("/orders", json=order_body(lines=mug), headers=admin).json  # C-ANA
    assert (standard["status"], gold["status"]) == ("backordered", "backordered")
    # one mug arrives: the gold customer's newer order gets it (jobs run inline here)
    stock(services, {("MUG-2", "WH-SP"): 1})
    assert client.get(f"/orders/{gold['id']}", headers=admin).json["status"] == "released"
    assert client.get(f"/orders/{standard['id']}", headers=admin).json["status"] == (
        "backordered")


def test_cancelling_gives_the_reserved_stock_to_the_next_backorder(client, admin, catalog,
                                                                   services):
    stock(services, {("LAMP-1", "WH-SP"): 2})
    first = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    second = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                         headers=admin).json
    assert (first["status"], second["status"]) == ("allocated", "backordered")
    client.post(f"/orders/{first['id']}/cancel", json={"reason": "changed mind"},
                headers=admin)
    assert client.get(f"/orders/{second['id']}", headers=admin).json["status"] == "released"
    assert level(services, "LAMP-1", "WH-SP") == (2, 2)
    with services.uow() as uow:
        kinds = [m.kind for m in uow.session.scalars(
            select(StockMovement).where(StockMovement.sku == "LAMP-1")
            .order_by(StockMovement.id))]
    assert kinds == ["count", "count", "reservation", "release", "reservation"]


def test_a_large_order_short_of_stock_waits_for_a_planner(client, make_key, catalog,
                                                          services):
    ops = make_key("ops")
    stock(services, {("LAMP-1", "WH-SP"): 10})
    body = order_body(customer_id="C-BEN", payment_terms="card", lines=[
        {"sku": "LAMP-1", "quantity": 60, "unit_price": "89.90"}])  # 5,394: over 5,000
    order = client.post("/orders", json=body, headers=ops).json
    holds = client.get("/holds", headers=ops).json["items"]
    fraud = [h for h in holds if h["queue"] == "fraud-review"]  # a first order over 2,000
    client.post(f"/holds/{fraud[0]['id']}/release", json={}, headers=ops)
    order = client.get(f"/orders/{order['id']}", headers=ops).json
    assert order["status"] == "on_hold"
    [hold] = client.get("/holds", headers=ops).json["items"]
    assert (hold["queue"], hold["stage"], hold["rule"]) == (
        "inventory-review", "sourcing", "big-orders-short-to-review")
    # the planner releases it: the ten lamps are reserved, fifty wait as a backorder
    released = client.post(f"/holds/{hold['id']}/release", json={"note": "backorder it"},
                           headers=ops)
    assert released.status_code == 200
    order = client.get(f"/orders/{order['id']}", headers=ops).json
    assert order["status"] == "backordered"
    assert order["lines"][0]["quantities"]["allocated"] == 10
    assert order["lines"][0]["quantities"]["backordered"] == 50
    # twenty more arrive: the backorder job fills them without holding the order again
    stock(services, {("LAMP-1", "WH-SP"): 30})
    order = client.get(f"/orders/{order['id']}", headers=ops).json
    assert order["status"] == "backordered"
    assert (order["lines"][0]["quantities"]["allocated"],
            order["lines"][0]["quantities"]["backordered"]) == (30, 30)
    assert client.get("/holds", headers=ops).json["items"] == []


def test_racing_clients_never_reserve_more_than_there_is(live_server, client, admin, catalog,
                                                         services):
    # 64 customers, each ordering one of the last 5 lamps at the same moment
    customers = [{"id": f"C-RACE-{n:02d}", "name": f"Racer {n}", "country": "BR"}
                 for n in range(64)]
    assert client.post("/customers/bulk", json={"rows": customers},
                       headers=admin).json["failed"] == 0
    stock(services, {("LAMP-1", "WH-SP"): 5})
    one = [{"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"}]
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda n: live_server.request(
            "POST", "/orders", order_body(customer_id=f"C-RACE-{n:02d}", lines=one),
            admin), range(64)))
    assert [status for status, _, _ in results] == [201] * 64
    statuses = sorted(json.loads(body)["status"] for _, _, body in results)
    assert statuses == ["allocated"] * 5 + ["backordered"] * 59
    assert level(services, "LAMP-1", "WH-SP") == (5, 5)
    with services.uow() as uow:
        allocated = uow.session.scalar(select(func.sum(OrderLine.quantity_allocated))
                                       .where(OrderLine.sku == "LAMP-1"))
        waiting = uow.session.scalar(select(func.sum(OrderLine.quantity_backordered))
                                     .where(OrderLine.sku == "LAMP-1"))
        lowest = uow.session.scalar(select(func.min(StockMovement.reserved_after)))
    assert (allocated, waiting, lowest) == (5, 59, 0)


def test_a_dry_run_of_a_sourcing_draft_shows_where_orders_would_go_and_reserves_nothing(
        client, admin, make_key, catalog, services):
    analyst = make_key("analyst")
    add_locations(client, admin, RIO)
    stock(services, {("LAMP-1", "WH-RJ"): 10})
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    assert groups_of(client, admin, order["id"]) == [("WH-SP", [("LAMP-1", 2)])]
    document = client.get("/rules/sourcing/versions/1", headers=analyst).json["document"]
    document["rules"].insert(0, {
        "name": "no-sao-paulo", "conditions": {
            "name": "location_code", "operator": "equal_to", "value": "WH-SP"},
        "actions": [{"name": "exclude_location", "params": {"reason": "stocktake"}}]})
    trial = client.post("/rules/sourcing/dry-run", headers=analyst,
                        json={"document": document, "order_id": order["id"]})
    assert trial.status_code == 200, trial.json
    assert [g["location"] for g in trial.json["decision"]["groups"]] == ["WH-RJ"]
    assert level(services, "LAMP-1", "WH-RJ") == (10, 0)
    # a simulation over recent orders counts the change of location
    result = client.post("/rules/sourcing/simulate", headers=analyst,
                         json={"document": document}).json
    assert result["changed"] == 1
    assert result["by_location"] == {"WH-SP->WH-RJ": 1}


def test_two_lines_of_one_sku_share_its_units_and_never_eat_safety_stock(client, admin,
                                                                          catalog, services):
    # 10 on hand, 7 of them safety stock: 3 may be sold
    with services.uow() as uow:
        from engine.actors import system_actor
        from engine.inventory import stock as inventory

        inventory.apply_change(uow, system_actor("test-wms"), inventory.StockChange(
            "count", "MUG-2", "WH-SP", 10, safety_stock=7))
        uow.commit()
    mugs = [{"sku": "MUG-2", "quantity": 2, "unit_price": "24.50"},
            {"sku": "MUG-2", "quantity": 2, "unit_price": "24.50"}]
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=mugs),
                        headers=admin).json
    assert order["status"] == "backordered"
    assert [line["quantities"]["allocated"] for line in order["lines"]] == [2, 1]
    assert [line["quantities"]["backordered"] for line in order["lines"]] == [0, 1]
    assert level(services, "MUG-2", "WH-SP") == (10, 3)


def test_a_released_manual_hold_lets_a_backorder_take_stock_that_arrived_meanwhile(
        client, admin, catalog, services):
    stock(services, {("LAMP-1", "WH-SP"): 0})
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                        headers=admin).json
    client.post(f"/orders/{order['id']}/hold", json={"reason": "customer called"},
                headers=admin)
    # while it is held, stock arrives: a held order does not wait for stock, so nothing
    # is kept back for it and a new order may take it
    stock(services, {("LAMP-1", "WH-SP"): 2})
    assert level(services, "LAMP-1", "WH-SP") == (2, 0)
    # released, it goes back to waiting and takes what is there
    released = client.post(f"/orders/{order['id']}/release-hold", json={}, headers=admin)
    assert released.json["status"] == "allocated"
    assert level(services, "LAMP-1", "WH-SP") == (2, 2)


def test_the_split_cap_counts_locations_from_earlier_rounds(client, admin, catalog, services):
    # a gold customer paying by card: partial shipments allowed, at most two locations
    assert client.post("/customers", json={"id": "C-GOLD", "name": "Gia", "tier": "gold",
                                           "payment_terms": "card", "country": "BR"},
                       headers=admin).status_code == 201
    add_locations(client, admin, RIO, CAMPINAS_STORE)
    stock(services, {("MUG-2", "WH-SP"): 4, ("MUG-2", "WH-RJ"): 3})
    mugs = [{"sku": "MUG-2", "quantity": 10, "unit_price": "24.50"}]
    order = client.post("/orders", json=order_body(customer_id="C-GOLD", lines=mugs),
                        headers=admin).json
    assert order["status"] == "allocated"  # seven ship now, three wait
    assert order["lines"][0]["quantities"] == {
        "ordered": 10, "allocated": 7, "shipped": 0, "delivered": 0, "cancelled": 0,
        "returned": 0, "backordered": 3}
    # three arrive at a third location: the order may not split a third time
    stock(services, {("MUG-2", "ST-CAMPINAS"): 3})
    order = client.get(f"/orders/{order['id']}", headers=admin).json
    assert order["lines"][0]["quantities"]["backordered"] == 3
    # three arrive where it already ships from: they join the order
    stock(services, {("MUG-2", "WH-SP"): 7})
    order = client.get(f"/orders/{order['id']}", headers=admin).json
    assert order["lines"][0]["quantities"]["allocated"] == 10
    assert sorted(location for location, _ in groups_of(client, admin, order["id"])) == [
        "WH-RJ", "WH-SP", "WH-SP"]


def test_a_sweep_fills_backorders_whose_job_never_ran(make_app, redis_url, admin, catalog,
                                                      services):
    # jobs go to a Redis queue that nobody works: the receipt's backorder job is lost
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    client = app.test_client()
    stock(services, {("LAMP-1", "WH-SP"): 0})
    waiting = client.post("/orders", json=order_body(customer_id="C-BEN", lines=LAMPS),
                          headers=admin).json
    assert waiting["status"] == "backordered"
    client.post("/inventory/receipts", headers=admin,
                json={"sku": "LAMP-1", "location": "WH-SP", "quantity": 2})
    redis = Redis.from_url(redis_url)
    redis.delete(f"rq:queue:{queue_name}")
    redis.close()
    assert client.get(f"/orders/{waiting['id']}", headers=admin).json["status"] == "backordered"
    # the sweep finds the SKU with stock and waiting orders, and fills them
    from jobs.inventory import sweep_backorders

    with using(app.extensions["oms"]):
        assert sweep_backorders() == {"LAMP-1": [waiting["id"]]}
        assert sweep_backorders() == {}  # run again: nothing left to do
    assert client.get(f"/orders/{waiting['id']}", headers=admin).json["status"] == "allocated"
