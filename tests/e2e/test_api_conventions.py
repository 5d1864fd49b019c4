"""Small promises every route keeps, seen from outside (issue 10, defect 7)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import order_body, wms_event


def held_order(client, admin, ops):
    order = client.post("/orders", json=order_body(), headers=admin).json
    held = client.post(f"/orders/{order['id']}/hold", json={"reason": "address check"},
                       headers=ops)
    assert held.json["status"] == "on_hold", held.json
    return order


def test_a_command_that_needs_no_body_accepts_an_empty_request(client, admin, make_key,
                                                                catalog):
    ops = make_key("ops")
    order = held_order(client, admin, ops)
    # when the hold is released with no body and no Content-Type, as curl -X POST sends it
    response = client.post(f"/orders/{order['id']}/release-hold", headers=ops)
    # then it is carried out, not refused as "not no Content-Type"
    assert response.status_code == 200, response.json
    assert response.json["status"] != "on_hold"


def test_a_command_that_needs_a_body_still_refuses_a_request_without_json(client, admin):
    response = client.post("/orders/1/hold", headers=admin)
    assert response.status_code == 415
    assert response.json["code"] == "unsupported_media_type"


@pytest.mark.parametrize("path", ["/webhooks/subscriptions", "/rules", "/carriers",
                                  "/wms/work?location=WH-SP", "/inventory", "/holds"])
def test_every_list_refuses_unknown_query_parameters_naming_them(client, admin, catalog, path):
    separator = "&" if "?" in path else "?"
    response = client.get(f"{path}{separator}colour=red&size=xl", headers=admin)
    assert response.status_code == 422, (path, response.json)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["code"] == "validation_failed"
    assert {(e["field"], e["in"]) for e in response.json["errors"]} == {
        ("colour", "query"), ("size", "query")}


def test_a_repeated_filter_matches_any_of_its_values(client, admin, make_key, catalog):
    ops = make_key("ops")
    held = held_order(client, admin, ops)
    other = client.post("/orders", json=order_body(), headers=admin).json
    cancelled = client.post(f"/orders/{other['id']}/cancel", json={"reason": "changed mind"},
                            headers=ops)
    assert cancelled.json["status"] == "cancelled"
    client.post("/orders", json=order_body(), headers=admin)  # a third, in neither status
    # when both statuses are asked for
    found = client.get("/orders?status=on_hold&status=cancelled", headers=ops).json["items"]
    # then both orders are listed, not only the first status's
    assert {order["id"] for order in found} == {held["id"], other["id"]}


def test_every_list_takes_a_repeated_filter_as_any_of_its_values(client, admin, make_key,
                                                                   catalog):
    ops = make_key("ops")
    order = client.post("/orders", json=order_body(), headers=admin).json
    # when stock levels, stock movements and holds are filtered by two values each
    levels = client.get("/inventory?sku=LAMP-1&sku=MUG-2", headers=ops).json["items"]
    moves = client.get(f"/inventory/ledger?sku=LAMP-1&sku=MUG-2&order_id={order['id']}"
                       f"&order_id={order['id'] + 1000}", headers=ops).json["items"]
    client.post(f"/orders/{order['id']}/hold", json={"reason": "check"}, headers=ops)
    holds = client.get("/holds?queue=manual&queue=fraud", headers=ops)
    # then each matches either value, not only the first
    assert {level["sku"] for level in levels} == {"LAMP-1", "MUG-2"}
    assert {move["sku"] for move in moves} == {"LAMP-1", "MUG-2"}
    assert {move["order_id"] for move in moves} == {order["id"]}
    assert holds.status_code == 200
    assert [hold["order_id"] for hold in holds.json["items"]] == [order["id"]]


def test_a_filter_that_takes_one_value_refuses_two(client, admin):
    response = client.get("/holds?state=open&state=all", headers=admin)
    assert response.status_code == 422
    assert [(e["field"], e["in"]) for e in response.json["errors"]] == [("state", "query")]


def test_a_blank_channel_order_ref_is_refused(client, admin, catalog):
    response = client.post("/orders", json=order_body(channel_order_ref="   "), headers=admin)
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["channel_order_ref"]


def test_a_return_of_a_sku_never_shipped_blames_the_sku(client, admin, make_key, catalog):
    ops = make_key("ops")
    order = client.post("/orders", json=order_body(), headers=admin).json
    [group] = client.get(f"/orders/{order['id']}/fulfilment", headers=ops).json["items"]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    assert wms_event(client, ops, group["id"], "shipped", "c1", tracking_number="RT000000001BR",
               lines=lines).status_code == 200
    # when a return names a SKU that is not on the order
    response = client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}, {"sku": "NOPE-9", "quantity": 1}],
        "reason": "wrong item"})
    # then the SKU is blamed, not the quantity
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json["errors"]] == [
        ("lines/1/sku", "NOPE-9 was not shipped on this order")]


def test_timeline_amounts_carry_the_currency_decimals(client, admin, catalog):
    order = client.post("/orders", json=order_body(), headers=admin).json
    events = client.get(f"/orders/{order['id']}/events", headers=admin).json["items"]
    [received] = [event for event in events if event["type"] == "order.received"]
    assert received["data"]["total"] == "219.30"  # BRL: 2 decimals, not "219.3000"
    assert Decimal(received["data"]["total"]) == Decimal(order["total"])


def test_releasing_a_released_hold_is_a_409_like_the_order_level_route(client, admin,
                                                                        make_key, catalog):
    ops = make_key("ops")
    order = held_order(client, admin, ops)
    [hold] = client.get("/holds", headers=ops).json["items"]
    assert client.post(f"/holds/{hold['id']}/release", json={}, headers=ops).status_code == 200
    # when the same hold is released again
    again = client.post(f"/holds/{hold['id']}/release", json={}, headers=ops)
    # then it is a conflict, as for the order, not a 404
    assert again.status_code == 409
    assert again.json["code"] == "hold_resolved"
    assert client.post(f"/orders/{order['id']}/release-hold", json={},
                       headers=ops).status_code == 409


def test_the_service_address_opens_a_page_pointing_to_the_docs(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert 'href="/docs"' in response.get_data(as_text=True)
