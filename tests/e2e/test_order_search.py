"""Finding orders: by channel reference, tracking number, and what changed since a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

from tests.conftest import order_body, wms_event
from tests.e2e.test_listing import create_orders, ids_of


def test_finds_an_order_by_its_channel_reference(client, admin, catalog):
    # given three orders, two from the web with their own references
    first, second, _ = create_orders(client, admin, [
        order_body(channel_order_ref="WEB-1001"), order_body(channel_order_ref="WEB-1002"),
        order_body(channel="erp", channel_order_ref="WEB-1001")])
    # when ops search by a reference (and by one of two)
    only = client.get("/orders?channel_order_ref=WEB-1002", headers=admin)
    either = client.get("/orders?channel_order_ref=WEB-1002&channel_order_ref=NOPE",
                        headers=admin)
    same_ref = client.get("/orders?channel_order_ref=WEB-1001&channel=web", headers=admin)
    # then they find those orders
    assert ids_of(only) == [second] and ids_of(either) == [second]
    assert ids_of(same_ref) == [first]


def test_finds_an_order_by_a_tracking_number_of_its_shipments(client, admin, make_key,
                                                               catalog):
    ops = make_key("ops")
    shipped_id, other_id = create_orders(client, admin, [order_body(), order_body()])
    # given one order whose group left the warehouse with a tracking number
    [group] = client.get(f"/orders/{shipped_id}/fulfilment", headers=ops).json["items"]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    assert wms_event(client, ops, group["id"], "shipped", "s-1",
                     tracking_number="TR123456785BR", lines=lines).status_code == 200
    # when ops search by that tracking number
    found = client.get("/orders?tracking_number=TR123456785BR", headers=ops)
    # then that order comes back, and only it; an unknown number finds nothing
    assert ids_of(found) == [shipped_id]
    assert ids_of(client.get("/orders?tracking_number=XX000000000BR", headers=ops)) == []
    assert other_id not in ids_of(found)


def test_an_integration_that_syncs_gets_the_orders_changed_since_its_last_sync(
        client, admin, make_key, catalog):
    ops = make_key("ops")
    older, newer = create_orders(client, admin, [order_body(), order_body()])
    last_sync = client.get(f"/orders/{newer}", headers=admin).json["updated_at"]
    since = quote((datetime.fromisoformat(last_sync) + timedelta(microseconds=1)).isoformat())
    # nothing changed since the last sync
    assert ids_of(client.get(f"/orders?updated_from={since}", headers=admin)) == []
    # when the older order is put on hold (a change on its timeline)
    assert client.post(f"/orders/{older}/hold", json={"reason": "customer called"},
                       headers=ops).status_code == 200
    # then the next sync gets it, and only it
    changed = client.get(f"/orders?updated_from={since}", headers=admin)
    assert ids_of(changed) == [older]
    assert changed.json["items"][0]["updated_at"] >= last_sync


def test_a_return_counts_as_a_change_for_integrations_that_sync(client, admin, make_key,
                                                                 catalog):
    ops = make_key("ops")
    [order_id] = create_orders(client, admin, [order_body()])
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    assert wms_event(client, ops, group["id"], "shipped", "s-1",
                     tracking_number="TR223456785BR", lines=lines).status_code == 200
    before = client.get(f"/orders/{order_id}", headers=ops).json["updated_at"]
    since = quote((datetime.fromisoformat(before) + timedelta(microseconds=1)).isoformat())
    # when a mug comes back (no status change: the order stays shipped)
    assert client.post(f"/orders/{order_id}/returns", headers=ops, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}], "reason": "chipped"}).status_code == 201
    # then the order is among those changed since
    assert ids_of(client.get(f"/orders?updated_from={since}", headers=admin)) == [order_id]


def test_unknown_search_parameters_are_refused(client, admin):
    response = client.get("/orders?tracking=TR1", headers=admin)
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["tracking"]


def test_finds_orders_by_part_of_the_customers_name_in_any_case(client, admin, catalog):
    ana, ben = create_orders(client, admin, [order_body(), order_body(customer_id="C-BEN")])
    assert ids_of(client.get("/orders?customer_name=souza", headers=admin)) == [ben]
    assert ids_of(client.get("/orders?customer_name=LIMA", headers=admin)) == [ana]
    # a wildcard is a character like any other
    assert ids_of(client.get("/orders?customer_name=%25", headers=admin)) == []
