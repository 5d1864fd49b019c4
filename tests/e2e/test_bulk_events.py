"""Warehouses and carriers confirm in batches (EDI 945 / 214 style): each event of a batch
is applied, a duplicate or refused on its own, exactly as it would be alone."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event as sql_event

from adapters.outbox import Outbox
from adapters.signing import sign
from tests.conftest import order_body, stock, stock_level

WMS_SECRET = "wms-secret"
CARRIER_SECRET = "carrier-secret"
RIO = {"code": "WH-RJ", "name": "Rio warehouse", "kind": "warehouse", "region": "RJ",
       "country": "BR", "latitude": -22.906847, "longitude": -43.172897}


@pytest.fixture
def app(make_app):
    return make_app(WMS_EVENT_SECRETS=WMS_SECRET, CARRIER_EVENT_SECRETS=CARRIER_SECRET)


def released_group(client, admin, **overrides):
    """Place an order; return its id and its one released fulfilment group."""
    order_id = client.post("/orders", json=order_body(**overrides), headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=admin).json["items"]
    assert group["status"] == "released"
    return order_id, group


def packed_and_shipped(group, n):
    """A packed event (with the warehouse's own label) and a shipped event for the group."""
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    return [{"event_id": f"pack-{n}", "type": "packed", "group_id": group["id"],
             "package_ref": f"BOX-{n}", "tracking_number": f"BK{n:09d}BR", "weight_kg": 2.5,
             "lines": lines},
            {"event_id": f"ship-{n}", "type": "shipped", "group_id": group["id"],
             "package_ref": f"BOX-{n}"}]


def delivered(n):
    return {"event_id": f"dlv-{n}", "tracking_number": f"BK{n:09d}BR", "status": "delivered",
            "occurred_at": "2026-11-24T15:00:00+00:00"}


def timeline(client, headers, order_id):
    return [(event["type"], event["actor"]) for event in
            client.get(f"/orders/{order_id}/events", headers=headers).json["items"]]


def signed_post(client, path, payload, secret):
    body = json.dumps(payload).encode()
    return client.post(path, data=body,
                       headers={"Content-Type": "application/json", **sign([secret], body)})


def test_a_batch_of_packed_shipped_and_delivered_events_moves_orders_as_single_events_do(
        client, admin, make_key, catalog, services):
    ops = make_key("ops", name="ops-desk")
    # given four released orders: one confirmed event by event, three in batches
    alone_id, alone = released_group(client, admin)
    batched = [released_group(client, admin) for _ in range(3)]
    for event in packed_and_shipped(alone, 0):
        assert client.post("/wms/events", json=event, headers=ops).json["outcome"] == "applied"
    assert client.post("/carriers/events", json=delivered(0),
                       headers=ops).json["outcome"] == "applied"

    # when the warehouse sends the packs and shipments of the three in one batch, the
    # orders interleaved, and the carrier then their deliveries in another
    events = [event for pair in zip(*(packed_and_shipped(group, n)
                                      for n, (_, group) in enumerate(batched, start=1)),
                                    strict=True) for event in pair]
    answer = client.post("/wms/events/bulk", json={"events": events}, headers=ops)
    assert answer.status_code == 200, answer.json
    carried = client.post("/carriers/events/bulk", headers=ops,
                          json={"events": [delivered(n) for n in (1, 2, 3)]})

    # then every event is applied, reported in request order
    assert (answer.json["applied"], answer.json["duplicates"], answer.json["failed"]) == (6, 0, 0)
    assert [(row["index"], row["event_id"], row["outcome"], row["problem"])
            for row in answer.json["results"]] == [
        (index, event["event_id"], "applied", None) for index, event in enumerate(events)]
    assert [row["order_id"] for row in answer.json["results"]] == [
        order_id for order_id, _ in batched] * 2
    assert carried.json["applied"] == 3 and carried.json["failed"] == 0
    # and each order went the way the one confirmed event by event went: shipped,
    # delivered, invoiced and completed, with the same timeline
    for order_id, _ in batched:
        assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "completed"
        assert timeline(client, ops, order_id) == timeline(client, ops, alone_id)
    assert client.get(f"/orders/{alone_id}", headers=ops).json["status"] == "completed"
    # and the goods left the shelf once each
    assert stock_level(services, "LAMP-1") == (100 - 2 * 4, 0)
    assert stock_level(services, "MUG-2") == (100 - 4, 0)


def test_a_batch_with_an_unknown_group_and_a_malformed_event_applies_the_rest(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    first_id, first = released_group(client, admin)
    second_id, second = released_group(client, admin)
    # when a batch names a group that does not exist and carries an event with no type
    # and a negative quantity, between two good ones
    events = [packed_and_shipped(first, 1)[0],
              {"event_id": "ghost", "type": "picked", "group_id": 999_999},
              {"event_id": "broken", "group_id": second["id"],
               "lines": [{"sku": "LAMP-1", "quantity": -1}]},
              packed_and_shipped(second, 2)[0]]
    answer = client.post("/wms/events/bulk", json={"events": events}, headers=ops)
    # then the request succeeds, the good events are applied...
    assert answer.status_code == 200, answer.json
    assert (answer.json["applied"], answer.json["duplicates"], answer.json["failed"]) == (2, 0, 2)
    results = answer.json["results"]
    assert [row["outcome"] for row in results] == ["applied", "error", "error", "applied"]
    for order_id in (first_id, second_id):
        [package] = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
        assert package["status"] == "packed"
    # ...and each bad one is reported with its reason, as problem+json names it
    ghost, broken = results[1]["problem"], results[2]["problem"]
    assert (ghost["status"], ghost["code"]) == (404, "not_found")
    assert [error["field"] for error in ghost["errors"]] == ["events/1/group_id"]
    assert (broken["status"], broken["code"]) == (422, "validation_failed")
    assert sorted(error["field"] for error in broken["errors"]) == [
        "events/2/lines/0/quantity", "events/2/type"]
    assert all(error["in"] == "body" for error in ghost["errors"] + broken["errors"])
    # and the malformed event can be sent again, corrected, under its id
    fixed = client.post("/wms/events/bulk", headers=ops, json={"events": [
        {"event_id": "broken", "type": "picked", "group_id": second["id"]}]}).json
    assert [row["outcome"] for row in fixed["results"]] == ["applied"]


def test_a_refusal_the_engine_finds_is_that_events_alone(client, admin, make_key, catalog,
                                                        services):
    ops = make_key("ops")
    order_id, group = released_group(client, admin)
    # when a batch ships more lamps than the group holds, then ships what it holds
    too_many = {"event_id": "over", "type": "shipped", "group_id": group["id"],
                "tracking_number": "OV000000001BR",
                "lines": [{"sku": "LAMP-1", "quantity": 5}]}
    right = {**too_many, "event_id": "right", "lines": [{"sku": "LAMP-1", "quantity": 2},
                                                      {"sku": "MUG-2", "quantity": 1}]}
    answer = client.post("/wms/events/bulk", json={"events": [too_many, right]},
                         headers=ops).json
    # then the first is refused with the offending line, and nothing of it stayed: the
    # second ships under the same tracking number, once
    [refused, shipped] = answer["results"]
    assert refused["problem"]["code"] == "validation_failed"
    assert [error["field"] for error in refused["problem"]["errors"]] == [
        "events/0/lines/0/quantity"]
    assert shipped["outcome"] == "applied"
    assert client.get(f"/orders/{order_id}", headers=ops).json["status"] == "shipped"
    assert stock_level(services, "LAMP-1") == (98, 0)


def test_the_same_batch_again_is_all_duplicates_and_changes_nothing(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    orders = [released_group(client, admin) for _ in range(2)]
    events = [event for n, (_, group) in enumerate(orders) for event in
              packed_and_shipped(group, n)]
    # given a batch applied, whose last event repeats its first
    first = client.post("/wms/events/bulk", json={"events": [*events, events[0]]},
                        headers=ops).json
    assert (first["applied"], first["duplicates"]) == (4, 1)
    assert first["results"][-1]["outcome"] == "duplicate"
    before = {order_id: timeline(client, ops, order_id) for order_id, _ in orders}
    levels = stock_level(services, "LAMP-1"), stock_level(services, "MUG-2")
    # when the warehouse sends the same batch again
    again = client.post("/wms/events/bulk", json={"events": events}, headers=ops).json
    # then every event is a duplicate, and nothing changed
    assert (again["applied"], again["duplicates"], again["failed"]) == (0, 4, 0)
    assert [row["outcome"] for row in again["results"]] == ["duplicate"] * 4
    assert {order_id: timeline(client, ops, order_id) for order_id, _ in orders} == before
    assert (stock_level(services, "LAMP-1"), stock_level(services, "MUG-2")) == levels
    # and an id reused for another event fails that event alone
    reused = client.post("/wms/events/bulk", headers=ops, json={"events": [
        {**events[1], "tracking_number": "XX000000001BR"}]}).json
    assert reused["results"][0]["problem"]["code"] == "event_id_reused"
    # and with an Idempotency-Key, the request itself is replayed
    key = {**ops, "Idempotency-Key": "batch-945-0001"}
    scans = {"events": [{"event_id": "scan-0", "tracking_number": "BK000000000BR",
                         "status": "in_transit"}]}
    once = client.post("/carriers/events/bulk", json=scans, headers=key)
    twice = client.post("/carriers/events/bulk", json=scans, headers=key)
    assert once.json["applied"] == 1
    assert twice.headers["Idempotent-Replayed"] == "true"
    assert twice.get_data() == once.get_data()


def test_an_event_for_a_group_or_parcel_out_of_the_keys_scope_fails_not_found(
        client, admin, make_key, catalog, services):
    # given an order shipping from Sao Paulo and one from Rio
    assert client.post("/locations/bulk", json={"rows": [RIO]},
                       headers=admin).json["failed"] == 0
    stock(services, {("MUG-2", "WH-SP"): 0, ("MUG-2", "WH-RJ"): 10})
    sp_id, sp_group = released_group(client, admin,
                                     lines=[{"sku": "LAMP-1", "quantity": 2,
                                             "unit_price": "89.90"}])
    rj_id, rj_group = released_group(client, admin,
                                     lines=[{"sku": "MUG-2", "quantity": 1,
                                             "unit_price": "24.50"}])
    assert (sp_group["location"], rj_group["location"]) == ("WH-SP", "WH-RJ")
    before = timeline(client, admin, rj_id)
    # when Sao Paulo's warehouse confirms both groups in one batch
    sao_paulo = make_key("warehouse", scope=("WH-SP",))
    answer = client.post("/wms/events/bulk", headers=sao_paulo, json={"events": [
        packed_and_shipped(sp_group, 1)[0], packed_and_shipped(rj_group, 2)[0]]}).json
    # then its own is applied, and Rio's group does not exist for it
    [own, other] = answer["results"]
    assert own["outcome"] == "applied"
    assert (other["outcome"], other["problem"]["code"]) == ("error", "not_found")
    assert timeline(client, admin, rj_id) == before
    # and a carrier reports only on its own parcels
    shipped = client.post("/wms/events/bulk", headers=admin, json={"events": [
        packed_and_shipped(sp_group, 1)[1]]}).json
    assert shipped["applied"] == 1
    [parcel] = client.get(f"/orders/{sp_id}/shipments", headers=admin).json["items"]
    stranger = make_key("carrier", scope=("NOT-" + parcel["carrier"],))
    scanned = client.post("/carriers/events/bulk", headers=stranger,
                          json={"events": [delivered(1)]}).json
    assert scanned["results"][0]["problem"]["code"] == "not_found"
    assert client.get(f"/orders/{sp_id}", headers=admin).json["status"] == "shipped"


def test_a_batch_is_signed_as_a_whole_like_a_single_event(client, admin, make_key, catalog,
                                                        services):
    order_id, group = released_group(client, admin)
    batch = {"events": packed_and_shipped(group, 1)}
    # tampered: signed, then a quantity changed on the way
    body = json.dumps(batch).encode()
    headers = {"Content-Type": "application/json", **sign([WMS_SECRET], body)}
    tampered = body.replace(b'"quantity": 2', b'"quantity": 1')
    refused = client.post("/wms/events/bulk", data=tampered, headers=headers)
    assert (refused.status_code, refused.json["code"]) == (401, "bad_signature")
    # signed with the carrier's secret, or not at all
    assert signed_post(client, "/wms/events/bulk", batch, CARRIER_SECRET).status_code == 401
    assert client.post("/wms/events/bulk", json=batch).status_code == 401
    assert client.get(f"/orders/{order_id}/shipments", headers=admin).json["items"] == []
    # signed by the warehouse, it is applied
    applied = signed_post(client, "/wms/events/bulk", batch, WMS_SECRET)
    assert applied.status_code == 200 and applied.json["applied"] == 2
    # and the carrier's batch with the carrier's secret
    assert signed_post(client, "/carriers/events/bulk", {"events": [delivered(1)]},
                       WMS_SECRET).status_code == 401
    carried = signed_post(client, "/carriers/events/bulk", {"events": [delivered(1)]},
                          CARRIER_SECRET)
    assert carried.json["applied"] == 1
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "completed"


def test_a_batch_is_one_to_a_thousand_events_in_an_object(client, admin, catalog):
    picked = {"event_id": "p", "type": "picked", "group_id": 1}
    for body, field in (({"events": []}, "events"),
                        ({"events": [picked] * 1001}, "events"),
                        ({"events": [picked], "sender": "x"}, "sender"),
                        ({}, "events")):
        refused = client.post("/wms/events/bulk", json=body, headers=admin)
        assert (refused.status_code, refused.json["code"]) == (422, "validation_failed")
        assert [error["field"] for error in refused.json["errors"]] == [field]
    not_an_object = client.post("/carriers/events/bulk", json=[picked], headers=admin)
    assert not_an_object.status_code in (400, 422)
    assert not_an_object.headers["Content-Type"] == "application/problem+json"


def test_a_batch_reads_what_it_names_once_however_many_events_it_carries(
        client, admin, make_key, catalog, services, monkeypatch):
    ops = make_key("ops")
    small = [released_group(client, admin)]
    large = [released_group(client, admin) for _ in range(4)]
    # the jobs a batch starts (invoices, notices) read per order, each in its own
    # transaction after the commit: they are left waiting in the outbox here
    monkeypatch.setattr(Outbox, "dispatch", lambda self, ids=None, limit=500: 0)
    selects: list[str] = []

    def seen(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    def reads(groups, first):
        events = [event for n, (_, group) in enumerate(groups, start=first)
                  for event in packed_and_shipped(group, n)]
        del selects[:]
        sql_event.listen(services.engine, "before_cursor_execute", seen)
        try:
            answer = client.post("/wms/events/bulk", json={"events": events}, headers=ops)
        finally:
            sql_event.remove(services.engine, "before_cursor_execute", seen)
        assert answer.json["applied"] == len(events)
        return len(selects)

    assert client.get("/orders", headers=ops).status_code == 200  # the key is known now
    # when one order's pack and shipment come in a batch, then four orders' in another
    # then the second batch reads no more than the first: its look-ups are per batch
    assert reads(small, 1) == reads(large, 10)
