"""The round trip on the embedded partners: released, shipped in two packages, delivered,
completed, with a balanced ledger and every step on the timeline."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.bootstrap import using
from adapters.signing import sign
from jobs.fulfilment import settle_return
from tests.conftest import order_body, stock, stock_level, wms_event

WMS_SECRETS = ("wms-secret-old", "wms-secret-new")
CARRIER_SECRET = "carrier-secret"


@pytest.fixture
def app(make_app):
    return make_app(WMS_EVENT_SECRETS=",".join(WMS_SECRETS),
                    CARRIER_EVENT_SECRETS=CARRIER_SECRET)


def signed_post(client, path, payload, secret, at=None):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign([secret], body, now=at)}
    return client.post(path, data=body, headers=headers)


def test_an_order_is_released_shipped_in_two_packages_delivered_and_completed(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # Ben pays by card up front; two lamps and a mug from the Sao Paulo warehouse
    placed = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    order_id = placed["id"]
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "released"
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    assert group["status"] == "released"
    assert group["wms_reference"] == f"LWMS-WH-SP-{group['id']}"
    work = client.get("/wms/work?location=WH-SP", headers=ops).json["items"]
    assert [g["id"] for g in work] == [group["id"]]
    assert stock_level(services, "LAMP-1") == (100, 2)

    # the warehouse picks everything, packs the lamps, and the label is bought at once
    assert wms_event(client, ops, group["id"], "picked", "ev-1").json["outcome"] == "applied"
    packed = wms_event(client, ops, group["id"], "packed", "ev-2", package_ref="BOX-1",
                 weight_kg=2.1, lines=[{"sku": "LAMP-1", "quantity": 2}])
    assert packed.status_code == 200, packed.json
    [box] = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    assert box["status"] == "packed" and box["package_ref"] == "BOX-1"
    assert len(box["tracking_number"]) == 13 and box["tracking_number"].endswith("BR")
    assert Decimal(box["label_cost"]) == Decimal(group["shipping_cost"])

    # the lamps leave: stock and reservation go down, the order is partially shipped,
    # and the shipment is paid for (authorised, captured) and invoiced
    shipped = wms_event(client, ops, group["id"], "shipped", "ev-3", package_ref="BOX-1")
    assert shipped.json == {"outcome": "applied", "order_id": order_id,
                            "shipment_id": box["id"], "detail": None}
    assert stock_level(services, "LAMP-1") == (98, 0)
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "partially_shipped"
    assert [line["quantities"]["shipped"] for line in order["lines"]] == [2, 0]
    ledger = client.get(f"/orders/{order_id}/ledger", headers=ops).json
    assert [entry["kind"] for entry in ledger["items"]] == [
        "authorisation", "capture", "invoice"]
    assert ledger["balanced"] is True

    # the mug goes in a second package, shipped straight away with the WMS's own label
    assert wms_event(client, ops, group["id"], "shipped", "ev-4", package_ref="BOX-2",
               tracking_number="JD000000002BR",
               lines=[{"sku": "MUG-2", "quantity": 1}]).status_code == 200
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "shipped"
    assert stock_level(services, "MUG-2") == (99, 0)
    first, second = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    assert second["tracking_number"] == "JD000000002BR"
    assert first["invoice_reference"] and second["invoice_reference"]

    # the carrier reports both delivered; the order is delivered, then completed
    for event_id, tracking, status in (("t-1", first["tracking_number"], "in_transit"),
                                       ("t-2", first["tracking_number"], "delivered"),
                                       ("t-3", second["tracking_number"], "delivered")):
        response = client.post("/carriers/events", headers=ops, json={
            "event_id": event_id, "tracking_number": tracking, "status": status,
            "occurred_at": "2026-11-24T15:00:00+00:00"})
        assert response.json["outcome"] == "applied", response.json
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "completed"
    assert [line["quantities"]["delivered"] for line in order["lines"]] == [2, 1]

    # the books: the invoices add up to the order's total, the card paid all of it,
    # and every entry, and the whole ledger, balances
    ledger = client.get(f"/orders/{order_id}/ledger", headers=ops).json
    invoices = [e for e in ledger["items"] if e["kind"] == "invoice"]
    captures = [e for e in ledger["items"] if e["kind"] == "capture"]
    assert sum(Decimal(e["amount"]) for e in invoices) == Decimal(order["total"])
    assert sum(Decimal(e["amount"]) for e in captures) == Decimal(order["total"])
    assert ledger["balanced"] is True
    receivable = sum(Decimal(line["debit"]) - Decimal(line["credit"])
                     for entry in ledger["items"] for line in entry["lines"]
                     if line["account"] == "receivables")
    assert receivable == 0  # invoiced and paid
    tax = sum(Decimal(line["credit"]) for entry in invoices for line in entry["lines"]
              if line["account"] == "tax_payable")
    assert tax == Decimal(order["tax_amount"])
    balance = client.get("/ledger/trial-balance", headers=ops).json
    assert balance["balanced"] is True and balance["debit"] == balance["credit"]

    # every step is on the timeline, in order
    types = [e["type"] for e in client.get(f"/orders/{order_id}/events",
                                           headers=ops).json["items"]]
    for step in ("order.received", "order.allocated", "order.released", "group.picked",
                 "shipment.labelled", "shipment.shipped", "order.partially_shipped",
                 "shipment.invoiced", "order.shipped", "shipment.delivered",
                 "order.delivered", "order.completed"):
        assert step in types, step
    milestones = [types.index(step) for step in (
        "order.released", "order.partially_shipped", "order.shipped", "order.delivered",
        "order.completed")]
    assert milestones == sorted(milestones)
    notices = [e["data"]["kind"] for e in client.get(
        f"/orders/{order_id}/events", headers=ops).json["items"]
        if e["type"] == "customer.notified"]
    assert notices == ["confirmation", f"shipped:{first['id']}", f"shipped:{second['id']}",
                       f"delivered:{first['id']}", f"delivered:{second['id']}"]


def test_a_repeated_or_late_event_has_no_second_effect(client, admin, make_key, catalog,
                                                       services):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    everything = [{"sku": "LAMP-1", "quantity": 2}, {"sku": "MUG-2", "quantity": 1}]
    # more than the group holds, or a SKU it does not have: 422, and nothing changes
    refused = wms_event(client, ops, group["id"], "shipped", "too-many",
                  lines=[{"sku": "LAMP-1", "quantity": 3}, {"sku": "BATT-3", "quantity": 1}])
    assert refused.status_code == 422
    assert {p["field"] for p in refused.json["errors"]} == {"lines/0/quantity", "lines/1/sku"}
    assert stock_level(services, "LAMP-1") == (100, 2)
    for _ in range(2):  # the warehouse sends its confirmation twice
        response = wms_event(client, ops, group["id"], "shipped", "dup-1", package_ref="B",
                       tracking_number="AA123456785BR", lines=everything)
        assert response.status_code == 200
    assert response.json["outcome"] == "duplicate"
    assert stock_level(services, "LAMP-1") == (98, 0)  # decremented once
    assert len(client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]) == 1
    invoices = [e for e in client.get(f"/orders/{order_id}/ledger", headers=ops).json["items"]
                if e["kind"] == "invoice"]
    assert len(invoices) == 1  # Ana is on net terms: invoiced, nothing captured
    # delivered, then a stale "in transit" arrives: recorded, ignored
    for event_id, status in (("c-1", "delivered"), ("c-2", "in_transit")):
        outcome = client.post("/carriers/events", headers=ops, json={
            "event_id": event_id, "tracking_number": "AA123456785BR", "status": status})
        assert outcome.status_code == 200
    assert outcome.json["outcome"] == "ignored"
    assert "already delivered" in outcome.json["detail"]
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "completed"
    unknown = client.post("/carriers/events", headers=ops, json={
        "event_id": "c-3", "tracking_number": "ZZ000000000BR", "status": "delivered"})
    assert (unknown.status_code, unknown.json["code"]) == (404, "not_found")


def test_partners_sign_their_events_and_a_tampered_or_stale_one_is_refused(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    event = {"event_id": "w-1", "type": "shipped", "group_id": group["id"],
             "package_ref": "P", "tracking_number": "AB000000017BR",
             "lines": [{"sku": "LAMP-1", "quantity": 2}]}

    # tampered: signed, then the quantity changed on the way
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **sign([WMS_SECRETS[1]], body)}
    tampered = body.replace(b'"quantity": 2', b'"quantity": 1')
    refused = client.post("/wms/events", data=tampered, headers=headers)
    assert (refused.status_code, refused.json["code"]) == (401, "bad_signature")
    assert refused.headers["Content-Type"] == "application/problem+json"
    # stale: a signature from ten minutes ago is a replay
    stale = signed_post(client, "/wms/events", event, WMS_SECRETS[0], at=time.time() - 600)
    assert (stale.status_code, stale.json["code"]) == (401, "stale_timestamp")
    # signed with another partner's secret
    wrong = signed_post(client, "/wms/events", event, CARRIER_SECRET)
    assert wrong.status_code == 401
    assert stock_level(services, "LAMP-1") == (100, 2)  # nothing left the shelf
    assert client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"] == []

    # both secrets of a rotation are accepted; the twin is a no-op
    assert signed_post(client, "/wms/events", event, WMS_SECRETS[0]).json[
        "outcome"] == "applied"
    again = signed_post(client, "/wms/events", event, WMS_SECRETS[1])
    assert (again.status_code, again.json["outcome"]) == (200, "duplicate")
    assert stock_level(services, "LAMP-1") == (98, 0)
    delivered = signed_post(client, "/carriers/events", {
        "event_id": "k-1", "tracking_number": "AB000000017BR", "status": "delivered"},
        CARRIER_SECRET)
    assert delivered.json["outcome"] == "applied"
    # the carrier cannot sign as the warehouse
    assert signed_post(client, "/wms/events", {**event, "event_id": "w-2"},
                       CARRIER_SECRET).status_code == 401


def everything(client, headers, order_id):
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=headers).json["items"]
    return group, [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]


def test_three_packages_bill_the_order_exactly_and_the_card_is_authorised_for_all_of_it(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    order = client.post("/orders", json=order_body(customer_id="C-BEN", shipping_amount="9.99"),
                        headers=admin).json
    assert order["status"] == "allocated", order
    group, _ = everything(client, ops, order["id"])
    for n, (sku, quantity) in enumerate((("LAMP-1", 1), ("MUG-2", 1), ("LAMP-1", 1))):
        assert wms_event(client, ops, group["id"], "shipped", f"s{n}", package_ref=f"P{n}",
                   lines=[{"sku": sku, "quantity": quantity}]).status_code == 200
    ledger = client.get(f"/orders/{order['id']}/ledger", headers=ops).json["items"]
    invoices = [e for e in ledger if e["kind"] == "invoice"]
    assert len(invoices) == 3
    assert sum(Decimal(e["amount"]) for e in invoices) == Decimal(order["total"])
    assert sum(Decimal(line["credit"]) for e in invoices for line in e["lines"]
               if line["account"] == "tax_payable") == Decimal(order["tax_amount"])
    shipping = [Decimal(line["credit"]) for e in invoices for line in e["lines"]
                if line["account"] == "shipping_revenue"]
    assert shipping == [Decimal("9.99")]  # on the first invoice only
    [authorisation] = [e for e in ledger if e["kind"] == "authorisation"]
    assert Decimal(authorisation["amount"]) == Decimal(order["total"])


def test_an_order_on_hold_still_ships_and_the_hold_returns_it_to_where_it_got(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    assert client.post(f"/orders/{order_id}/hold", json={"reason": "address check"},
                       headers=ops).status_code == 200
    group, lines = everything(client, ops, order_id)
    # the goods had left already: the warehouse says so, and it is recorded
    assert wms_event(client, ops, group["id"], "shipped", "h1", lines=lines).status_code == 200
    assert stock_level(services, "LAMP-1") == (98, 0)
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "on_hold"
    assert [line["quantities"]["shipped"] for line in order["lines"]] == [2, 1]
    released = client.post(f"/orders/{order_id}/release-hold", json={}, headers=ops)
    assert (released.status_code, released.json["status"]) == (200, "shipped")


def test_a_short_pick_backorders_the_missing_units_and_they_ship_when_stock_arrives(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group, _ = everything(client, ops, order_id)
    short = wms_event(client, ops, group["id"], "short_picked", "sp1",
                lines=[{"sku": "MUG-2", "quantity": 1}])
    assert short.json["outcome"] == "applied"
    assert stock_level(services, "MUG-2") == (99, 0)  # the shelf was short: corrected
    # the shipped rules re-source it; no other location has a mug: it waits for stock
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["lines"][1]["quantities"]["cancelled"] == 0
    assert order["lines"][1]["quantities"]["backordered"] == 1
    # a short pick naming a package changes nothing about packages
    assert wms_event(client, ops, group["id"], "shipped", "sp2", package_ref="P1",
               tracking_number="SP000000001BR",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).status_code == 200
    assert client.post("/carriers/events", headers=ops, json={
        "event_id": "d1", "tracking_number": "SP000000001BR",
        "status": "delivered"}).json["outcome"] == "applied"
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "partially_shipped"  # the mug is still owed
    invoices = [e for e in client.get(f"/orders/{order_id}/ledger", headers=ops).json["items"]
                if e["kind"] == "invoice"]
    assert sum(Decimal(e["amount"]) for e in invoices) < Decimal(order["total"])  # no mug
    decision = [d for d in client.get(f"/orders/{order_id}/decisions", headers=ops).json[
        "items"] if d["stage"] == "exceptions"][-1]
    assert decision["facts"]["event_type"] == "stock_short"
    assert decision["outcome"] == "resource" and "not_applied" not in decision["decision"]
    kinds = [e["data"]["kind"] for e in client.get(f"/orders/{order_id}/events", headers=ops)
             .json["items"] if e["type"] == "customer.notified"]
    assert f"short:{group['id']}" in kinds
    # when mugs are found on the shelf, the order gets one, ships it and completes
    stock(services, {("MUG-2", "WH-SP"): 105})
    groups = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    [second] = [g for g in groups if g["id"] != group["id"]]
    assert second["status"] == "released"
    assert wms_event(client, ops, second["id"], "shipped", "sp3", tracking_number="SP000000002BR",
               lines=[{"sku": "MUG-2", "quantity": 1}]).status_code == 200
    assert client.post("/carriers/events", headers=ops, json={
        "event_id": "d2", "tracking_number": "SP000000002BR",
        "status": "delivered"}).json["outcome"] == "applied"
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "completed"
    invoices = [e for e in client.get(f"/orders/{order_id}/ledger", headers=ops).json["items"]
                if e["kind"] == "invoice"]
    assert sum(Decimal(e["amount"]) for e in invoices) == Decimal(order["total"])


def test_events_that_come_early_or_late_do_no_harm(client, admin, make_key, catalog,
                                                   services):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group, lines = everything(client, ops, order_id)
    # packed with a label, but the carrier's scan arrives before the warehouse says shipped
    assert wms_event(client, ops, group["id"], "packed", "p1", package_ref="B",
               lines=lines).status_code == 200
    [box] = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    early = {"event_id": "c1", "tracking_number": box["tracking_number"],
             "status": "delivered"}
    refused = client.post("/carriers/events", headers=ops, json=early)
    assert (refused.status_code, refused.json["code"]) == (409, "not_ready_yet")
    assert wms_event(client, ops, group["id"], "shipped", "s1", package_ref="B").status_code == 200
    # sent again, it now counts (it was not kept as "ignored")
    assert client.post("/carriers/events", headers=ops, json=early).json[
        "outcome"] == "applied"
    # an exception scan and a second "delivered" after delivery change nothing
    for event_id, status in (("c2", "exception"), ("c3", "delivered")):
        late = client.post("/carriers/events", headers=ops, json={
            "event_id": event_id, "tracking_number": box["tracking_number"],
            "status": status})
        assert late.json["outcome"] == "ignored"
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "completed"
    assert [line["quantities"]["delivered"] for line in order["lines"]] == [2, 1]
    # a tracking number already used by another shipment is refused, not a conflict
    other = client.post("/orders", json=order_body(), headers=admin).json["id"]
    other_group, other_lines = everything(client, ops, other)
    taken = wms_event(client, ops, other_group["id"], "shipped", "s2",
                tracking_number=box["tracking_number"], lines=other_lines)
    assert taken.status_code == 422
    assert taken.json["errors"][0]["field"] == "tracking_number"


def test_an_order_listing_a_sku_twice_ships_all_of_it(client, admin, make_key, catalog,
                                                      services):
    ops = make_key("ops")
    lines = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"},
             {"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"}]
    placed = client.post("/orders", json=order_body(lines=lines), headers=admin).json
    assert placed["status"] == "allocated", placed
    order_id = placed["id"]
    group, _ = everything(client, ops, order_id)
    assert wms_event(client, ops, group["id"], "shipped", "t1",
               lines=[{"sku": "LAMP-1", "quantity": 3}]).status_code == 200
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "shipped"
    assert [line["quantities"]["shipped"] for line in order["lines"]] == [2, 1]
    [invoice] = [e for e in client.get(f"/orders/{order_id}/ledger", headers=ops).json[
        "items"] if e["kind"] == "invoice"]
    assert Decimal(invoice["amount"]) == Decimal(order["total"])


def test_a_release_answered_after_a_cancel_is_taken_back(make_app, admin, make_key,
                                                         services):
    from engine.actors import system_actor
    from engine.fulfilment import release
    from engine.record import OutboxMessage
    from tests.conftest import load_catalog

    # Redis unreachable: the release job waits in the outbox while the order is cancelled
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    load_catalog(client, admin, services)
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group_id = everything(client, admin, order_id)[0]["id"]
    assert client.post(f"/orders/{order_id}/cancel", json={"reason": "changed mind"},
                       headers=admin).status_code == 200
    # then the warehouse's answer to the release arrives
    with services.uow() as uow:
        assert release.record_releases(uow, system_actor("test"),
                                       [release.Released(group_id, "LATE-1")]) == 1
        uow.commit()
    assert everything(client, admin, order_id)[0]["status"] == "cancelled"
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "cancelled"
    types = [e["type"] for e in client.get(f"/orders/{order_id}/events", headers=admin)
             .json["items"]]
    assert "group.released_after_cancel" in types
    with services.uow() as uow:
        jobs = [m.job for m in uow.session.scalars(select(OutboxMessage))]
    assert "jobs.fulfilment.cancel_at_warehouse" in jobs  # the warehouse is told to drop it


def test_a_partner_with_its_own_secret_speaks_only_for_its_own_location_or_parcels(
        make_app, admin, services):
    from tests.conftest import load_catalog

    partners = {"wms": {"WH-SP": {"event_secrets": ["sp-secret"]},
                        "WH-RJ": {"event_secrets": ["rj-secret"]}},
                "carriers": {"NOBODY": {"event_secrets": ["nobody-secret"]}}}
    app = make_app(PARTNERS=json.dumps(partners))
    client = app.test_client()
    load_catalog(client, admin, services)
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    group, lines = everything(client, admin, order_id)
    event = {"event_id": "own-1", "type": "shipped", "group_id": group["id"],
             "tracking_number": "OWN000001BR", "lines": lines}
    # Rio's warehouse cannot confirm Sao Paulo's group: for it, there is none
    other = signed_post(client, "/wms/events", event, "rj-secret")
    assert (other.status_code, other.json["code"]) == (404, "not_found")
    assert stock_level(services, "LAMP-1") == (100, 2)
    assert signed_post(client, "/wms/events", event, "sp-secret").json["outcome"] == "applied"
    # a carrier cannot report on another carrier's parcel: for it, there is none
    scan = signed_post(client, "/carriers/events", {
        "event_id": "n-1", "tracking_number": "OWN000001BR", "status": "delivered"},
        "nobody-secret")
    assert scan.status_code == 404
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "shipped"


def test_a_return_goes_back_on_the_shelf_and_is_credited_and_refunded_once(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # Ben paid by card; the order is shipped and delivered
    order = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    group, lines = everything(client, ops, order["id"])
    assert wms_event(client, ops, group["id"], "shipped", "r1", tracking_number="RT000000001BR",
               lines=lines).status_code == 200
    assert stock_level(services, "LAMP-1") == (98, 0)
    # more than shipped, or a SKU not shipped, is refused and changes nothing
    refused = client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "LAMP-1", "quantity": 3}], "reason": "too many"})
    assert (refused.status_code, refused.json["errors"][0]["field"]) == (
        422, "lines/0/quantity")
    # one lamp comes back fit to sell, the mug broken
    back = client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "LAMP-1", "quantity": 1}], "reason": "did not like it"})
    assert back.status_code == 201, back.json
    assert back.json["restock_location"] == "WH-SP"
    assert stock_level(services, "LAMP-1") == (99, 0)  # back on the shelf it left
    broken = client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}], "reason": "broken", "restock": False})
    assert broken.status_code == 201
    assert stock_level(services, "MUG-2") == (99, 0)  # not restocked
    placed = client.get(f"/orders/{order['id']}", headers=ops).json
    assert [line["quantities"]["returned"] for line in placed["lines"]] == [1, 1]
    # each return is credited against the invoice and refunded to the card, once
    settled = client.get(f"/orders/{order['id']}/returns", headers=ops).json["items"]
    assert all(r["credit_reference"] and r["refund_reference"] for r in settled)
    ledger = client.get(f"/orders/{order['id']}/ledger", headers=ops).json
    kinds = [entry["kind"] for entry in ledger["items"]]
    assert kinds.count("credit_note") == kinds.count("refund") == 2
    credited = sum(Decimal(r["net_amount"]) + Decimal(r["tax_amount"]) for r in settled)
    refunds = [e for e in ledger["items"] if e["kind"] == "refund"]
    assert sum(Decimal(e["amount"]) for e in refunds) == credited
    assert ledger["balanced"] is True
    receivable = sum(Decimal(line["debit"]) - Decimal(line["credit"])
                     for entry in ledger["items"] for line in entry["lines"]
                     if line["account"] == "receivables")
    assert receivable == 0
    with using(services):
        assert settle_return(settled[0]["id"]) is None  # settled: nothing posted again
    types = [e["type"] for e in client.get(f"/orders/{order['id']}/events", headers=ops)
             .json["items"]]
    assert types.count("order.returned") == 2 and types.count("return.settled") == 2


def test_returns_credit_the_invoice_that_billed_them_and_never_more_tax_than_invoiced(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    mugs = [{"sku": "MUG-2", "quantity": 3, "unit_price": "24.50"},
            {"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"}]
    order = client.post("/orders", json=order_body(customer_id="C-BEN", lines=mugs),
                        headers=admin).json
    assert order["status"] == "allocated", order
    group, _ = everything(client, ops, order["id"])
    # the mugs go first, the lamp in a second package: two invoices
    for n, line in enumerate(({"sku": "MUG-2", "quantity": 3}, {"sku": "LAMP-1", "quantity": 1})):
        assert wms_event(client, ops, group["id"], "shipped", f"x{n}", package_ref=f"P{n}",
                   lines=[line]).status_code == 200
    mug_invoice, lamp_invoice = [s["invoice_reference"] for s in client.get(
        f"/orders/{order['id']}/shipments", headers=ops).json["items"]]
    # the lamp comes back: credited against the lamp's invoice, not the first one
    assert client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "LAMP-1", "quantity": 1}], "reason": "wrong colour"}).status_code == 201
    ledger = client.get(f"/orders/{order['id']}/ledger", headers=ops).json["items"]
    [note] = [e for e in ledger if e["kind"] == "credit_note"]
    assert lamp_invoice in note["memo"] and mug_invoice not in note["memo"]
    # the mugs come back one by one: the tax credited adds up to the tax invoiced
    for n in range(3):
        assert client.post(f"/orders/{order['id']}/returns", headers=ops, json={
            "lines": [{"sku": "MUG-2", "quantity": 1}], "reason": f"mug {n}"}).status_code == 201
    settled = client.get(f"/orders/{order['id']}/returns", headers=ops).json["items"]
    assert sum(Decimal(r["tax_amount"]) for r in settled) == Decimal(order["tax_amount"])
    assert sum(Decimal(r["net_amount"]) for r in settled) == Decimal(order["subtotal"])
    # nothing left to return; naming a SKU twice counts both
    again = client.post(f"/orders/{order['id']}/returns", headers=ops, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}, {"sku": "MUG-2", "quantity": 1}],
        "reason": "again"})
    assert (again.status_code, again.json["errors"][0]["field"]) == (422, "lines/0/quantity")
    # an order id beyond BIGINT is refused as no such resource, not a crash
    for path in ("returns", "shipments", "ledger"):
        beyond = client.get(f"/orders/99999999999999999999/{path}", headers=ops)
        assert beyond.status_code in (404, 405), path  # werkzeug answers 405 for returns
        assert beyond.headers["Content-Type"] == "application/problem+json"
