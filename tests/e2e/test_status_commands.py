"""Status changes go through the transition table; refusals are 409 problems."""

from __future__ import annotations

from tests.conftest import order_body


def place(client, headers) -> int:
    response = client.post("/orders", json=order_body(), headers=headers)
    assert response.status_code == 201
    return response.json["id"]


def test_cancelling_an_order_cancels_every_unshipped_unit(client, admin, catalog):
    order_id = place(client, admin)
    response = client.post(f"/orders/{order_id}/cancel", json={"reason": "customer changed mind"},
                           headers=admin)
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"
    assert [line["quantities"]["cancelled"] for line in response.json["lines"]] == [2, 1]
    events = client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
    # cancelled, then taken back from the warehouse it had been released to
    assert [e["type"] for e in events][-2:] == ["order.cancelled", "group.withdrawn"]
    assert events[-2]["data"] == {
        "reason": "customer changed mind", "previous_status": "released",
        "status": "cancelled",
        "lines": [{"line_no": 1, "sku": "LAMP-1", "quantity": 2},
                  {"line_no": 2, "sku": "MUG-2", "quantity": 1}],
        "groups": [{"group": events[-1]["data"]["group"], "location": "WH-SP",
                    "withdrawn": True,
                    "lines": [{"line_no": 1, "sku": "LAMP-1", "quantity": 2},
                              {"line_no": 2, "sku": "MUG-2", "quantity": 1}]}]}


def test_a_refused_transition_is_a_409_with_current_and_requested_status(client, admin, catalog):
    order_id = place(client, admin)
    client.post(f"/orders/{order_id}/cancel", json={"reason": "first"}, headers=admin)
    response = client.post(f"/orders/{order_id}/hold", json={"reason": "too late"},
                           headers=admin)
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["code"] == "invalid_transition"
    assert response.json["current_status"] == "cancelled"
    assert response.json["requested_status"] == "on_hold"
    # and the refusal changed nothing
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "cancelled"
    events = client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
    assert [e["type"] for e in events][-2:] == ["order.cancelled", "group.withdrawn"]


def test_releasing_a_hold_returns_the_order_to_where_it_was(client, make_key, catalog):
    ops = make_key("ops", name="ops-desk")
    order_id = place(client, ops)
    held = client.post(f"/orders/{order_id}/hold", json={"reason": "address check"}, headers=ops)
    assert held.json["status"] == "on_hold"
    [hold] = client.get("/holds", headers=ops).json["items"]
    assert (hold["queue"], hold["reason"], hold["created_by"]) == (
        "manual", "address check", "api_key:ops-desk")
    released = client.post(f"/orders/{order_id}/release-hold", json={"note": "address ok"},
                           headers=ops)
    assert released.status_code == 200
    assert released.json["status"] == "released"
    events = client.get(f"/orders/{order_id}/events", headers=ops).json["items"]
    assert [(e["type"], e["actor"]["id"]) for e in events] == [
        ("order.received", "ops-desk"), ("order.validated", "ops-desk"),
        ("order.allocated", "ops-desk"), ("order.carrier_selected", "ops-desk"),
        ("group.released", "wms-release"), ("order.released", "wms-release"),
        ("customer.notified", "notifier"), ("order.held", "ops-desk"),
        # the warehouse gives the group back while the order is held, and gets it again
        ("group.withdrawn", "wms-withdraw"), ("order.hold_released", "ops-desk"),
        ("group.released", "wms-release")]


def test_releasing_an_order_that_is_not_on_hold_is_refused(client, admin, catalog):
    order_id = place(client, admin)
    response = client.post(f"/orders/{order_id}/release-hold", json={}, headers=admin)
    assert response.status_code == 409
    assert response.json["code"] == "not_on_hold"
    assert response.json["current_status"] == "released"


def test_a_command_on_an_unknown_order_is_a_404(client, admin, catalog):
    response = client.post("/orders/424242/cancel", json={"reason": "x"}, headers=admin)
    assert response.status_code == 404
    assert response.json["code"] == "not_found"


def test_cancelling_a_held_order_clears_the_hold(client, admin, catalog):
    order_id = place(client, admin)
    client.post(f"/orders/{order_id}/hold", json={"reason": "check"}, headers=admin)
    cancelled = client.post(f"/orders/{order_id}/cancel", json={"reason": "fraud"},
                            headers=admin)
    assert cancelled.json["status"] == "cancelled"
    release = client.post(f"/orders/{order_id}/release-hold", json={}, headers=admin)
    assert release.json["code"] == "not_on_hold"
