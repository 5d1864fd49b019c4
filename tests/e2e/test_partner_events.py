"""Warehouse and carrier events are kept by their id: the same event again is a duplicate,
another event under an id already used is refused, never swallowed."""

from __future__ import annotations

from tests.conftest import order_body, wms_event


def released_group(client, admin, ops):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    return order_id, group, lines


def test_a_wms_event_id_reused_for_another_event_is_refused_and_the_shipment_is_not_lost(
        client, admin, make_key, catalog):
    ops = make_key("ops")
    # given two released orders, and the warehouse confirms the first one's pick as wms-1
    first_id, first, _ = released_group(client, admin, ops)
    second_id, second, lines = released_group(client, admin, ops)
    picked = wms_event(client, ops, first["id"], "picked", "wms-1")
    assert picked.json["outcome"] == "applied"
    # when the same event comes again, it is a duplicate with no second effect
    again = wms_event(client, ops, first["id"], "picked", "wms-1")
    assert (again.status_code, again.json["outcome"]) == (200, "duplicate")
    # when the warehouse reuses wms-1 for the second order's shipment
    reused = wms_event(client, ops, second["id"], "shipped", "wms-1", package_ref="B1",
                 tracking_number="RU000000001BR", lines=lines)
    # then it is refused with a stable code naming the event id, and nothing shipped
    assert reused.status_code == 422
    assert reused.json["code"] == "event_id_reused"
    assert [p["field"] for p in reused.json["errors"]] == ["event_id"]
    assert client.get(f"/orders/{second_id}", headers=ops).json["status"] == "released"
    # and sent under a new id, the shipment is applied
    shipped = wms_event(client, ops, second["id"], "shipped", "wms-2", package_ref="B1",
                  tracking_number="RU000000001BR", lines=lines)
    assert (shipped.json["outcome"], shipped.json["order_id"]) == ("applied", second_id)
    assert client.get(f"/orders/{second_id}", headers=ops).json["status"] == "shipped"
    assert client.get(f"/orders/{first_id}", headers=ops).json["status"] == "released"


def test_a_carrier_event_id_reused_for_another_event_is_refused(client, admin, make_key,
                                                                  catalog):
    ops = make_key("ops")
    # given an order shipped with a tracking number, in transit under event t-1
    order_id, group, lines = released_group(client, admin, ops)
    assert wms_event(client, ops, group["id"], "shipped", "s-1", package_ref="B1",
               tracking_number="CR000000001BR", lines=lines).status_code == 200
    scan = {"event_id": "t-1", "tracking_number": "CR000000001BR", "status": "in_transit",
            "occurred_at": "2026-11-24T15:00:00+00:00"}
    assert client.post("/carriers/events", headers=ops, json=scan).json["outcome"] == "applied"
    # when the same scan comes again (its fields in another order): a duplicate
    again = client.post("/carriers/events", headers=ops, json=dict(reversed(scan.items())))
    assert (again.status_code, again.json["outcome"]) == (200, "duplicate")
    # when the carrier reuses t-1 for the delivery
    reused = client.post("/carriers/events", headers=ops,
                         json={**scan, "status": "delivered"})
    # then it is refused, and the parcel is not delivered
    assert (reused.status_code, reused.json["code"]) == (422, "event_id_reused")
    [shipment] = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    assert shipment["status"] == "in_transit"
    delivered = client.post("/carriers/events", headers=ops,
                            json={**scan, "event_id": "t-2", "status": "delivered"})
    assert delivered.json["outcome"] == "applied"
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "completed"
