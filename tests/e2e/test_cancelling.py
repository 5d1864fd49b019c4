"""Cancelling what has not shipped: the whole remainder, or units of some lines, at any
status before the order has shipped; stock freed for waiting orders, the warehouse told,
nothing billed for the cancelled units, the ledger and the timeline saying so."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tests.conftest import order_body, stock, stock_level, wms_event
from tests.support.peer import partner_peer_fixture  # noqa: F401 - provides partner_peer

CARRIERS = [c["code"] for c in json.loads(
    (Path(__file__).resolve().parents[2] / "adapters/data/carriers.json").read_text())["carriers"]]


def group_of(client, headers, order_id):
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=headers).json["items"]
    return group


def timeline(client, headers, order_id):
    return client.get(f"/orders/{order_id}/events", headers=headers).json["items"]


def ledger(client, headers, order_id, kind):
    return [Decimal(entry["amount"]) for entry in client.get(
        f"/orders/{order_id}/ledger", headers=headers).json["items"] if entry["kind"] == kind]


def test_what_is_left_of_a_partially_shipped_order_is_cancelled_and_never_billed(
        client, admin, make_key, catalog, services):
    ops = make_key("ops", name="ops-desk")
    # given Ben's card order (two lamps, a mug) whose lamps have shipped
    order_id = client.post("/orders", json=order_body(customer_id="C-BEN"),
                           headers=admin).json["id"]
    group = group_of(client, ops, order_id)
    assert wms_event(client, ops, group["id"], "shipped", "s1", package_ref="B1",
               tracking_number="JD000000001BR",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).status_code == 200
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "partially_shipped"
    # when the mug still in the warehouse is cancelled (the remainder: no lines named)
    response = client.post(f"/orders/{order_id}/cancel", headers=ops,
                           json={"reason": "the mug is no longer wanted"})
    # then it is cancelled (was 409), and with nothing left to ship the order is shipped
    assert response.status_code == 200, response.json
    assert response.json["status"] == "shipped"
    assert [(line["quantities"]["shipped"], line["quantities"]["cancelled"])
            for line in response.json["lines"]] == [(2, 0), (0, 1)]
    # the mug's reservation is given back, on the stock ledger
    assert stock_level(services, "MUG-2") == (100, 0)
    [freed] = [move for move in client.get(f"/inventory/ledger?order_id={order_id}",
                                           headers=ops).json["items"]
               if move["kind"] == "release"]
    assert (freed["sku"], freed["reserved_change"]) == ("MUG-2", -1)
    # the warehouse withdraws what was left of the group; its pick list is empty
    assert group_of(client, ops, order_id)["status"] == "cancelled"
    assert client.get("/wms/work?location=WH-SP", headers=ops).json["items"] == []
    events = timeline(client, ops, order_id)
    cancelled = next(e for e in events if e["type"] == "order.lines_cancelled")
    assert cancelled["actor"] == {"type": "api_key", "id": "ops-desk"}
    assert cancelled["data"]["reason"] == "the mug is no longer wanted"
    assert cancelled["data"]["lines"] == [{"line_no": 2, "sku": "MUG-2", "quantity": 1}]
    types = [e["type"] for e in events]
    assert types.index("order.lines_cancelled") < types.index("order.shipped")
    assert "group.withdrawn" in types
    # delivered, the order completes; only the lamps and the shipping were billed
    delivered = client.post("/carriers/events", headers=ops, json={
        "event_id": "c1", "tracking_number": "JD000000001BR", "status": "delivered"})
    assert delivered.json["outcome"] == "applied", delivered.json
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "completed"
    billed = Decimal("89.90") * 2 + Decimal("15.00")
    assert ledger(client, ops, order_id, "invoice") == [billed]
    assert ledger(client, ops, order_id, "capture") == [billed]


def test_a_line_partly_cancelled_before_release_ships_the_rest_and_bills_only_that(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given no mugs in stock: Ben's order waits for its mug, the lamps reserved, unreleased
    stock(services, {("MUG-2", "WH-SP"): 0})
    placed = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    order_id = placed["id"]
    assert placed["status"] == "backordered"
    assert group_of(client, ops, order_id)["status"] == "allocated"
    # when one of the two lamps, and the mug (named by its SKU), are cancelled
    response = client.post(f"/orders/{order_id}/cancel", headers=ops, json={
        "reason": "customer wants one lamp only",
        "lines": [{"line_no": 1, "quantity": 1}, {"sku": "MUG-2", "quantity": 1}]})
    # then the lamp's reservation is freed, and with nothing to wait for the rest is released
    assert response.status_code == 200, response.json
    assert [(q["ordered"], q["cancelled"], q["allocated"], q["backordered"])
            for q in (line["quantities"] for line in response.json["lines"])] == [
        (2, 1, 1, 0), (1, 1, 0, 0)]
    assert stock_level(services, "LAMP-1") == (100, 1)
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "released"
    group = group_of(client, ops, order_id)
    assert [(line["sku"], line["quantity"]) for line in group["lines"]] == [("LAMP-1", 1)]
    # the lamp ships: the card is authorised, captured and invoiced for it alone
    assert wms_event(client, ops, group["id"], "shipped", "s1",
               lines=[{"sku": "LAMP-1", "quantity": 1}]).status_code == 200
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "shipped"
    billed = Decimal("89.90") + Decimal("15.00")
    assert ledger(client, ops, order_id, "authorisation") == [billed]
    assert ledger(client, ops, order_id, "capture") == [billed]
    assert ledger(client, ops, order_id, "invoice") == [billed]


def test_a_released_line_cancelled_is_stopped_at_the_warehouse_and_off_the_pick_list(
        make_app, admin, make_key, partner_peer, services):
    from tests.conftest import load_catalog

    endpoint = {"url": partner_peer.url, "secrets": [partner_peer.secret],
                "timeout": partner_peer.client_timeout}
    app = make_app(PARTNERS=json.dumps({"wms": {"WH-SP": endpoint}}))
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    ops = make_key("ops")
    # given an order released to a warehouse reached over HTTP
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group = group_of(client, ops, order_id)
    assert (group["status"], group["wms_reference"]) == ("released", "WMS-000001")
    # when one of its two lamps is cancelled
    response = client.post(f"/orders/{order_id}/cancel", headers=ops, json={
        "reason": "one lamp only", "lines": [{"line_no": 1, "quantity": 1}]})
    # then the order is still released, and the warehouse was told to stop that lamp
    assert response.status_code == 200, response.json
    assert response.json["status"] == "released"
    [stop] = partner_peer.effects_of("stop_units")
    assert stop.body == {"items": [{"order_line_id": stop.body["items"][0]["order_line_id"],
                                    "sku": "LAMP-1", "quantity": 1}]}
    assert partner_peer.effects_of("cancel") == []  # the rest of the group still ships
    events = timeline(client, ops, order_id)
    assert [e["type"] for e in events][-2:] == ["order.lines_cancelled", "group.units_stopped"]
    assert events[-1]["data"]["lines"] == [{"line_no": 1, "sku": "LAMP-1", "quantity": 1}]
    assert events[-2]["data"]["groups"] == [{
        "group": group["id"], "location": "WH-SP", "withdrawn": False,
        "lines": [{"line_no": 1, "sku": "LAMP-1", "quantity": 1}]}]
    # the pick list offers the remaining units only; the lamp's reservation is freed
    [work] = client.get("/wms/work?location=WH-SP", headers=ops).json["items"]
    assert [(line["sku"], line["quantity"]) for line in work["lines"]] == [
        ("LAMP-1", 1), ("MUG-2", 1)]
    assert stock_level(services, "LAMP-1") == (100, 1)
    # and the warehouse cannot ship the cancelled lamp any more
    refused = wms_event(client, ops, group["id"], "shipped", "s1",
                  lines=[{"sku": "LAMP-1", "quantity": 2}])
    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == "lines/0/quantity"


def test_a_backorder_gets_the_stock_a_cancelled_line_frees(client, admin, catalog,
                                                           services):
    # given two lamps in stock, both reserved by Ben's first order; the second waits
    stock(services, {("LAMP-1", "WH-SP"): 2})
    lamps = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"}]
    first = client.post("/orders", json=order_body(customer_id="C-BEN", lines=lamps),
                        headers=admin).json
    second = client.post("/orders", json=order_body(
        customer_id="C-BEN", lines=[{"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"}]),
        headers=admin).json
    assert second["status"] == "backordered"
    # when the first order gives up one lamp
    response = client.post(f"/orders/{first['id']}/cancel", headers=admin, json={
        "reason": "one is enough", "lines": [{"sku": "LAMP-1", "quantity": 1}]})
    assert response.status_code == 200, response.json
    # then the waiting order gets it and is released
    assert client.get(f"/orders/{second['id']}", headers=admin).json["status"] == "released"
    assert stock_level(services, "LAMP-1") == (2, 2)


def test_cancelling_more_than_is_left_or_an_unknown_line_is_refused_naming_the_field(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given an order with one of its two lamps shipped
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group = group_of(client, ops, order_id)
    assert wms_event(client, ops, group["id"], "shipped", "s1",
               lines=[{"sku": "LAMP-1", "quantity": 1}]).status_code == 200

    def cancel(*lines):
        return client.post(f"/orders/{order_id}/cancel", headers=ops,
                           json={"reason": "test", "lines": list(lines)})

    # when more lamps are cancelled than are left, then the quantity is named
    too_many = cancel({"line_no": 2, "quantity": 1}, {"line_no": 1, "quantity": 2})
    assert too_many.status_code == 422
    assert too_many.headers["Content-Type"] == "application/problem+json"
    [problem] = too_many.json["errors"]
    assert problem["field"] == "lines/1/quantity"
    assert "1 left to cancel" in problem["message"] and "1 shipped" in problem["message"]
    # an unknown line, a SKU not on the order, a line named twice over or not at all
    assert cancel({"line_no": 9, "quantity": 1}).json["errors"][0]["field"] == "lines/0/line_no"
    assert cancel({"sku": "BATT-3", "quantity": 1}).json["errors"][0]["field"] == "lines/0/sku"
    both = cancel({"line_no": 1, "sku": "LAMP-1", "quantity": 1})
    assert (both.status_code, both.json["errors"][0]["field"]) == (422, "lines/0/line_no")
    assert cancel({"quantity": 1}).status_code == 422
    # and nothing changed
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "partially_shipped"
    assert [line["quantities"]["cancelled"] for line in order["lines"]] == [0, 0]
    assert stock_level(services, "LAMP-1") == (99, 1)
    # the last lamp is packed: it cannot be cancelled without the mug still in its group
    assert wms_event(client, ops, group["id"], "packed", "p1", package_ref="B2",
               lines=[{"sku": "LAMP-1", "quantity": 1}]).status_code == 200
    packed = cancel({"line_no": 1, "quantity": 1})
    assert (packed.status_code, packed.json["errors"][0]["field"]) == (422, "lines/0/quantity")
    assert "packed" in packed.json["errors"][0]["message"]
    # once everything has shipped, the order is past cancelling: a 409
    assert wms_event(client, ops, group["id"], "shipped", "s2", package_ref="B2").status_code == 200
    assert wms_event(client, ops, group["id"], "shipped", "s3",
               lines=[{"sku": "MUG-2", "quantity": 1}]).status_code == 200
    shipped = cancel({"line_no": 2, "quantity": 1})
    assert (shipped.status_code, shipped.json["code"]) == (409, "invalid_transition")
    assert shipped.json["current_status"] == "shipped"


def test_a_cancelled_order_cannot_be_cancelled_again(client, admin, catalog):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    assert client.post(f"/orders/{order_id}/cancel", headers=admin,
                       json={"reason": "first"}).json["status"] == "cancelled"
    again = client.post(f"/orders/{order_id}/cancel", headers=admin, json={
        "reason": "again", "lines": [{"line_no": 1, "quantity": 1}]})
    assert (again.status_code, again.json["code"]) == (409, "invalid_transition")
    assert again.json["current_status"] == "cancelled"


def test_a_cancel_racing_a_shipment_of_the_same_units_never_both_succeed(
        live_server, client, admin, make_key, catalog, services):
    from concurrent.futures import ThreadPoolExecutor

    ops = make_key("ops")
    shipped = 0
    for round in range(3):
        # given a released order
        order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
        group = group_of(client, ops, order_id)
        # when its lamps are cancelled while the warehouse reports them shipped
        requests = [
            ("POST", f"/orders/{order_id}/cancel",
             {"reason": "race", "lines": [{"line_no": 1, "quantity": 2}]}),
            ("POST", "/wms/events", {"event_id": f"race-{round}", "type": "shipped",
                                     "group_id": group["id"],
                                     "lines": [{"sku": "LAMP-1", "quantity": 2}]})]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda r: live_server.request(*r, headers=ops)[0],
                                    requests))
        # then one of them took the lamps and the other was refused
        assert sorted(answers) in ([200, 409], [200, 422]), answers
        order = client.get(f"/orders/{order_id}", headers=ops).json
        lamps = order["lines"][0]["quantities"]
        assert (lamps["shipped"], lamps["cancelled"]) in ((2, 0), (0, 2)), lamps
        shipped += lamps["shipped"]
    # and the stock says the same: what shipped left, nothing is still reserved for it
    assert stock_level(services, "LAMP-1") == (100 - shipped, 0)


def test_a_sku_listed_twice_is_cancelled_from_its_lines_in_order(client, admin, catalog,
                                                                 services):
    # given an order listing lamps twice, and a mug
    lines = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"},
             {"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"},
             {"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"}]
    order_id = client.post("/orders", json=order_body(lines=lines), headers=admin).json["id"]
    # when three lamps are cancelled by SKU
    response = client.post(f"/orders/{order_id}/cancel", headers=admin, json={
        "reason": "no lamps", "lines": [{"sku": "LAMP-1", "quantity": 3}]})
    # then both lamp lines are, the mug still ships, and the lamps' stock is free again
    assert response.status_code == 200, response.json
    assert [line["quantities"]["cancelled"] for line in response.json["lines"]] == [2, 0, 1]
    assert response.json["status"] == "released"
    assert stock_level(services, "LAMP-1") == (100, 0)
    # cancelling the mug too leaves nothing: the order is cancelled, the group withdrawn
    last = client.post(f"/orders/{order_id}/cancel", headers=admin, json={
        "reason": "nothing then", "lines": [{"line_no": 2, "quantity": 1}]})
    assert last.json["status"] == "cancelled"
    types = [e["type"] for e in timeline(client, admin, order_id)]
    assert types[-2:] == ["order.cancelled", "group.withdrawn"]


def test_units_cancelled_while_the_release_was_out_are_stopped_once_it_lands(
        make_app, admin, services):
    from sqlalchemy import select

    from engine.actors import system_actor
    from engine.fulfilment import release
    from engine.fulfilment.waves import WavePolicy
    from engine.record import OutboxMessage, utcnow
    from tests.conftest import load_catalog

    # given Redis unreachable: the release job waits in the outbox
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    load_catalog(client, admin, services)
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group_id = group_of(client, admin, order_id)["id"]
    # and the wave job has claimed what to send: both lamps and the mug
    with services.uow() as uow:
        [(request, _)] = release.claim_release_wave(uow, "WH-SP", 500, WavePolicy(0, 500),
                                                    utcnow())
        uow.commit()
    # when a lamp is cancelled while the call is out, then the warehouse answers
    assert client.post(f"/orders/{order_id}/cancel", headers=admin, json={
        "reason": "one lamp", "lines": [{"line_no": 1, "quantity": 1}]}).status_code == 200
    with services.uow() as uow:
        assert release.record_releases(uow, system_actor("test"), [
            release.Released(group_id, "LATE-1", request.items)]) == 1
        uow.commit()
    # then the group is released with one lamp, and the warehouse is to stop the other
    group = group_of(client, admin, order_id)
    assert group["status"] == "released"
    assert [(line["sku"], line["quantity"]) for line in group["lines"]] == [
        ("LAMP-1", 1), ("MUG-2", 1)]
    late = [e for e in timeline(client, admin, order_id)
            if e["type"] == "group.released_after_cancel"]
    assert [e["data"]["groups"][0]["lines"] for e in late] == [
        [{"line_no": 1, "sku": "LAMP-1", "quantity": 1}]]
    with services.uow() as uow:
        jobs = [(m.job, list(m.args)) for m in uow.session.scalars(select(OutboxMessage))]
    assert ("jobs.fulfilment.stop_at_warehouse", [group_id, late[0]["id"]]) in jobs
